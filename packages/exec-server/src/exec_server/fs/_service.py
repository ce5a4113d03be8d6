"""The file-system RPC service of one session (docs/protocol.md §9).

Validation happens here, on the event loop; every piece of OS work goes through
:meth:`FsService._run`, which runs it in a worker thread or — when the request carries a sandbox
intent — under that sandbox. OS errors and refusals become :class:`RpcError` with the
reference's codes and texts (see :mod:`._errors`); nothing else is caught, so an unexpected bug
reaches the server's single error boundary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import msgspec
import pybase64
from exec_server_protocol import (
    EmptyResult,
    HandleId,
    InvalidPathUriError,
    NonLocalHostError,
    format_path_uri,
    parse_path_uri,
)
from exec_server_protocol.fs import (
    CanonicalizeParams,
    CanonicalizeResult,
    CloseParams,
    CopyParams,
    CreateDirectoryParams,
    GetMetadataParams,
    Metadata,
    MissingChangedNotification,
    OpenParams,
    OpenResult,
    ReadBlockParams,
    ReadBlockResult,
    ReadDirectoryParams,
    ReadDirectoryResult,
    ReadFileParams,
    ReadFileResult,
    RemoveParams,
    WalkParams,
    WalkResult,
    WatchMissingParams,
    WatchMissingResult,
    WriteBlockParams,
    WriteBlockResult,
    WriteFileParams,
)
from exec_server_protocol.sandbox import SandboxIntent

from ..exceptions import (
    QuotaExceeded,
    RpcError,
    internal_error,
    invalid_params,
    invalid_request,
)
from . import _ops
from ._errors import FsFailure, decode_base64, os_error_to_rpc, parse_fs_path
from ._handles import Handle, HandleTable, check_handle_id
from ._walk import walk as _walk
from ._watch import Watches, WatchKey, WatchState

__all__ = ["MAX_BLOCK_LEN", "FsService"]

MAX_BLOCK_LEN = 1 << 20
"""Largest ``len`` of ``fs/readBlock`` and chunk of ``fs/writeBlock`` (1 MiB)."""

# The reference's caps on fs/walk limits; also the limits used when a client omits one (the
# reference requires all three).
WALK_MAX_DEPTH = 64
WALK_MAX_ENTRIES = 50_000
WALK_MAX_DIRECTORIES = 10_000

_P = ParamSpec("_P")
_T = TypeVar("_T")

Notify = Callable[[str, msgspec.Struct], None]


class FsService:
    """Per-session file-system state (open handles, watches).

    Args:
        notify: sends a notification to the session's current connection (the caller drops it
            while the session is detached); used for ``fs/missingChanged``.
        watch_interval: seconds between two polls of a ``fs/watchMissing`` watch.
    """

    def __init__(
        self, *, notify: Notify, watch_interval: float = 0.25, max_handles: int = 128
    ) -> None:
        self._notify = notify
        self._handles = HandleTable()
        self._max_handles = max_handles
        self._watches = Watches(on_appeared=self._watch_fired, interval=watch_interval)
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(
        self,
        sandbox: SandboxIntent | None,
        fn: Callable[_P, _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run one blocking operation: in a thread, or under ``sandbox`` when it is given.

        Raises:
            RpcError: the operation's OS error or refusal, translated.
        """
        try:
            if sandbox is None:
                call = functools.partial(fn, *args, **kwargs)
                return await asyncio.wrap_future(_executor_submit(call))
            return await _run_sandboxed(sandbox, fn, *args, **kwargs)
        except FsFailure as exc:
            raise exc.to_rpc() from None
        except OSError as exc:
            raise os_error_to_rpc(exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    # -- whole-file and path operations ------------------------------------------------------

    async def read_file(self, p: ReadFileParams) -> ReadFileResult:
        path = parse_fs_path(p.path)
        data = await self._run(p.sandbox, _ops.read_file, path)
        if len(data) > _ENCODE_ON_LOOP_BELOW:
            # Hundreds of MiB take the event loop for a second: encode where it waits for us.
            encoded = await asyncio.to_thread(pybase64.b64encode, data)
        else:
            encoded = pybase64.b64encode(data)
        del data  # a file can be 512 MiB: hold at most two forms of it at a time
        return ReadFileResult(data_base64=encoded.decode("ascii"))

    async def write_file(self, p: WriteFileParams) -> EmptyResult:
        path = parse_fs_path(p.path)
        try:
            data = decode_base64(p.data_base64)
        except ValueError as exc:
            raise invalid_request(f"fs/writeFile requires valid base64 dataBase64: {exc}") from None
        await self._run(p.sandbox, _ops.write_file, path, data)
        return EmptyResult()

    async def create_directory(self, p: CreateDirectoryParams) -> EmptyResult:
        path = parse_fs_path(p.path)
        recursive = True if p.recursive is None else p.recursive
        await self._run(p.sandbox, _ops.create_directory, path, recursive)
        return EmptyResult()

    async def get_metadata(self, p: GetMetadataParams) -> Metadata:
        path = parse_fs_path(p.path)
        return await self._run(p.sandbox, _ops.get_metadata, path)

    async def read_directory(self, p: ReadDirectoryParams) -> ReadDirectoryResult:
        path = parse_fs_path(p.path)
        entries = await self._run(p.sandbox, _ops.read_directory, path)
        return ReadDirectoryResult(entries=entries)

    async def remove(self, p: RemoveParams) -> EmptyResult:
        path = parse_fs_path(p.path)
        recursive = True if p.recursive is None else p.recursive
        force = True if p.force is None else p.force
        await self._run(p.sandbox, _ops.remove, path, recursive, force)
        return EmptyResult()

    async def copy(self, p: CopyParams) -> EmptyResult:
        source = parse_fs_path(p.source_path)
        destination = parse_fs_path(p.destination_path)
        await self._run(p.sandbox, _ops.copy, source, destination, p.recursive)
        return EmptyResult()

    async def canonicalize(self, p: CanonicalizeParams) -> CanonicalizeResult:
        path = parse_fs_path(p.path)
        resolved = await self._run(p.sandbox, _ops.canonicalize, path)
        return CanonicalizeResult(path=format_path_uri(resolved))

    async def walk(self, p: WalkParams) -> WalkResult:
        path = parse_fs_path(p.path)
        o = p.options
        max_depth = WALK_MAX_DEPTH if o.max_depth is None else o.max_depth
        max_entries = WALK_MAX_ENTRIES if o.max_entries is None else o.max_entries
        max_dirs = WALK_MAX_DIRECTORIES if o.max_directories is None else o.max_directories
        if min(max_depth, max_entries, max_dirs) < 0:
            raise invalid_params("invalid number")
        if max_entries == 0 or max_dirs == 0:
            raise invalid_request("filesystem walk limits must be greater than zero")
        if (
            max_depth > WALK_MAX_DEPTH
            or max_entries > WALK_MAX_ENTRIES
            or max_dirs > WALK_MAX_DIRECTORIES
        ):
            raise invalid_request(
                f"filesystem walk limits exceed maximums: depth={WALK_MAX_DEPTH}, "
                f"directories={WALK_MAX_DIRECTORIES}, entries={WALK_MAX_ENTRIES}"
            )
        return await self._run(
            p.sandbox,
            _walk,
            path,
            max_depth=max_depth,
            max_entries=max_entries,
            max_directories=max_dirs,
            follow_directory_symlinks=o.follow_directory_symlinks,
            prune_hidden_directories=o.prune_hidden_directories,
        )

    # -- handles -----------------------------------------------------------------------------

    async def open(self, p: OpenParams) -> OpenResult:
        handle_id = check_handle_id(p.handle_id)
        path = parse_fs_path(p.path)
        self._check_open()
        replace = p.mode == "replace"
        if self._handles.count >= self._max_handles:
            raise QuotaExceeded(
                f"--max-fs-handles {self._max_handles}",
                f"this session has {self._handles.count} open file handles",
            )
        self._handles.reserve(handle_id)
        try:
            expected: tuple[int, int] | None = None
            if p.sandbox is not None:
                # The sandboxed child decides whether this open is allowed (and creates or
                # truncates for "replace"); we then open the very same inode ourselves.
                expected = await self._run(p.sandbox, _ops.open_handle_probe, path, replace)
            # After a sandboxed probe the file exists (and was truncated): no create, no truncate.
            fd = await self._run_registering(
                handle_id, path, write=replace, create=replace and expected is None
            )
        except BaseException:
            self._handles.unreserve(handle_id)
            raise
        if expected is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != expected:
                self._handles.close(handle_id)
                raise internal_error("the file changed while it was being opened")
        return OpenResult(handle_id=handle_id)

    async def _run_registering(
        self, handle_id: HandleId, path: str, *, write: bool, create: bool
    ) -> int:
        """Open the handle's descriptor in a worker thread and register it as soon as it exists,
        so a cancelled request cannot leak it (expiry closes it with the rest)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def register(cf: concurrent.futures.Future[int]) -> None:
            exc = cf.exception()
            if exc is not None:
                self._handles.unreserve(handle_id)
                if not future.done():
                    future.set_exception(exc)
                return
            fd = cf.result()
            if self._closed:
                os.close(fd)
                if not future.done():
                    future.set_exception(
                        invalid_request("the session's file-system service is closed")
                    )
                return
            self._handles.add(handle_id, fd)
            if not future.done():
                future.set_result(fd)

        cf = _executor_submit(
            functools.partial(_ops.open_handle_fd, path, write=write, create=create)
        )
        cf.add_done_callback(lambda done: loop.call_soon_threadsafe(register, done))
        try:
            return await future
        except FsFailure as exc:
            raise exc.to_rpc() from None
        except OSError as exc:
            raise os_error_to_rpc(exc) from exc

    async def read_block(self, p: ReadBlockParams) -> ReadBlockResult:
        handle_id = check_handle_id(p.handle_id)
        if p.offset < 0:
            raise invalid_params("invalid number")
        if not 1 <= p.len <= MAX_BLOCK_LEN:
            raise invalid_request(f"file read block length must be between 1 and {MAX_BLOCK_LEN}")
        handle = self._handles.acquire(handle_id)
        data = await self._with_handle(handle, os.pread, handle.fd, p.len, p.offset)
        return ReadBlockResult(
            chunk=pybase64.b64encode(data).decode("ascii"), eof=len(data) < p.len
        )

    async def write_block(self, p: WriteBlockParams) -> WriteBlockResult:
        handle_id = check_handle_id(p.handle_id)
        if p.offset < 0:
            raise invalid_params("invalid number")
        try:
            data = decode_base64(p.chunk)
        except ValueError as exc:
            raise invalid_params(str(exc)) from None
        if not 1 <= len(data) <= MAX_BLOCK_LEN:
            raise invalid_request(f"file write block length must be between 1 and {MAX_BLOCK_LEN}")
        handle = self._handles.acquire(handle_id)
        await self._with_handle(handle, _pwrite_all, handle.fd, data, p.offset)
        return WriteBlockResult()

    async def _with_handle(self, handle: Handle, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a block operation on an acquired handle; the handle is released when the
        operation really finished (also if the request is cancelled meanwhile)."""
        loop = asyncio.get_running_loop()
        try:
            cf = _executor_submit(fn, *args)
        except BaseException:
            handle.release()
            raise
        cf.add_done_callback(lambda _: loop.call_soon_threadsafe(handle.release))
        try:
            return await asyncio.wrap_future(cf)
        except OSError as exc:
            raise os_error_to_rpc(exc) from exc

    async def close(self, p: CloseParams) -> EmptyResult:
        self._handles.close(check_handle_id(p.handle_id))
        return EmptyResult()

    # -- watches -----------------------------------------------------------------------------

    async def watch_missing(self, p: WatchMissingParams) -> WatchMissingResult:
        watch_id: WatchKey = p.watch_id
        paths: list[str] = []
        local = True
        for uri in p.missing:
            try:
                paths.append(parse_path_uri(uri))
            except NonLocalHostError:
                local = False  # the reference answers {watching: false}, not an error
            except InvalidPathUriError as exc:
                raise invalid_params(str(exc)) from None
        present: str | None = None
        if p.present is not None:
            try:
                present = parse_path_uri(p.present)
            except NonLocalHostError:
                local = False
            except InvalidPathUriError as exc:
                raise invalid_params(str(exc)) from None
        if not local or not self._watches.can_start(watch_id, paths):
            return WatchMissingResult(watching=False)
        state = await asyncio.wrap_future(_executor_submit(WatchState.capture, paths, present))
        # Re-check: the id may have been taken while we looked at the file system.
        if state is None or not self._watches.can_start(watch_id, paths):
            return WatchMissingResult(watching=False)
        self._watches.start(watch_id, state)
        return WatchMissingResult(watching=True)

    def _watch_fired(self, watch_id: WatchKey) -> None:
        self._notify("fs/missingChanged", MissingChangedNotification(watch_id=watch_id))

    # -- lifetime ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every handle and stop every watch (the session expired). Idempotent."""
        self._closed = True
        self._handles.close_all()
        await self._watches.aclose()


_ENCODE_ON_LOOP_BELOW = 1 << 20
"""Larger file contents are base64-encoded in a worker thread, not on the event loop."""


def _closed_error() -> RpcError:
    return invalid_request("the session's file-system service is closed")


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _executor_submit(fn: Callable[..., _T], *args: Any) -> concurrent.futures.Future[_T]:
    """Submit blocking fs work to the fs worker pool (bounded, shared by all sessions) and return
    the *concurrent* future, whose done callbacks run only once ``fn`` has really returned."""
    global _executor
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="exec-server-fs"
        )
    return _executor.submit(fn, *args)


async def _run_sandboxed(
    sandbox: SandboxIntent, fn: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T:
    """Run ``fn`` under ``sandbox`` via the sandbox package (imported here, not at the top: a
    server that never sandboxes a file operation does not load it for fs)."""
    from ..sandbox import run_fs_sandboxed

    if kwargs:
        fn = functools.partial(fn, **kwargs)
    result: _T = await run_fs_sandboxed(sandbox, fn, *args)
    return result
