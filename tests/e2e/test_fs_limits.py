"""The reference's limits on whole-file and whole-directory reads, against a real server:
one request cannot make the server hold gigabytes (issue 12)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from exec_server.fs._ops import MAX_READ_DIRECTORY_ENTRIES, MAX_READ_FILE_BYTES
from exec_server.testing import RawClient, RawRpcError


async def test_read_file_over_512_mib_is_refused_with_the_reference_error(
    client: RawClient, tmp_path: Path
) -> None:
    assert MAX_READ_FILE_BYTES == 512 * 1024 * 1024
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as f:
        f.truncate(MAX_READ_FILE_BYTES + 1)  # no blocks allocated: nothing is really read
    with pytest.raises(RawRpcError) as err:
        await client.call("fs/readFile", {"path": sparse.as_uri()})
    assert (err.value.code, err.value.message) == (
        -32600,
        "file is too large to read: limit is 536870912 bytes",
    )
    # The connection and the file methods keep working; streaming reads are the way through.
    small = tmp_path / "small"
    small.write_bytes(b"fine")
    result = await client.call("fs/readFile", {"path": small.as_uri()})
    assert base64.b64decode(result["dataBase64"]) == b"fine"
    opened = await client.call("fs/open", {"path": sparse.as_uri(), "handleId": "h"})
    block = await client.call(
        "fs/readBlock", {"handleId": opened["handleId"], "offset": MAX_READ_FILE_BYTES, "len": 8}
    )
    assert base64.b64decode(block["chunk"]) == b"\0"


def make_entries(directory: Path, n: int) -> None:
    directory.mkdir()
    for i in range(n):
        os.close(os.open(directory / str(i), os.O_CREAT | os.O_WRONLY, 0o644))


async def test_read_directory_over_50000_entries_is_refused_with_the_reference_error(
    client: RawClient, tmp_path: Path
) -> None:
    assert MAX_READ_DIRECTORY_ENTRIES == 50_000
    at_limit = tmp_path / "at-limit"
    make_entries(at_limit, MAX_READ_DIRECTORY_ENTRIES)
    result = await client.call("fs/readDirectory", {"path": at_limit.as_uri()})
    assert len(result["entries"]) == MAX_READ_DIRECTORY_ENTRIES
    os.close(os.open(at_limit / "one-more", os.O_CREAT | os.O_WRONLY, 0o644))
    with pytest.raises(RawRpcError) as err:
        await client.call("fs/readDirectory", {"path": at_limit.as_uri()})
    assert (err.value.code, err.value.message) == (
        -32603,
        "fs/readDirectory returned 50001 entries; limit is 50000",
    )
    assert (await client.call("environment/info"))["platformOs"] == "linux"
