"""The fs-method escape cases as data (shared by the root suite and the configurations).

Each op writes into a directory (``FS_TARGETS``) through one fs method, under a sandbox intent or
none; ``tree`` snapshots everything under a directory so a test can tell that nothing changed.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from escape_cases import World
from exec_server.testing import RawClient, RawRpcError
from sandbox_intents import read_only, workspace_write

_ids = itertools.count(1)

FsOp = Callable[[RawClient, World, str, "dict[str, Any] | None"], Awaitable[None]]


def _uri(path: str) -> str:
    return f"file://{path}"


def _with_sandbox(params: dict[str, Any], sandbox: dict[str, Any] | None) -> dict[str, Any]:
    if sandbox is not None:
        params["sandbox"] = sandbox
    return params


async def _write_file(c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None) -> None:
    await c.call(
        "fs/writeFile", _with_sandbox({"path": _uri(f"{base}/new"), "dataBase64": "eA=="}, sandbox)
    )


async def _overwrite_file(
    c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None
) -> None:
    await c.call(
        "fs/writeFile",
        _with_sandbox({"path": _uri(f"{base}/victim"), "dataBase64": "eA=="}, sandbox),
    )


async def _create_directory(
    c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None
) -> None:
    params = {"path": _uri(f"{base}/newdir/sub"), "recursive": True}
    await c.call("fs/createDirectory", _with_sandbox(params, sandbox))


async def _remove(c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None) -> None:
    params = {"path": _uri(f"{base}/victim"), "recursive": True, "force": True}
    await c.call("fs/remove", _with_sandbox(params, sandbox))


async def _copy(c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None) -> None:
    params = {
        "sourcePath": _uri(f"{w.root}/a"),
        "destinationPath": _uri(f"{base}/copied"),
        "recursive": False,
    }
    await c.call("fs/copy", _with_sandbox(params, sandbox))


async def _open_replace_write_block(
    c: RawClient, w: World, base: str, sandbox: dict[str, Any] | None
) -> None:
    handle = f"h-{next(_ids)}"
    params = {"handleId": handle, "path": _uri(f"{base}/victim"), "mode": "replace"}
    try:
        await c.call("fs/open", _with_sandbox(params, sandbox))
    except RawRpcError:
        # Nothing was opened: a block written to the handle anyway must not land anywhere.
        with pytest.raises(RawRpcError):
            await c.call("fs/writeBlock", {"handleId": handle, "offset": 0, "chunk": "eA=="})
        raise
    await c.call("fs/writeBlock", {"handleId": handle, "offset": 0, "chunk": "eA=="})
    await c.call("fs/close", {"handleId": handle})


FS_OPS: dict[str, FsOp] = {
    "writeFile new": _write_file,
    "writeFile existing": _overwrite_file,
    "createDirectory": _create_directory,
    "remove": _remove,
    "copy": _copy,
    "open replace + writeBlock": _open_replace_write_block,
}

FS_TARGETS = {
    "outside": "{out}",
    "through a symlink": "{root}/link",
    "into .git": "{root}/.git",
}
"""Where the fs method writes (its directory); ``.git`` only matters under workspace-write."""

FS_PARAMS = [
    (op, target, intent)
    for op in FS_OPS
    for target in FS_TARGETS
    for intent in ("workspace-write", "read-only")
] + [(op, "inside the root", "read-only") for op in FS_OPS]


def tree(top: Path) -> dict[str, tuple[str, bytes | int]]:
    """Everything under ``top``: type and content (files), target (links), mode (the rest)."""
    found: dict[str, tuple[str, bytes | int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[path] = ("link", os.fsencode(os.readlink(path)))
            elif stat.S_ISREG(st.st_mode):
                found[path] = ("file", Path(path).read_bytes())
            else:
                found[path] = ("other", st.st_mode)
    return found


def prepare_fs_world(w: World) -> None:
    for directory in (w.outside, w.root, w.root / ".git"):
        (directory / "victim").write_text("victim")


def fs_intent(intent: str, w: World) -> dict[str, Any]:
    return read_only() if intent == "read-only" else workspace_write(w.root)
