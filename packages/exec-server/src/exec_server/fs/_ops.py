"""The blocking file-system operations behind the fs RPCs.

Every function here is module-level, takes and returns picklable values and raises only
:class:`OSError`, :class:`~exec_server.exceptions.FsRefused` or
:class:`~exec_server.exceptions.FsFailed` on purpose, so it can run in a worker thread or, under
a sandbox intent, through ``exec_server.sandbox.run_fs_sandboxed`` (a restricted thread, or a
sandboxed worker child for a server that is not root).
Paths are native ``str`` (``surrogateescape``-decoded), already parsed from PathUris.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import threading

from exec_server_protocol.fs import DirectoryEntry, Metadata

from ..exceptions import FsFailed, FsLimitExceeded, FsRefused
from ._errors import display_path

__all__ = [
    "MAX_READ_DIRECTORY_ENTRIES",
    "MAX_READ_FILE_BYTES",
    "canonicalize",
    "copy",
    "create_directory",
    "get_metadata",
    "open_handle_probe",
    "path_exists",
    "read_directory",
    "read_file",
    "remove",
    "write_file",
]

_READ_CHUNK = 1 << 20

MAX_READ_FILE_BYTES = 512 * 1024 * 1024
"""Largest file ``fs/readFile`` returns (the reference's limit and message); the whole file
is held in memory, then base64-encoded, so larger files go through ``fs/open`` +
``fs/readBlock`` instead."""

MAX_READ_DIRECTORY_ENTRIES = 50_000
"""Most entries ``fs/readDirectory`` returns (the reference's limit and message); ``fs/walk``
pages through larger trees."""


SANDBOXED = threading.local()
"""``SANDBOXED.active`` is true in a thread (or worker) running under a sandbox intent."""


def _refuse_shared_inode(path: str) -> None:
    """Under a sandbox, refuse to write through a file with more than one hard link: its other
    name may lie outside the writable roots (a link made before the sandbox existed)."""
    if not getattr(SANDBOXED, "active", False):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise FsRefused(
            f"refusing to write through `{display_path(path)}` under a sandbox: the file has "
            "more than one hard link",
        )


def _file_too_large() -> FsLimitExceeded:
    return FsLimitExceeded(
        f"file is too large to read: limit is {MAX_READ_FILE_BYTES} bytes",
        "read_file_size",
    )


def _not_a_file(path: str) -> FsRefused:
    return FsRefused(f"path `{display_path(path)}` is not a file")


def _open_regular_for_read(path: str) -> int:
    """Open ``path`` read-only; refuse anything but a regular file without blocking on FIFOs."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_a_file(path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str) -> bytes:
    """The whole content of a regular file (symlinks followed).

    Raises:
        FsLimitExceeded: when the file is larger than :data:`MAX_READ_FILE_BYTES`, by its size
            or by what reading it yields (a growing file, a /proc file that reports size 0).
    """
    fd = _open_regular_for_read(path)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_READ_FILE_BYTES:
            raise _file_too_large()
        # One read of the whole file (one byte more tells a file that grew): a single part
        # is returned by the join below without a copy.
        want = size + 1 if size else _READ_CHUNK
        parts: list[bytes] = []
        total = 0
        while chunk := os.read(fd, want):
            total += len(chunk)
            if total > MAX_READ_FILE_BYTES:
                raise _file_too_large()
            parts.append(chunk)
            want = _READ_CHUNK
        return b"".join(parts)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes) -> None:
    """Replace the content of ``path`` atomically: a temp file in the same directory, renamed.

    A symlink at ``path`` is written through (its target gets the new content, the link stays).
    The mode (and, when permitted, owner) of an existing file is kept.  On any failure the old
    content is untouched and the temp file is removed.
    """
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    old: os.stat_result | None
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    # 0o666 lets the umask decide a new file's mode, as a plain create would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    # Not privileged: the file becomes ours, like any rewrite by us.
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, old.st_uid, old.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_directory(path: str, recursive: bool) -> None:
    if recursive:
        os.makedirs(path, exist_ok=True)
    else:
        os.mkdir(path)


def get_metadata(path: str) -> Metadata:
    """Metadata of ``path``; type and size follow symlinks, ``is_symlink`` describes ``path``."""
    lst = os.lstat(path)
    is_symlink = stat.S_ISLNK(lst.st_mode)
    st = os.stat(path) if is_symlink else lst
    return Metadata(
        is_directory=stat.S_ISDIR(st.st_mode),
        is_file=stat.S_ISREG(st.st_mode),
        is_symlink=is_symlink,
        size=st.st_size,
        # The reference (a musl build) never reports a birth time; neither does os.stat here.
        created_at_ms=0,
        modified_at_ms=st.st_mtime_ns // 1_000_000,
    )


def read_directory(path: str) -> list[DirectoryEntry]:
    """Entries in directory order; symlinks are followed and dangling ones left out.

    Raises:
        FsFailed: when the directory has more than :data:`MAX_READ_DIRECTORY_ENTRIES`
            entries. Past the limit, entries are only counted (for the message), not kept.
    """
    entries: list[DirectoryEntry] = []
    with os.scandir(path) as it:
        for entry in it:
            if len(entries) == MAX_READ_DIRECTORY_ENTRIES:
                count = len(entries) + 1 + sum(1 for _ in it)
                raise FsFailed(
                    f"fs/readDirectory returned {count} entries; "
                    f"limit is {MAX_READ_DIRECTORY_ENTRIES}",
                    "read_directory_entries",
                )
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            entries.append(
                DirectoryEntry(
                    file_name=display_path(entry.name),
                    is_directory=stat.S_ISDIR(st.st_mode),
                    is_file=stat.S_ISREG(st.st_mode),
                )
            )
    return entries


def remove(path: str, recursive: bool, force: bool) -> None:
    """Remove a file, symlink (never its target) or directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if force:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        if recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)
    else:
        os.unlink(path)


def _is_within(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def copy(source: str, destination: str, recursive: bool) -> None:
    """Copy a regular file, a symlink (as a symlink) or, with ``recursive``, a directory tree
    (merged into an existing destination directory)."""
    st = os.lstat(source)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), destination)
    elif stat.S_ISDIR(st.st_mode):
        if not recursive:
            raise FsRefused(
                "fs/copy requires recursive: true when sourcePath is a directory",
            )
        dest_parent, dest_name = os.path.split(destination)
        resolved_dest = os.path.join(os.path.realpath(dest_parent), dest_name)
        if _is_within(resolved_dest, os.path.realpath(source)):
            raise FsRefused(
                "fs/copy cannot copy a directory to itself or one of its descendants",
            )
        _copy_tree(source, destination)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(source, destination)
    else:
        raise FsRefused(
            "fs/copy only supports regular files, directories, and symlinks",
        )


def _copy_file(source: str, destination: str) -> None:
    try:
        if os.path.samefile(source, destination):
            # Copying a file onto itself must not truncate it (the reference empties it).
            return
    except FileNotFoundError:
        pass
    _refuse_shared_inode(destination)
    shutil.copyfile(source, destination)
    shutil.copymode(source, destination)


def _copy_tree(source: str, destination: str) -> None:
    try:
        os.mkdir(destination)
        shutil.copymode(source, destination)
    except FileExistsError:
        if not os.path.isdir(destination):
            raise
    with os.scandir(source) as it:
        children = list(it)
    for child in children:
        src = child.path
        dst = os.path.join(destination, child.name)
        if child.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif child.is_dir(follow_symlinks=False):
            _copy_tree(src, dst)
        elif child.is_file(follow_symlinks=False):
            _copy_file(src, dst)
        else:
            raise FsRefused(
                "fs/copy only supports regular files, directories, and symlinks",
            )


def canonicalize(path: str) -> str:
    """The absolute path with every symlink resolved; the path must exist."""
    return os.path.realpath(path, strict=True)


def path_exists(path: str) -> bool:
    """Whether anything (also a dangling symlink) is at ``path``."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return True


def open_handle_probe(path: str, replace: bool) -> tuple[int, int]:
    """Open ``path`` as ``fs/open`` does, close it again and return its ``(st_dev, st_ino)``.

    Used under a sandbox: the sandboxed probe (a restricted thread, or the sandboxed fs worker)
    decides whether the open is allowed (and, for ``replace``, creates and truncates the file);
    the server then opens the same inode itself.
    """
    if replace:
        _refuse_shared_inode(path)
    fd = open_handle_fd(path, write=replace, create=replace)
    try:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def open_handle_fd(path: str, *, write: bool, create: bool) -> int:
    """The descriptor of an ``fs/open`` handle.

    Mode ``read`` (``write=False``): an existing regular file, read-only.  Mode ``replace``
    (``write=create=True``): created or truncated, write-only; reads on it fail with EBADF, as
    writes on a read handle do (the reference's behaviour).  ``write=True, create=False`` opens
    an existing file write-only without truncating it (after a sandboxed probe did that).
    """
    flags = os.O_NONBLOCK | os.O_CLOEXEC
    if write:
        flags |= os.O_WRONLY
        if create:
            flags |= os.O_CREAT | os.O_TRUNC
    else:
        flags |= os.O_RDONLY
    fd = os.open(path, flags, 0o666)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _not_a_file(path)
        if not stat.S_ISREG(mode):
            # The reference answers "not found" for FIFOs, sockets and devices.
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
