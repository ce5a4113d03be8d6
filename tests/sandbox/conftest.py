"""The ``world`` of the escape cases (see ``escape_cases``): set up fresh for each test."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from escape_cases import PY, TIMEOUT, VICTIM, World

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"
"""What another account runs (the venv's interpreter may live where it cannot reach)."""


def _chown_tree(top: Path, uid: int) -> None:
    os.chown(top, uid, uid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


@contextlib.contextmanager
def make_world(base: Path, *, uid: int = 0) -> Iterator[World]:
    """A world in ``base`` whose files, victim and interpreter belong to account ``uid``."""
    root = base / "root"
    outside = base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a").write_text("a")
    (root / "mnt").mkdir()
    (root / "link").symlink_to(outside)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("original")
    tool = outside / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.utime(tool, (1_000_000_000, 1_000_000_000))
    py = PY if uid == 0 else SYSTEM_PYTHON
    prefix = [] if uid == 0 else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    if uid:
        base.chmod(0o755)
        _chown_tree(base, uid)
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "listen.sock"))
    (outside / "listen.sock").chmod(0o777)
    unix.listen()
    abstract_name = f"exec-server-test-{os.getpid()}-{id(base)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    # The victim blocks SIGUSR1, so a signal that got through stays visibly pending.
    victim = subprocess.Popen(
        [*prefix, py, "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert victim.stdout is not None
    assert victim.stdout.readline() == b"ready\n"
    try:
        yield World(root, outside, tcp, udp, unix, abstract, abstract_name, victim, py=py, uid=uid)
    finally:
        victim.kill()
        victim.wait(TIMEOUT)
        for sock in (tcp, udp, unix, abstract):
            sock.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path) as w:
        yield w


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A fresh directory every account can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="exec-server-world-"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
