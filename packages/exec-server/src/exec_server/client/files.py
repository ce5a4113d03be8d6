"""Files on the server: ``client.files`` (asyncio) and ``sync_client.files`` (blocking).

Every path is a native absolute path (``str`` or :class:`pathlib.Path`) or a ``file:`` URI.
Errors are the built-in :class:`OSError` subclasses (:class:`FileNotFoundError`,
:class:`PermissionError`, :class:`IsADirectoryError`, ...), carrying the path as ``filename``,
and also :class:`~exec_server.exceptions.RemoteError` (see :mod:`exec_server.client._errors`).
Each method takes an optional ``sandbox`` intent; a write the sandbox refuses raises
:class:`PermissionError`.

Small files travel in one message (``fs/readFile`` / ``fs/writeFile``); :meth:`Files.open`
streams a large one in 1 MiB blocks (``fs/open``, ``fs/readBlock``, ``fs/writeBlock``), and
:meth:`Files.write_bytes` switches to blocks by itself above :data:`WHOLE_FILE_LIMIT`.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import posixpath
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pybase64
from exec_server_protocol import EmptyResult, HandleId
from exec_server_protocol.fs import (
    CloseParams,
    CopyParams,
    CreateDirectoryParams,
    GetMetadataParams,
    Metadata,
    OpenParams,
    OpenResult,
    ReadBlockParams,
    ReadBlockResult,
    ReadDirectoryParams,
    ReadDirectoryResult,
    ReadFileParams,
    ReadFileResult,
    RemoveParams,
    WalkOptions,
    WalkParams,
    WalkResult,
    WatchMissingParams,
    WatchMissingResult,
    WriteBlockParams,
    WriteBlockResult,
    WriteFileParams,
)
from exec_server_protocol.sandbox import SandboxIntent

from ..exceptions import RemoteError
from ._errors import RemoteFileExistsError, translate_fs_error
from ._paths import RemotePath, native, to_uri

if TYPE_CHECKING:
    from ._client import Client
    from .sync import SyncClient

__all__ = [
    "BLOCK_SIZE",
    "WHOLE_FILE_LIMIT",
    "DirEntry",
    "FileStat",
    "Files",
    "RemoteFile",
    "SyncFiles",
    "WalkEntry",
]

T = TypeVar("T")

BLOCK_SIZE = 1 << 20
"""Bytes per ``fs/readBlock`` / ``fs/writeBlock`` (the protocol's maximum)."""

WHOLE_FILE_LIMIT = 8 << 20
"""Above this, :meth:`Files.write_bytes` writes in blocks (a request must stay under the
server's 16 MiB message limit, and base64 adds a third)."""

_WINDOW = 8
"""Blocks in flight at once while streaming."""


@dataclass(frozen=True, slots=True)
class FileStat:
    """What ``fs/getMetadata`` reports (type and size follow symlinks)."""

    size: int
    is_dir: bool
    is_file: bool
    is_symlink: bool
    created_at: float
    """Seconds since the epoch."""
    modified_at: float
    """Seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of :meth:`Files.list`."""

    name: str
    path: str
    """The native absolute path."""
    is_dir: bool
    is_file: bool


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """One entry of :meth:`Files.walk`."""

    path: str
    """The native absolute path."""
    kind: str
    """``"file"`` or ``"directory"``."""


class Files:
    """The server's file system, for one :class:`Client`. Get it as ``client.files``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)

    async def _call(self, method: str, params: Any, result: type[T], path: RemotePath) -> T:
        try:
            return await self._client._request(method, params, result)
        except RemoteError as exc:
            raise translate_fs_error(exc, native(path)) from None

    def _next_id(self, kind: str) -> str:
        return f"{kind}-{self._prefix}-{next(self._ids)}"

    # ------------------------------------------------------------------ whole files

    async def read_bytes(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> bytes:
        """The contents of a file (up to 512 MiB: use :meth:`open` beyond).

        Raises:
            FileNotFoundError, IsADirectoryError, PermissionError: as for a local file.
        """
        params = ReadFileParams(path=to_uri(path), sandbox=sandbox)
        result = await self._call("fs/readFile", params, ReadFileResult, path)
        return pybase64.b64decode(result.data_base64)

    async def write_bytes(
        self, path: RemotePath, data: bytes, *, sandbox: SandboxIntent | None = None
    ) -> None:
        """Create or replace a file with ``data`` (the parent directory must exist).

        Raises:
            FileNotFoundError: the parent directory does not exist.
            IsADirectoryError, PermissionError: as for a local file.
        """
        if len(data) > WHOLE_FILE_LIMIT:
            async with await self.open(path, "wb", sandbox=sandbox) as file:
                await file.write(data)
            return
        params = WriteFileParams(
            path=to_uri(path), data_base64=pybase64.b64encode_as_string(data), sandbox=sandbox
        )
        await self._call("fs/writeFile", params, EmptyResult, path)

    async def read_text(
        self,
        path: RemotePath,
        *,
        encoding: str = "utf-8",
        errors: str = "strict",
        sandbox: SandboxIntent | None = None,
    ) -> str:
        """The contents of a file, decoded."""
        return (await self.read_bytes(path, sandbox=sandbox)).decode(encoding, errors)

    async def write_text(
        self,
        path: RemotePath,
        text: str,
        *,
        encoding: str = "utf-8",
        errors: str = "strict",
        sandbox: SandboxIntent | None = None,
    ) -> None:
        """Create or replace a file with ``text``, encoded."""
        await self.write_bytes(path, text.encode(encoding, errors), sandbox=sandbox)

    # ------------------------------------------------------------------ metadata

    async def stat(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> FileStat:
        """Type, size and times of ``path``.

        Raises:
            FileNotFoundError: it does not exist.
        """
        params = GetMetadataParams(path=to_uri(path), sandbox=sandbox)
        m = await self._call("fs/getMetadata", params, Metadata, path)
        return FileStat(
            size=m.size,
            is_dir=m.is_directory,
            is_file=m.is_file,
            is_symlink=m.is_symlink,
            created_at=m.created_at_ms / 1000,
            modified_at=m.modified_at_ms / 1000,
        )

    async def exists(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> bool:
        """Whether ``path`` exists (a dangling symlink does not)."""
        try:
            await self.stat(path, sandbox=sandbox)
        except FileNotFoundError:
            return False
        return True

    async def list(
        self, path: RemotePath, *, sandbox: SandboxIntent | None = None
    ) -> builtins.list[DirEntry]:
        """The entries of a directory (without ``.`` and ``..``), sorted by name.

        Raises:
            FileNotFoundError, NotADirectoryError: as for a local directory.
        """
        params = ReadDirectoryParams(path=to_uri(path), sandbox=sandbox)
        result = await self._call("fs/readDirectory", params, ReadDirectoryResult, path)
        base = native(path)
        return sorted(
            (
                DirEntry(e.file_name, posixpath.join(base, e.file_name), e.is_directory, e.is_file)
                for e in result.entries
            ),
            key=lambda e: e.name,
        )

    async def walk(
        self,
        path: RemotePath,
        *,
        max_depth: int | None = None,
        max_entries: int | None = None,
        follow_symlinks: bool = False,
        skip_hidden_dirs: bool = False,
        sandbox: SandboxIntent | None = None,
    ) -> builtins.list[WalkEntry]:
        """Every file and directory under ``path`` (``fs/walk``; the server caps the walk at
        50,000 entries and 10,000 directories)."""
        params = WalkParams(
            path=to_uri(path),
            options=WalkOptions(
                max_depth=max_depth,
                max_entries=max_entries,
                follow_directory_symlinks=follow_symlinks,
                prune_hidden_directories=skip_hidden_dirs,
            ),
            sandbox=sandbox,
        )
        result = await self._call("fs/walk", params, WalkResult, path)
        return [WalkEntry(native(e.path), e.kind) for e in result.entries]

    # ------------------------------------------------------------------ changes

    async def mkdir(
        self,
        path: RemotePath,
        *,
        parents: bool = False,
        exist_ok: bool = False,
        sandbox: SandboxIntent | None = None,
    ) -> None:
        """Create a directory, as :meth:`pathlib.Path.mkdir`.

        Raises:
            FileExistsError: it exists and not ``exist_ok``.
            FileNotFoundError: the parent is missing and not ``parents``.
        """
        if parents and not exist_ok and await self.exists(path, sandbox=sandbox):
            raise RemoteFileExistsError(-32603, "File exists (os error 17)", 17, native(path))
        params = CreateDirectoryParams(path=to_uri(path), recursive=parents, sandbox=sandbox)
        try:
            await self._call("fs/createDirectory", params, EmptyResult, path)
        except FileExistsError:
            if not exist_ok:
                raise

    async def remove(
        self,
        path: RemotePath,
        *,
        recursive: bool = False,
        missing_ok: bool = False,
        sandbox: SandboxIntent | None = None,
    ) -> None:
        """Remove a file, a symlink or (with ``recursive``, or when empty) a directory.

        Raises:
            FileNotFoundError: it does not exist and not ``missing_ok``.
            OSError: a non-empty directory without ``recursive``.
        """
        params = RemoveParams(
            path=to_uri(path), recursive=recursive, force=missing_ok, sandbox=sandbox
        )
        await self._call("fs/remove", params, EmptyResult, path)

    async def copy(
        self,
        source: RemotePath,
        destination: RemotePath,
        *,
        recursive: bool = False,
        sandbox: SandboxIntent | None = None,
    ) -> None:
        """Copy a file (or, with ``recursive``, a directory tree) on the server."""
        params = CopyParams(
            source_path=to_uri(source),
            destination_path=to_uri(destination),
            recursive=recursive,
            sandbox=sandbox,
        )
        await self._call("fs/copy", params, EmptyResult, source)

    async def watch(self, *paths: RemotePath) -> AsyncGenerator[builtins.list[str], None]:
        """Wait for missing paths to appear (``fs/watchMissing``).

        Yields the native paths that appeared since the last iteration (those that exist at
        the start are yielded at once); the iteration ends when every path exists. The server
        polls; a change is reported within about its poll interval. Across a dropped
        connection the watch looks again once the session is resumed (the server does not
        keep a notification it could not send), and raises what the client raises if it is not.
        """
        pending = {native(p): to_uri(p) for p in paths}
        client = self._client
        while pending:
            fired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            watch_id = self._next_id("w")

            def on_fired(params: Any, watch_id: str = watch_id, fut: Any = fired) -> None:
                fired_here = isinstance(params, dict) and params.get("watchId") == watch_id
                if fired_here and not fut.done():
                    fut.set_result(None)

            client._add_listener("fs/missingChanged", on_fired)
            try:
                appeared = [p for p in pending if await self.exists(p)]
                if not appeared:
                    params = WatchMissingParams(watch_id=watch_id, missing=list(pending.values()))
                    dropped = client._next_drop()
                    try:
                        result = await client._request(
                            "fs/watchMissing", params, WatchMissingResult
                        )
                        if result.watching:
                            await asyncio.wait(
                                (fired, dropped), return_when=asyncio.FIRST_COMPLETED
                            )
                    finally:
                        client._forget_drop(dropped)
                    if not fired.done():  # the connection dropped: look again once resumed
                        await client.wait_connected()
                    appeared = [p for p in pending if await self.exists(p)]
            finally:
                client._remove_listener("fs/missingChanged", on_fired)
            for p in appeared:
                del pending[p]
            if appeared:
                yield appeared

    # ------------------------------------------------------------------ streaming

    async def open(
        self,
        path: RemotePath,
        mode: Literal["rb", "wb"] = "rb",
        *,
        sandbox: SandboxIntent | None = None,
    ) -> RemoteFile:
        """Open a file for streaming: ``"rb"`` reads, ``"wb"`` creates or truncates it.

        Use as ``async with await client.files.open(path, "wb") as f: await f.write(...)``.
        """
        if mode not in ("rb", "wb"):
            raise ValueError(f"mode must be 'rb' or 'wb', not {mode!r}")
        handle_id = HandleId(self._next_id("h"))
        params = OpenParams(
            handle_id=handle_id,
            path=to_uri(path),
            mode="read" if mode == "rb" else "replace",
            sandbox=sandbox,
        )
        await self._call("fs/open", params, OpenResult, path)
        return RemoteFile(self, handle_id, native(path), mode)


class RemoteFile:
    """An open file on the server (from :meth:`Files.open`); reads and writes are sequential
    from the start, in blocks of :data:`BLOCK_SIZE`."""

    def __init__(self, files: Files, handle_id: str, path: str, mode: str) -> None:
        self._files = files
        self._handle_id = HandleId(handle_id)
        self.name = path
        self.mode = mode
        self._offset = 0
        self._eof = False
        self.closed = False

    async def __aenter__(self) -> RemoteFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check(self, mode: str) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self.mode != mode:
            raise ValueError(f"file not open for {'reading' if mode == 'rb' else 'writing'}")

    async def _block(self, offset: int, size: int) -> ReadBlockResult:
        params = ReadBlockParams(handle_id=self._handle_id, offset=offset, len=size)
        return await self._files._call("fs/readBlock", params, ReadBlockResult, self.name)

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end."""
        self._check("rb")
        out = bytearray()
        while not self._eof and (size < 0 or len(out) < size):
            want = BLOCK_SIZE if size < 0 else min(BLOCK_SIZE, size - len(out))
            result = await self._block(self._offset, want)
            data = pybase64.b64decode(result.chunk)
            self._offset += len(data)
            out += data
            self._eof = result.eof
        return bytes(out)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The rest of the file, block by block."""
        while block := await self.read(BLOCK_SIZE):
            yield block

    async def write(self, data: bytes) -> int:
        """Append ``data`` (several blocks are sent at once). Returns ``len(data)``."""
        self._check("wb")
        view = memoryview(data)
        offsets = range(0, len(view), BLOCK_SIZE)
        for start in range(0, len(offsets), _WINDOW):
            await asyncio.gather(
                *(
                    self._files._call(
                        "fs/writeBlock",
                        WriteBlockParams(
                            handle_id=self._handle_id,
                            offset=self._offset + off,
                            chunk=pybase64.b64encode_as_string(view[off : off + BLOCK_SIZE]),
                        ),
                        WriteBlockResult,
                        self.name,
                    )
                    for off in offsets[start : start + _WINDOW]
                )
            )
        self._offset += len(view)
        return len(view)

    async def aclose(self) -> None:
        """Close the handle (idempotent)."""
        if self.closed:
            return
        self.closed = True
        params = CloseParams(handle_id=self._handle_id)
        await self._files._call("fs/close", params, EmptyResult, self.name)


class SyncFiles:
    """The blocking twin of :class:`Files`: ``sync_client.files``. Same methods, same
    errors; :meth:`watch` is a blocking iterator."""

    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def _files(self) -> Files:
        return self._owner._connected().files

    def _do(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        files = self._files()
        return self._owner._call(
            lambda: getattr(files, fn)(*args, **kwargs), self._owner.call_timeout, what
        )

    def read_bytes(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> bytes:
        """See :meth:`Files.read_bytes`."""
        data: bytes = self._do(f"reading {path}", "read_bytes", path, sandbox=sandbox)
        return data

    def write_bytes(
        self, path: RemotePath, data: bytes, *, sandbox: SandboxIntent | None = None
    ) -> None:
        """See :meth:`Files.write_bytes`."""
        self._do(f"writing {path}", "write_bytes", path, data, sandbox=sandbox)

    def read_text(self, path: RemotePath, **kwargs: Any) -> str:
        """See :meth:`Files.read_text`."""
        text: str = self._do(f"reading {path}", "read_text", path, **kwargs)
        return text

    def write_text(self, path: RemotePath, text: str, **kwargs: Any) -> None:
        """See :meth:`Files.write_text`."""
        self._do(f"writing {path}", "write_text", path, text, **kwargs)

    def stat(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> FileStat:
        """See :meth:`Files.stat`."""
        st: FileStat = self._do(f"stat of {path}", "stat", path, sandbox=sandbox)
        return st

    def exists(self, path: RemotePath, *, sandbox: SandboxIntent | None = None) -> bool:
        """See :meth:`Files.exists`."""
        found: bool = self._do(f"looking for {path}", "exists", path, sandbox=sandbox)
        return found

    def list(
        self, path: RemotePath, *, sandbox: SandboxIntent | None = None
    ) -> builtins.list[DirEntry]:
        """See :meth:`Files.list`."""
        entries: builtins.list[DirEntry] = self._do(
            f"listing {path}", "list", path, sandbox=sandbox
        )
        return entries

    def walk(self, path: RemotePath, **kwargs: Any) -> builtins.list[WalkEntry]:
        """See :meth:`Files.walk`."""
        entries: builtins.list[WalkEntry] = self._do(f"walking {path}", "walk", path, **kwargs)
        return entries

    def mkdir(self, path: RemotePath, **kwargs: Any) -> None:
        """See :meth:`Files.mkdir`."""
        self._do(f"creating {path}", "mkdir", path, **kwargs)

    def remove(self, path: RemotePath, **kwargs: Any) -> None:
        """See :meth:`Files.remove`."""
        self._do(f"removing {path}", "remove", path, **kwargs)

    def copy(self, source: RemotePath, destination: RemotePath, **kwargs: Any) -> None:
        """See :meth:`Files.copy`."""
        self._do(f"copying {source}", "copy", source, destination, **kwargs)

    def watch(
        self, *paths: RemotePath, timeout: float | None = None
    ) -> Iterator[builtins.list[str]]:
        """See :meth:`Files.watch`; ``timeout`` bounds each wait (TimeoutError)."""
        iterator = self._files().watch(*paths)

        async def step() -> builtins.list[str] | None:
            try:
                return await anext(iterator)
            except StopAsyncIteration:
                return None

        try:
            while (appeared := self._owner._call(step, timeout, "watching")) is not None:
                yield appeared
        finally:
            self._owner._call(iterator.aclose, self._owner.call_timeout, "closing a watch")
