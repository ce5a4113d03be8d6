"""Permissions (as an unprivileged user in a child process), non-UTF-8 names, and the sandbox
intent on fs methods."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_server.fs import FsService
from exec_server_protocol.fs import (
    CanonicalizeParams,
    CloseParams,
    GetMetadataParams,
    OpenParams,
    ReadBlockParams,
    ReadDirectoryParams,
    ReadFileParams,
    WriteBlockParams,
    WriteFileParams,
)
from exec_server_protocol.sandbox import (
    FileSystemEntry,
    ManagedPermissions,
    PathEntryPath,
    RestrictedFileSystem,
    SandboxIntent,
    SpecialPath,
    SpecialValue,
)
from fs_helpers import lexists, realpath, rpc_error, uri

NOBODY = 65534

# Runs fs calls as an unprivileged user (root bypasses file permissions) and prints, per call,
# "ok" or [code, message].
# Everything is imported before dropping privileges: the interpreter may live under /root.
_CHILD = r"""
import asyncio, json, os, sys
from exec_server.exceptions import ExecServerError
from exec_server.wire_errors import wire_error
from exec_server.fs import FsService
from exec_server_protocol.fs import *
import concurrent.futures.thread, encodings.idna

async def warm_up():  # loads every lazily imported module while we still can
    fs = FsService(notify=lambda m, p: None)
    await fs.read_directory(ReadDirectoryParams(path=sys.argv[4]))
    await fs.aclose()

asyncio.run(warm_up())
if os.geteuid() == 0:
    os.setgroups([])
    os.setresgid(%(uid)d, %(uid)d, %(uid)d)
    os.setresuid(%(uid)d, %(uid)d, %(uid)d)

async def main():
    fs = FsService(notify=lambda m, p: None)
    calls = {
        "read": fs.read_file(ReadFileParams(path=sys.argv[1])),
        "write": fs.write_file(WriteFileParams(path=sys.argv[2], data_base64="aGk=")),
        "list": fs.read_directory(ReadDirectoryParams(path=sys.argv[3])),
        "open": fs.open(OpenParams(handle_id="h", path=sys.argv[1])),
        "walk": fs.walk(WalkParams(path=sys.argv[4], options=WalkOptions(
            max_depth=5, max_entries=100, max_directories=100))),
    }
    out = {}
    for name, call in calls.items():
        try:
            result = await call
            out[name] = "ok" if name != "walk" else [
                [e.path, e.message] for e in result.errors]
        except ExecServerError as exc:
            known = wire_error(exc)
            out[name] = [known.code, known.message]
    await fs.aclose()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="exec-server-fs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_permission_errors_are_invalid_request_with_the_os_text(shared_dir: Path) -> None:
    secret = shared_dir / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0o000)
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(locked, 0o700)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD % {"uid": NOBODY},
            uri(secret),
            uri(locked / "new"),
            uri(locked),
            uri(shared_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    denied = [-32600, "Permission denied (os error 13)"]  # the reference's code for EACCES
    assert out["read"] == denied
    assert out["write"] == denied
    assert out["list"] == denied
    assert out["open"] == denied
    assert out["walk"] == [[uri(locked), "Permission denied (os error 13)"]]
    assert not (locked / "new").exists()


async def test_non_utf8_names_round_trip_through_path_uris(fs: FsService, tmp_path: Path) -> None:
    name_uri = uri(tmp_path) + "/caf%E9"
    await fs.write_file(WriteFileParams(path=name_uri, data_base64="bGF0aW4="))
    assert lexists(os.fsencode(tmp_path) + b"/caf\xe9")
    read = await fs.read_file(ReadFileParams(path=name_uri))
    assert base64.b64decode(read.data_base64) == b"latin"
    assert (await fs.get_metadata(GetMetadataParams(path=name_uri))).size == 5
    canonical = await fs.canonicalize(CanonicalizeParams(path=name_uri))
    assert canonical.path == uri(realpath(tmp_path)) + "/caf%E9"
    listing = await fs.read_directory(ReadDirectoryParams(path=uri(tmp_path)))
    # fileName is a JSON string, so the odd byte is replaced there (as the reference does).
    assert [e.file_name for e in listing.entries] == ["caf\ufffd"]


def _read_only_intent(cwd: Path) -> SandboxIntent:
    root_read = FileSystemEntry(path=SpecialPath(value=SpecialValue(kind="root")), access="read")
    return SandboxIntent(
        permissions=ManagedPermissions(file_system=RestrictedFileSystem(entries=[root_read])),
        cwd=uri(cwd),
    )


def _workspace_write_intent(root: Path) -> SandboxIntent:
    entries = [
        FileSystemEntry(path=SpecialPath(value=SpecialValue(kind="root")), access="read"),
        FileSystemEntry(path=PathEntryPath(path=uri(root)), access="write"),
    ]
    return SandboxIntent(
        permissions=ManagedPermissions(file_system=RestrictedFileSystem(entries=entries)),
        cwd=uri(root),
        workspace_roots=[uri(root)],
    )


async def test_a_sandboxed_write_outside_the_writable_roots_changes_nothing(
    fs: FsService, tmp_path: Path
) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"old")
    params = WriteFileParams(
        path=uri(target), data_base64="bmV3", sandbox=_read_only_intent(tmp_path)
    )
    err = await rpc_error(fs.write_file(params))
    assert err.message in {
        "Read-only file system (os error 30)",  # the reference's read-only mount
        "Permission denied (os error 13)",  # our Landlock sandbox
    }
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.txt"]


async def test_a_sandboxed_write_denial_is_read_only_file_system(
    fs: FsService, tmp_path: Path
) -> None:
    params = WriteFileParams(
        path=uri(tmp_path / "new"), data_base64="bmV3", sandbox=_read_only_intent(tmp_path)
    )
    err = await rpc_error(fs.write_file(params))
    assert (err.code, err.message) == (-32603, "Read-only file system (os error 30)")
    assert not (tmp_path / "new").exists()


async def test_a_sandboxed_write_inside_a_writable_root_succeeds(
    fs: FsService, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    params = WriteFileParams(
        path=uri(root / "ok.txt"), data_base64="b2s=", sandbox=_workspace_write_intent(root)
    )
    await fs.write_file(params)
    assert (root / "ok.txt").read_bytes() == b"ok"
    read = await fs.read_file(
        ReadFileParams(path=uri(root / "ok.txt"), sandbox=_read_only_intent(root))
    )
    assert read.data_base64 == "b2s="


async def test_a_sandboxed_open_reads_and_refuses_replace_outside_writable_roots(
    fs: FsService, tmp_path: Path
) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"keep me")
    intent = _read_only_intent(tmp_path)
    await fs.open(OpenParams(handle_id="r", path=uri(target), sandbox=intent))
    block = await fs.read_block(ReadBlockParams(handle_id="r", offset=0, len=4))
    assert base64.b64decode(block.chunk) == b"keep"
    params = OpenParams(handle_id="w", path=uri(target), mode="replace", sandbox=intent)
    err = await rpc_error(fs.open(params))
    assert err.message in {"Read-only file system (os error 30)", "Permission denied (os error 13)"}
    assert target.read_bytes() == b"keep me"
    await fs.open(OpenParams(handle_id="w", path=uri(target), mode="replace"))  # id still free


async def test_a_sandboxed_replace_open_inside_a_writable_root_writes_blocks(
    fs: FsService, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    intent = _workspace_write_intent(root)
    await fs.open(OpenParams(handle_id="w", path=uri(root / "n"), mode="replace", sandbox=intent))
    await fs.write_block(WriteBlockParams(handle_id="w", offset=0, chunk="b2s="))
    await fs.close(CloseParams(handle_id="w"))
    assert (root / "n").read_bytes() == b"ok"
