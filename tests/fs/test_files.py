"""Whole-file and path operations: readFile, writeFile, createDirectory, getMetadata,
readDirectory, remove, copy, canonicalize — success and error paths against real temp dirs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from exec_server.fs import FsService
from exec_server_protocol.fs import (
    CanonicalizeParams,
    CopyParams,
    CreateDirectoryParams,
    GetMetadataParams,
    ReadDirectoryParams,
    ReadFileParams,
    RemoveParams,
    WriteFileParams,
)
from fs_helpers import realpath, rpc_error, uri

ENOENT_TEXT = "No such file or directory (os error 2)"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def read(fs: FsService, path: Path | str) -> bytes:
    result = await fs.read_file(ReadFileParams(path=uri(path)))
    return base64.b64decode(result.data_base64)


# -- readFile -----------------------------------------------------------------------------------


async def test_read_file_returns_the_content_base64(fs: FsService, tree: Path) -> None:
    assert await read(fs, tree / "f.txt") == b"hello"


async def test_read_file_follows_symlinks(fs: FsService, tree: Path) -> None:
    assert await read(fs, tree / "link") == b"hello"


async def test_read_file_of_a_missing_path_is_not_found(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path=uri(tree / "missing"))))
    assert (err.code, err.message) == (-32004, ENOENT_TEXT)


async def test_read_file_of_a_broken_symlink_is_not_found(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path=uri(tree / "broken"))))
    assert err.code == -32004


async def test_read_file_of_a_directory_is_an_invalid_request(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path=uri(tree / "d"))))
    assert (err.code, err.message) == (-32600, f"path `{tree / 'd'}` is not a file")


async def test_read_file_of_a_fifo_is_refused_without_blocking(fs: FsService, tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    err = await rpc_error(fs.read_file(ReadFileParams(path=uri(tree / "fifo"))))
    assert err.code == -32600


async def test_read_file_below_a_file_is_an_os_error(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path=uri(tree / "f.txt" / "x"))))
    assert (err.code, err.message) == (-32603, "Not a directory (os error 20)")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("file://server/x", -32600),
        ("/abs/native", -32602),
        ("", -32602),
        ("http://x/y", -32602),
        ("file:///a%00b", -32602),
    ],
)
async def test_read_file_rejects_bad_path_uris(fs: FsService, path: str, code: int) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path=path)))
    assert err.code == code


async def test_non_local_host_has_the_reference_message(fs: FsService) -> None:
    err = await rpc_error(fs.read_file(ReadFileParams(path="file://server/x")))
    assert err.message == "'file://server/x' is invalid on 'linux'"


# -- writeFile ----------------------------------------------------------------------------------


async def test_write_file_creates_and_replaces(fs: FsService, tmp_path: Path) -> None:
    target = tmp_path / "w.txt"
    await fs.write_file(WriteFileParams(path=uri(target), data_base64=b64(b"one")))
    await fs.write_file(WriteFileParams(path=uri(target), data_base64=b64(b"two!")))
    assert target.read_bytes() == b"two!"
    assert sorted(os.listdir(tmp_path)) == ["w.txt"]  # no temp file left behind


async def test_write_file_keeps_the_mode_of_the_old_file(fs: FsService, tmp_path: Path) -> None:
    target = tmp_path / "run.sh"
    target.write_bytes(b"old")
    target.chmod(0o751)
    await fs.write_file(WriteFileParams(path=uri(target), data_base64=b64(b"new")))
    assert target.stat().st_mode & 0o777 == 0o751


async def test_write_file_writes_through_a_symlink(fs: FsService, tree: Path) -> None:
    await fs.write_file(WriteFileParams(path=uri(tree / "link"), data_base64=b64(b"linked")))
    assert (tree / "link").is_symlink()
    assert (tree / "f.txt").read_bytes() == b"linked"


async def test_write_file_with_bad_base64_is_an_invalid_request(
    fs: FsService, tmp_path: Path
) -> None:
    err = await rpc_error(
        fs.write_file(WriteFileParams(path=uri(tmp_path / "x"), data_base64="!!!"))
    )
    assert err.code == -32600
    assert (
        err.message == "fs/writeFile requires valid base64 dataBase64: Invalid symbol 33, offset 0."
    )
    assert not (tmp_path / "x").exists()


async def test_write_file_into_a_missing_directory_is_not_found(
    fs: FsService, tmp_path: Path
) -> None:
    params = WriteFileParams(path=uri(tmp_path / "nodir" / "x"), data_base64=b64(b"x"))
    err = await rpc_error(fs.write_file(params))
    assert (err.code, err.message) == (-32004, ENOENT_TEXT)


async def test_write_file_onto_a_directory_is_an_os_error(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.write_file(WriteFileParams(path=uri(tree / "d"), data_base64="")))
    assert (err.code, err.message) == (-32603, "Is a directory (os error 21)")


async def test_failed_write_leaves_the_old_content_and_no_temp_file(
    fs: FsService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old content")
    real_write = os.write
    calls = 0

    def failing_write(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(28, os.strerror(28))
        return real_write(fd, data[:3])  # a partial write first, then the disk is full

    monkeypatch.setattr(os, "write", failing_write)  # _ops calls os.write
    params = WriteFileParams(path=uri(target), data_base64=b64(b"new content that fails"))
    err = await rpc_error(fs.write_file(params))
    monkeypatch.undo()
    assert (err.code, err.message) == (-32603, "No space left on device (os error 28)")
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["keep.txt"]


# -- createDirectory ----------------------------------------------------------------------------


async def test_create_directory_is_recursive_by_default(fs: FsService, tmp_path: Path) -> None:
    await fs.create_directory(CreateDirectoryParams(path=uri(tmp_path / "a" / "b" / "c")))
    await fs.create_directory(CreateDirectoryParams(path=uri(tmp_path / "a" / "b" / "c")))
    assert (tmp_path / "a" / "b" / "c").is_dir()


async def test_create_directory_non_recursive_errors(fs: FsService, tree: Path) -> None:
    missing_parent = CreateDirectoryParams(path=uri(tree / "m1" / "m2"), recursive=False)
    assert (await rpc_error(fs.create_directory(missing_parent))).code == -32004
    exists = CreateDirectoryParams(path=uri(tree / "d"), recursive=False)
    err = await rpc_error(fs.create_directory(exists))
    assert (err.code, err.message) == (-32603, "File exists (os error 17)")
    await fs.create_directory(CreateDirectoryParams(path=uri(tree / "new"), recursive=False))
    assert (tree / "new").is_dir()


async def test_create_directory_over_a_file_is_file_exists(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.create_directory(CreateDirectoryParams(path=uri(tree / "f.txt"))))
    assert (err.code, err.message) == (-32603, "File exists (os error 17)")
    err = await rpc_error(
        fs.create_directory(CreateDirectoryParams(path=uri(tree / "f.txt" / "x")))
    )
    assert (err.code, err.message) == (-32603, "Not a directory (os error 20)")


# -- getMetadata --------------------------------------------------------------------------------


async def test_metadata_of_a_file(fs: FsService, tree: Path) -> None:
    meta = await fs.get_metadata(GetMetadataParams(path=uri(tree / "f.txt")))
    assert (meta.is_file, meta.is_directory, meta.is_symlink, meta.size) == (True, False, False, 5)
    assert meta.created_at_ms == 0
    assert meta.modified_at_ms == (tree / "f.txt").stat().st_mtime_ns // 1_000_000


async def test_metadata_follows_symlinks_and_reports_them(fs: FsService, tree: Path) -> None:
    link = await fs.get_metadata(GetMetadataParams(path=uri(tree / "link")))
    assert (link.is_file, link.is_symlink, link.size) == (True, True, 5)
    dlink = await fs.get_metadata(GetMetadataParams(path=uri(tree / "dlink")))
    assert (dlink.is_directory, dlink.is_file, dlink.is_symlink) == (True, False, True)


async def test_metadata_of_a_broken_symlink_or_missing_path_is_not_found(
    fs: FsService, tree: Path
) -> None:
    for name in ("broken", "missing"):
        err = await rpc_error(fs.get_metadata(GetMetadataParams(path=uri(tree / name))))
        assert (err.code, err.message) == (-32004, ENOENT_TEXT)


async def test_metadata_of_a_fifo_is_neither_file_nor_directory(fs: FsService, tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    meta = await fs.get_metadata(GetMetadataParams(path=uri(tree / "fifo")))
    assert (meta.is_file, meta.is_directory, meta.is_symlink) == (False, False, False)


# -- readDirectory ------------------------------------------------------------------------------


async def test_read_directory_lists_entries_following_symlinks(fs: FsService, tree: Path) -> None:
    result = await fs.read_directory(ReadDirectoryParams(path=uri(tree)))
    got = {e.file_name: (e.is_directory, e.is_file) for e in result.entries}
    # The broken symlink is left out, as the reference does.
    assert got == {
        "f.txt": (False, True),
        "d": (True, False),
        "link": (False, True),
        "dlink": (True, False),
    }


async def test_read_directory_errors(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.read_directory(ReadDirectoryParams(path=uri(tree / "f.txt"))))
    assert (err.code, err.message) == (-32603, "Not a directory (os error 20)")
    err = await rpc_error(fs.read_directory(ReadDirectoryParams(path=uri(tree / "missing"))))
    assert err.code == -32004


# -- remove -------------------------------------------------------------------------------------


async def test_remove_missing_path_is_ok_unless_not_forced(fs: FsService, tree: Path) -> None:
    await fs.remove(RemoveParams(path=uri(tree / "missing")))
    err = await rpc_error(fs.remove(RemoveParams(path=uri(tree / "missing"), force=False)))
    assert (err.code, err.message) == (-32004, ENOENT_TEXT)


async def test_remove_a_directory_tree_by_default(fs: FsService, tree: Path) -> None:
    await fs.remove(RemoveParams(path=uri(tree / "d")))
    assert not (tree / "d").exists()


async def test_remove_non_recursive_refuses_a_non_empty_directory(
    fs: FsService, tree: Path
) -> None:
    err = await rpc_error(fs.remove(RemoveParams(path=uri(tree / "d"), recursive=False)))
    assert (err.code, err.message) == (-32603, "Directory not empty (os error 39)")
    (tree / "empty").mkdir()
    await fs.remove(RemoveParams(path=uri(tree / "empty"), recursive=False, force=False))
    assert not (tree / "empty").exists()


async def test_remove_a_symlink_removes_only_the_link(fs: FsService, tree: Path) -> None:
    await fs.remove(RemoveParams(path=uri(tree / "dlink")))
    await fs.remove(RemoveParams(path=uri(tree / "broken"), recursive=False, force=False))
    assert not (tree / "dlink").is_symlink()
    assert (tree / "d" / "a").read_bytes() == b"a"


async def test_remove_below_a_file_fails_even_when_forced(fs: FsService, tree: Path) -> None:
    err = await rpc_error(fs.remove(RemoveParams(path=uri(tree / "f.txt" / "x"))))
    assert (err.code, err.message) == (-32603, "Not a directory (os error 20)")


# -- copy ---------------------------------------------------------------------------------------


async def test_copy_a_file(fs: FsService, tree: Path) -> None:
    params = CopyParams(source_path=uri(tree / "f.txt"), destination_path=uri(tree / "g.txt"))
    await fs.copy(params)
    assert (tree / "g.txt").read_bytes() == b"hello"


async def test_copy_a_file_onto_itself_keeps_its_content(fs: FsService, tree: Path) -> None:
    params = CopyParams(source_path=uri(tree / "f.txt"), destination_path=uri(tree / "f.txt"))
    await fs.copy(params)
    assert (tree / "f.txt").read_bytes() == b"hello"


async def test_copy_a_symlink_copies_the_link(fs: FsService, tree: Path) -> None:
    await fs.copy(CopyParams(source_path=uri(tree / "link"), destination_path=uri(tree / "l2")))
    assert os.readlink(tree / "l2") == os.readlink(tree / "link")


async def test_copy_a_directory_needs_recursive(fs: FsService, tree: Path) -> None:
    params = CopyParams(source_path=uri(tree / "d"), destination_path=uri(tree / "d2"))
    err = await rpc_error(fs.copy(params))
    assert (err.code, err.message) == (
        -32600,
        "fs/copy requires recursive: true when sourcePath is a directory",
    )
    params = CopyParams(
        source_path=uri(tree / "d"), destination_path=uri(tree / "d2"), recursive=True
    )
    await fs.copy(params)
    await fs.copy(params)  # merges into the existing copy rather than nesting
    assert (tree / "d2" / "sub" / ".hidden" / "c").read_bytes() == b"c"
    assert sorted(os.listdir(tree / "d2")) == ["a", "sub"]


async def test_copy_a_directory_into_itself_is_refused(fs: FsService, tree: Path) -> None:
    params = CopyParams(
        source_path=uri(tree / "d"), destination_path=uri(tree / "d" / "in"), recursive=True
    )
    err = await rpc_error(fs.copy(params))
    assert (err.code, err.message) == (
        -32600,
        "fs/copy cannot copy a directory to itself or one of its descendants",
    )
    assert not (tree / "d" / "in").exists()


async def test_copy_errors(fs: FsService, tree: Path) -> None:
    missing = CopyParams(source_path=uri(tree / "missing"), destination_path=uri(tree / "x"))
    assert (await rpc_error(fs.copy(missing))).code == -32004
    no_parent = CopyParams(source_path=uri(tree / "f.txt"), destination_path=uri(tree / "n" / "x"))
    assert (await rpc_error(fs.copy(no_parent))).code == -32004
    onto_dir = CopyParams(source_path=uri(tree / "f.txt"), destination_path=uri(tree / "d"))
    err = await rpc_error(fs.copy(onto_dir))
    assert (err.code, err.message) == (-32603, "Is a directory (os error 21)")
    os.mkfifo(tree / "fifo")
    fifo = CopyParams(source_path=uri(tree / "fifo"), destination_path=uri(tree / "fifo2"))
    err = await rpc_error(fs.copy(fifo))
    assert (err.code, err.message) == (
        -32600,
        "fs/copy only supports regular files, directories, and symlinks",
    )


# -- canonicalize -------------------------------------------------------------------------------


async def test_canonicalize_resolves_symlinks_and_dot_dot(fs: FsService, tree: Path) -> None:
    real = realpath(tree / "f.txt")
    for path in (uri(tree / "link"), uri(tree / "dlink") + "/../f.txt"):
        result = await fs.canonicalize(CanonicalizeParams(path=path))
        assert result.path == uri(real)


async def test_canonicalize_of_missing_or_broken_is_not_found(fs: FsService, tree: Path) -> None:
    for name in ("missing", "broken"):
        err = await rpc_error(fs.canonicalize(CanonicalizeParams(path=uri(tree / name))))
        assert (err.code, err.message) == (-32004, ENOENT_TEXT)


async def test_canonicalize_of_a_symlink_loop_is_an_os_error(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    err = await rpc_error(fs.canonicalize(CanonicalizeParams(path=uri(tmp_path / "loop"))))
    assert (err.code, err.message) == (-32603, "Too many levels of symbolic links (os error 40)")
