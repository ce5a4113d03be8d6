"""``client.files`` and ``sync_client.files`` end to end, against the module's real server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import Backoff, Client, RemoteError, SyncClient, connect
from exec_server.client.files import DirEntry
from exec_server.testing import FaultProxy

from tests.support import BackgroundServer, wait_until


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_a_10_mib_random_file_round_trips_with_a_native_path(
    ec: Client, tmp_path: Path
) -> None:
    data = os.urandom(10 << 20)
    target = tmp_path / "random.bin"
    async with asyncio.timeout(60):
        await ec.files.write_bytes(target, data)
        assert target.read_bytes() == data
        assert await ec.files.read_bytes(str(target)) == data


def test_a_10_mib_random_file_round_trips_through_the_sync_client(
    server: BackgroundServer, tmp_path: Path
) -> None:
    data = os.urandom(10 << 20)
    target = tmp_path / "random.bin"
    with SyncClient.connect(server.url) as sc:
        sc.files.write_bytes(target, data)
        assert sc.files.read_bytes(target) == data
        sc.files.write_text(tmp_path / "t.txt", "héllo")
        assert sc.files.read_text(tmp_path / "t.txt") == "héllo"
        assert sc.files.exists(target)
        with pytest.raises(FileNotFoundError):
            sc.files.read_bytes(tmp_path / "missing")


async def test_reading_a_missing_file_raises_file_not_found_naming_it(
    ec: Client, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as caught:
        await ec.files.read_bytes(missing)
    assert caught.value.filename == str(missing)
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, RemoteError)


async def test_os_errors_are_the_builtin_classes(ec: Client, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(IsADirectoryError):
        await ec.files.read_bytes(tmp_path)
    with pytest.raises(NotADirectoryError):
        await ec.files.list(tmp_path / "f")
    with pytest.raises(FileExistsError):
        await ec.files.mkdir(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        await ec.files.write_bytes(tmp_path / "no" / "such", b"")
    with pytest.raises(ValueError, match="absolute"):
        await ec.files.read_bytes("relative/path")


async def test_directories_listing_stat_copy_walk_and_remove(ec: Client, tmp_path: Path) -> None:
    files = ec.files
    await files.mkdir(tmp_path / "a" / "b", parents=True)
    await files.mkdir(tmp_path / "a" / "b", parents=True, exist_ok=True)
    with pytest.raises(FileExistsError):
        await files.mkdir(tmp_path / "a" / "b", parents=True)
    await files.write_text(tmp_path / "a" / "b" / "f.txt", "hello")
    assert await files.list(tmp_path / "a") == [
        DirEntry("b", str(tmp_path / "a" / "b"), is_dir=True, is_file=False)
    ]
    st = await files.stat(tmp_path / "a" / "b" / "f.txt")
    assert (st.size, st.is_file, st.is_dir) == (5, True, False)
    assert st.modified_at == pytest.approx(os.stat(tmp_path / "a" / "b" / "f.txt").st_mtime, 0.01)
    await files.copy(tmp_path / "a", tmp_path / "c", recursive=True)
    walked = {(e.path, e.kind) for e in await files.walk(tmp_path / "c")}
    assert walked == {
        (str(tmp_path / "c" / "b"), "directory"),
        (str(tmp_path / "c" / "b" / "f.txt"), "file"),
    }
    with pytest.raises(OSError, match="not empty"):
        await files.remove(tmp_path / "c")
    await files.remove(tmp_path / "c", recursive=True)
    assert not await files.exists(tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        await files.remove(tmp_path / "c")
    await files.remove(tmp_path / "c", missing_ok=True)


async def test_streaming_open_read_and_write_in_blocks(ec: Client, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    target = tmp_path / "big.bin"
    async with asyncio.timeout(60):
        async with await ec.files.open(target, "wb") as f:
            await f.write(data[:1000])
            await f.write(data[1000:])
        assert target.read_bytes() == data
        async with await ec.files.open(target) as f:
            assert await f.read(10) == data[:10]
            blocks = [block async for block in f]
        assert b"".join(blocks) == data[10:]


async def test_a_watch_sees_a_path_that_appeared_while_its_notification_was_lost(
    server: BackgroundServer, tmp_path: Path
) -> None:
    """The server fires a watch once and does not keep the notification for a dropped
    connection: the client's watch looks again once the session is resumed."""
    target = tmp_path / "late"
    async with (
        FaultProxy.for_url(server.url) as proxy,
        asyncio.timeout(30),
        connect(
            proxy.url, reconnect_deadline=20, backoff=Backoff(initial=0.002, maximum=0.05)
        ) as c,
    ):
        watch = c.files.watch(target)
        waiter = asyncio.ensure_future(anext(watch))
        # Armed: the watch listens and its fs/watchMissing has been answered.
        await wait_until(lambda: bool(c._listeners.get("fs/missingChanged")) and not c._calls)
        proxy.hold_replies()
        target.write_text("x")
        # The server fired: its notification is held by the proxy ...
        await wait_until(
            lambda: any(b"fs/missingChanged" in data for _, data in proxy.withheld or ())
        )
        proxy.cut_all()  # ... and lost with the connection
        proxy.release_replies()
        assert await waiter == [str(target)]
        assert c.reconnects >= 1
        await watch.aclose()


async def test_watch_yields_paths_as_they_appear(ec: Client, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "deep" / "two"
    seen: list[str] = []
    async with asyncio.timeout(20):
        watch = ec.files.watch(first, second)
        waiter = asyncio.ensure_future(anext(watch))
        first.write_text("1")
        seen += await waiter
        second.parent.mkdir()
        second.write_text("2")
        async for appeared in watch:
            seen += appeared
    assert seen == [str(first), str(second)]
