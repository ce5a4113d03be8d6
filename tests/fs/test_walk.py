"""fs/walk: breadth-first order, kinds, symlink and hidden-directory rules, and the three limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from exec_server.fs import FsService
from exec_server_protocol.fs import WalkOptions, WalkParams, WalkResult
from fs_helpers import create_file, rpc_error, uri


def opts(**kw: object) -> WalkOptions:
    base: dict[str, object] = {"max_depth": 10, "max_entries": 100, "max_directories": 100}
    base.update(kw)
    return WalkOptions(**base)  # type: ignore[arg-type]  # test shorthand


async def walk(fs: FsService, root: Path, **kw: object) -> WalkResult:
    return await fs.walk(WalkParams(path=uri(root), options=opts(**kw)))


def rel(result: WalkResult, root: Path) -> list[tuple[str, str]]:
    prefix = uri(root) + "/"
    return [(e.path.removeprefix(prefix), e.kind) for e in result.entries]


async def test_walk_is_breadth_first_sorted_and_skips_symlinks(fs: FsService, tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    result = await walk(fs, tree)
    assert rel(result, tree) == [
        ("d", "directory"),
        ("f.txt", "file"),
        ("d/a", "file"),
        ("d/sub", "directory"),
        ("d/sub/.hidden", "directory"),
        ("d/sub/b", "file"),
        ("d/sub/.hidden/c", "file"),
    ]
    assert (result.errors, result.truncated) == ([], False)


async def test_walk_follows_directory_symlinks_once(fs: FsService, tree: Path) -> None:
    (tree / "d" / "up").symlink_to(tree / "d")  # a loop
    result = await walk(fs, tree, follow_directory_symlinks=True)
    got = rel(result, tree)
    assert ("dlink", "directory") in got
    assert ("d/up", "directory") in got
    assert not any(p.startswith(("dlink/", "d/up/")) for p, _ in got)  # d is walked once
    assert ("link", "file") not in got


async def test_walk_of_a_directory_symlink_root(fs: FsService, tree: Path) -> None:
    assert (await walk(fs, tree / "dlink")).entries == []
    followed = await walk(fs, tree / "dlink", follow_directory_symlinks=True)
    assert ("a", "file") in rel(followed, tree / "dlink")


async def test_walk_prunes_hidden_directories_but_lists_them(fs: FsService, tree: Path) -> None:
    got = rel(await walk(fs, tree, prune_hidden_directories=True), tree)
    assert ("d/sub/.hidden", "directory") in got
    assert ("d/sub/.hidden/c", "file") not in got


async def test_walk_max_depth(fs: FsService, tree: Path) -> None:
    assert rel(await walk(fs, tree, max_depth=0), tree) == [("d", "directory"), ("f.txt", "file")]
    depth1 = await walk(fs, tree, max_depth=1)
    assert [p for p, _ in rel(depth1, tree)] == ["d", "f.txt", "d/a", "d/sub"]
    assert depth1.truncated is False


async def test_walk_max_entries_counts_every_name_and_truncates(
    fs: FsService, tmp_path: Path
) -> None:
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "x").touch()
    (tmp_path / "d1" / "y").touch()
    exact = await walk(fs, tmp_path, max_entries=4)
    assert (len(exact.entries), exact.truncated) == (4, False)
    cut = await walk(fs, tmp_path, max_entries=3)
    assert (rel(cut, tmp_path), cut.truncated) == (
        [("d1", "directory"), ("d2", "directory"), ("x", "file")],
        True,
    )


async def test_walk_max_directories_counts_the_root(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "d1" / "y").touch()
    assert (await walk(fs, tmp_path, max_directories=3)).truncated is False
    two = await walk(fs, tmp_path, max_directories=2)
    assert (len(two.entries), two.truncated) == (3, True)
    one = await walk(fs, tmp_path, max_directories=1)
    assert (len(one.entries), one.truncated) == (2, True)


@pytest.mark.parametrize("field", ["max_entries", "max_directories"])
async def test_walk_zero_limit_is_an_invalid_request(fs: FsService, tree: Path, field: str) -> None:
    err = await rpc_error(walk(fs, tree, **{field: 0}))
    assert (err.code, err.message) == (-32600, "filesystem walk limits must be greater than zero")


async def test_walk_limits_above_the_maximums_are_refused(fs: FsService, tree: Path) -> None:
    err = await rpc_error(walk(fs, tree, max_entries=50_001))
    assert err.code == -32600
    assert err.message.startswith("filesystem walk limits exceed maximums")


async def test_walk_negative_limit_is_invalid_params(fs: FsService, tree: Path) -> None:
    assert (await rpc_error(walk(fs, tree, max_depth=-1))).code == -32602


async def test_walk_of_a_file_is_empty_and_of_a_missing_path_not_found(
    fs: FsService, tree: Path
) -> None:
    result = await walk(fs, tree / "f.txt")
    assert (result.entries, result.errors, result.truncated) == ([], [], False)
    assert (await rpc_error(walk(fs, tree / "missing"))).code == -32004


async def test_walk_with_omitted_limits_uses_the_maximums(fs: FsService, tree: Path) -> None:
    result = await fs.walk(WalkParams(path=uri(tree)))
    assert len(result.entries) == 7


async def test_walk_reports_non_utf8_names_as_exact_path_uris(
    fs: FsService, tmp_path: Path
) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9"
    create_file(raw)
    result = await walk(fs, tmp_path)
    assert [e.path for e in result.entries] == [uri(tmp_path) + "/caf%E9"]
