"""fs/watchMissing and the fs/missingChanged notification (polling every 10 ms in these tests)."""

from __future__ import annotations

from pathlib import Path

from exec_server.fs import FsService
from exec_server_protocol.fs import MissingChangedNotification, WatchMissingParams
from fs_helpers import Recorder, rpc_error, uri


async def watch(fs: FsService, watch_id: int, *paths: Path, present: Path | None = None) -> bool:
    params = WatchMissingParams(
        watch_id=watch_id,
        missing=[uri(p) for p in paths],
        present=None if present is None else uri(present),
    )
    return (await fs.watch_missing(params)).watching


async def test_notifies_once_when_a_missing_path_appears(
    fs: FsService, notes: Recorder, tmp_path: Path
) -> None:
    assert await watch(fs, 1, tmp_path / "a", tmp_path / "b")
    (tmp_path / "b").touch()
    assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=1))
    # One-shot: the id is free again and nothing more is sent for watch 1.
    (tmp_path / "a").touch()
    assert await watch(fs, 2, tmp_path / "c")
    (tmp_path / "c").touch()
    assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=2))
    assert [n for _, n in notes.sent] == [
        MissingChangedNotification(watch_id=1),
        MissingChangedNotification(watch_id=2),
    ]


async def test_fires_on_the_first_change_in_the_ancestry(
    fs: FsService, notes: Recorder, tmp_path: Path
) -> None:
    assert await watch(fs, 7, tmp_path / "c" / "d" / "e")
    (tmp_path / "c").mkdir()
    assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=7))


async def test_fires_when_present_disappears(
    fs: FsService, notes: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "p").touch()
    assert await watch(fs, 3, tmp_path / "m", present=tmp_path / "p")
    (tmp_path / "p").unlink()
    assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=3))


async def test_does_not_watch_what_cannot_change(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "exists").touch()
    assert not await watch(fs, 1, tmp_path / "missing", tmp_path / "exists")
    assert not await watch(fs, 2)
    assert not await watch(fs, 3, tmp_path / "m", present=tmp_path / "absent")
    params = WatchMissingParams(watch_id=4, missing=["file://server/x"])
    assert not (await fs.watch_missing(params)).watching


async def test_a_duplicate_watch_id_is_refused_and_the_first_stays(
    fs: FsService, notes: Recorder, tmp_path: Path
) -> None:
    assert await watch(fs, 1, tmp_path / "a")
    assert not await watch(fs, 1, tmp_path / "b")
    (tmp_path / "a").touch()
    assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=1))


async def test_a_relative_uri_is_invalid_params(fs: FsService) -> None:
    err = await rpc_error(fs.watch_missing(WatchMissingParams(watch_id=1, missing=["relative"])))
    assert err.code == -32602


async def test_aclose_stops_every_watch(notes: Recorder, tmp_path: Path) -> None:
    service = FsService(notify=notes, watch_interval=0.01)
    assert await watch(service, 1, tmp_path / "a")
    await service.aclose()
    assert not await watch(service, 2, tmp_path / "b")
    (tmp_path / "a").touch()
    # A fresh service's watch on the same file fires, proving the poll would have seen it.
    other = FsService(notify=notes, watch_interval=0.01)
    try:
        assert await watch(other, 9, tmp_path / "z")
        (tmp_path / "z").touch()
        assert await notes.wait() == ("fs/missingChanged", MissingChangedNotification(watch_id=9))
    finally:
        await other.aclose()
    assert [n for _, n in notes.sent] == [MissingChangedNotification(watch_id=9)]
