"""The open-file handles of one session (``fs/open`` … ``fs/close``), without I/O of its own.

A handle owns one file descriptor. Reads and writes are positional (``pread``/``pwrite``), so
concurrent blocks on one handle do not disturb each other. A descriptor is closed exactly once:
at ``fs/close`` or session expiry, or — if a block operation is still using it then — when the
last such operation finishes, so a descriptor number is never reused under a running operation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from exec_server_protocol import HandleId

from ..exceptions import BadRequest, DuplicateHandle, UnknownHandle

__all__ = ["MAX_HANDLE_ID_BYTES", "Handle", "HandleTable", "check_handle_id"]

MAX_HANDLE_ID_BYTES = 32


def check_handle_id(handle_id: str) -> HandleId:
    """Validate a client-chosen handle id (the reference allows at most 32 bytes, also empty).

    Raises:
        BadRequest: it is too long.
    """
    if len(handle_id.encode("utf-8", "surrogatepass")) > MAX_HANDLE_ID_BYTES:
        raise BadRequest(f"file handle ID must not exceed {MAX_HANDLE_ID_BYTES} bytes")
    return HandleId(handle_id)


@dataclass(eq=False)
class Handle:
    """One open file: its descriptor and how many block operations are using it."""

    fd: int
    users: int = 0
    closing: bool = False

    def acquire(self) -> None:
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.closing and self.users == 0:
            os.close(self.fd)


class HandleTable:
    """Handles by id. Lookups and registration are synchronous (event-loop thread only)."""

    def __init__(self) -> None:
        self._handles: dict[HandleId, Handle] = {}
        self._reserved: set[HandleId] = set()

    def __len__(self) -> int:
        return len(self._handles)

    @property
    def count(self) -> int:
        """Handles open or being opened."""
        return len(self._handles) + len(self._reserved)

    def reserve(self, handle_id: HandleId) -> None:
        """Claim ``handle_id`` while its file is being opened.

        Raises:
            DuplicateHandle: the id is open or being opened.
        """
        if handle_id in self._handles or handle_id in self._reserved:
            raise DuplicateHandle(handle_id)
        self._reserved.add(handle_id)

    def unreserve(self, handle_id: HandleId) -> None:
        self._reserved.discard(handle_id)

    def add(self, handle_id: HandleId, fd: int) -> None:
        """Register an opened descriptor under a reserved id."""
        self._reserved.discard(handle_id)
        self._handles[handle_id] = Handle(fd)

    def acquire(self, handle_id: HandleId) -> Handle:
        """The handle, marked in use until :meth:`Handle.release`.

        Raises:
            UnknownHandle: an unknown (or closed) handle.
        """
        handle = self._handles.get(handle_id)
        if handle is None:
            raise UnknownHandle(handle_id)
        handle.acquire()
        return handle

    def close(self, handle_id: HandleId) -> None:
        """Close a handle; unknown ids are ignored."""
        handle = self._handles.pop(handle_id, None)
        if handle is not None:
            self._close(handle)

    def close_all(self) -> None:
        handles = list(self._handles.values())
        self._handles.clear()
        for handle in handles:
            self._close(handle)

    @staticmethod
    def _close(handle: Handle) -> None:
        handle.closing = True
        if handle.users == 0:
            os.close(handle.fd)
