"""fs/open, fs/readBlock, fs/writeBlock, fs/close: modes, limits, handle ids, streaming."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
from pathlib import Path
from typing import Literal

import pytest
from exec_server.fs import MAX_BLOCK_LEN, FsService
from exec_server_protocol.fs import (
    CloseParams,
    OpenParams,
    ReadBlockParams,
    ReadFileParams,
    WriteBlockParams,
)
from fs_helpers import create_file, rpc_error, uri


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def read_block(fs: FsService, handle: str, offset: int, length: int) -> tuple[bytes, bool]:
    result = await fs.read_block(ReadBlockParams(handle_id=handle, offset=offset, len=length))
    return base64.b64decode(result.chunk), result.eof


async def test_read_blocks_and_eof(fs: FsService, tree: Path) -> None:
    assert (await fs.open(OpenParams(handle_id="h", path=uri(tree / "f.txt")))).handle_id == "h"
    assert await read_block(fs, "h", 0, 3) == (b"hel", False)
    assert await read_block(fs, "h", 0, 5) == (b"hello", False)  # a full read is not eof
    assert await read_block(fs, "h", 3, 100) == (b"lo", True)  # eof with the last data
    assert await read_block(fs, "h", 5, 1) == (b"", True)
    assert await read_block(fs, "h", 100, 1) == (b"", True)


@pytest.mark.parametrize("length", [0, MAX_BLOCK_LEN + 1, -1])
async def test_read_block_length_outside_1_mib_is_invalid(
    fs: FsService, tree: Path, length: int
) -> None:
    await fs.open(OpenParams(handle_id="h", path=uri(tree / "f.txt")))
    err = await rpc_error(fs.read_block(ReadBlockParams(handle_id="h", offset=0, len=length)))
    assert (err.code, err.message) == (
        -32600,
        "file read block length must be between 1 and 1048576",
    )


async def test_read_block_of_an_unknown_handle_is_not_found(fs: FsService) -> None:
    err = await rpc_error(fs.read_block(ReadBlockParams(handle_id="nope", offset=0, len=1)))
    assert (err.code, err.message) == (-32004, "unknown file handle `nope`")


async def test_a_reused_handle_id_is_an_invalid_request(fs: FsService, tree: Path) -> None:
    await fs.open(OpenParams(handle_id="h", path=uri(tree / "f.txt")))
    err = await rpc_error(fs.open(OpenParams(handle_id="h", path=uri(tree / "d" / "a"))))
    assert (err.code, err.message) == (-32600, "file handle `h` already exists")
    await fs.close(CloseParams(handle_id="h"))
    await fs.open(OpenParams(handle_id="h", path=uri(tree / "d" / "a")))  # free again


async def test_close_of_unknown_or_closed_handle_is_ok(fs: FsService, tree: Path) -> None:
    await fs.close(CloseParams(handle_id="never"))
    await fs.open(OpenParams(handle_id="", path=uri(tree / "f.txt")))  # empty ids are allowed
    await fs.close(CloseParams(handle_id=""))
    await fs.close(CloseParams(handle_id=""))
    assert (await rpc_error(read_block(fs, "", 0, 1))).code == -32004


async def test_handle_ids_longer_than_32_bytes_are_refused(fs: FsService, tree: Path) -> None:
    long_id = "x" * 33
    for call in (
        fs.open(OpenParams(handle_id=long_id, path=uri(tree / "f.txt"))),
        fs.close(CloseParams(handle_id=long_id)),
        fs.read_block(ReadBlockParams(handle_id=long_id, offset=0, len=1)),
    ):
        err = await rpc_error(call)
        assert (err.code, err.message) == (-32600, "file handle ID must not exceed 32 bytes")
    await fs.open(OpenParams(handle_id="y" * 32, path=uri(tree / "f.txt")))


async def test_open_errors(fs: FsService, tree: Path) -> None:
    missing = await rpc_error(fs.open(OpenParams(handle_id="a", path=uri(tree / "missing"))))
    assert missing.code == -32004
    directory = await rpc_error(fs.open(OpenParams(handle_id="b", path=uri(tree / "d"))))
    assert (directory.code, directory.message) == (-32600, f"path `{tree / 'd'}` is not a file")
    params = OpenParams(handle_id="c", path=uri(tree / "d"), mode="replace")
    err = await rpc_error(fs.open(params))
    assert (err.code, err.message) == (-32603, "Is a directory (os error 21)")
    params = OpenParams(handle_id="d", path=uri(tree / "no" / "x"), mode="replace")
    assert (await rpc_error(fs.open(params))).code == -32004
    # a failed open does not use up its id
    await fs.open(OpenParams(handle_id="a", path=uri(tree / "f.txt")))


async def test_open_of_a_fifo_does_not_block(fs: FsService, tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    modes: tuple[Literal["read", "replace"], ...] = ("read", "replace")
    for mode in modes:
        params = OpenParams(handle_id=mode, path=uri(tree / "fifo"), mode=mode)
        async with asyncio.timeout(10):
            err = await rpc_error(fs.open(params))
        assert err.code in (-32004, -32603)


async def test_replace_truncates_at_open_and_writes_blocks(fs: FsService, tree: Path) -> None:
    path = tree / "f.txt"
    await fs.open(OpenParams(handle_id="w", path=uri(path), mode="replace"))
    assert path.read_bytes() == b""
    await fs.write_block(WriteBlockParams(handle_id="w", offset=0, chunk=b64(b"abc")))
    await fs.write_block(WriteBlockParams(handle_id="w", offset=3, chunk=b64(b"def")))
    await fs.write_block(WriteBlockParams(handle_id="w", offset=10, chunk=b64(b"gap")))
    assert path.read_bytes() == b"abcdef\0\0\0\0gap"
    err = await rpc_error(read_block(fs, "w", 0, 1))
    assert (err.code, err.message) == (-32603, "Bad file descriptor (os error 9)")


async def test_write_block_errors(fs: FsService, tree: Path) -> None:
    await fs.open(OpenParams(handle_id="r", path=uri(tree / "f.txt")))
    err = await rpc_error(fs.write_block(WriteBlockParams(handle_id="r", offset=0, chunk="aGk=")))
    assert (err.code, err.message) == (-32603, "Bad file descriptor (os error 9)")
    err = await rpc_error(fs.write_block(WriteBlockParams(handle_id="r", offset=0, chunk="!!!")))
    assert (err.code, err.message) == (-32602, "Invalid symbol 33, offset 0.")
    err = await rpc_error(fs.write_block(WriteBlockParams(handle_id="r", offset=0, chunk="")))
    assert (err.code, err.message) == (
        -32600,
        "file write block length must be between 1 and 1048576",
    )
    err = await rpc_error(fs.write_block(WriteBlockParams(handle_id="x", offset=0, chunk="aGk=")))
    assert err.code == -32004


async def test_aclose_closes_every_handle(notes: object, tree: Path) -> None:
    service = FsService(notify=lambda m, p: None)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        await service.open(OpenParams(handle_id=str(i), path=uri(tree / "f.txt")))
    assert len(os.listdir("/proc/self/fd")) == before + 5
    await service.aclose()
    assert len(os.listdir("/proc/self/fd")) == before
    assert (await rpc_error(read_block(service, "0", 0, 1))).code == -32004
    assert (
        await rpc_error(service.open(OpenParams(handle_id="n", path=uri(tree / "f.txt"))))
    ).code == -32600


async def test_close_during_a_read_defers_closing_the_descriptor(fs: FsService, tree: Path) -> None:
    await fs.open(OpenParams(handle_id="h", path=uri(tree / "f.txt")))
    reads = [read_block(fs, "h", 0, 5) for _ in range(20)]
    # gather starts its tasks in order: every read has the handle before the close runs.
    async with asyncio.timeout(10):
        *results, closed = await asyncio.gather(
            *reads, fs.close(CloseParams(handle_id="h")), return_exceptions=True
        )
    assert not isinstance(closed, BaseException), closed
    for r in results:
        assert r == (b"hello", False) or getattr(r, "code", None) == -32004


async def test_a_100_mib_file_reads_by_blocks_with_bounded_memory(
    fs: FsService, tmp_path: Path
) -> None:
    path = tmp_path / "big"
    pattern = bytes(range(256)) * 4096  # 1 MiB
    create_file(path, pattern, repeat=100)
    await fs.open(OpenParams(handle_id="big", path=uri(path)))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    offset = 0
    blocks = 0
    while True:
        result = await fs.read_block(
            ReadBlockParams(handle_id="big", offset=offset, len=MAX_BLOCK_LEN)
        )
        chunk = base64.b64decode(result.chunk)
        if chunk:
            assert chunk == pattern[: len(chunk)]
        offset += len(chunk)
        blocks += 1
        if result.eof:
            break
    assert offset == 100 * MAX_BLOCK_LEN
    assert blocks == 101  # the 101st read finds the end
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 32 * 1024  # never near the file's 100 MiB


async def test_read_file_of_a_large_file_is_whole(fs: FsService, tmp_path: Path) -> None:
    path = tmp_path / "mid"
    path.write_bytes(os.urandom(3_000_000))
    result = await fs.read_file(ReadFileParams(path=uri(path)))
    assert base64.b64decode(result.data_base64) == path.read_bytes()
