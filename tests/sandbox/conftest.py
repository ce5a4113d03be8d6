"""The ``world`` of the escape cases (see ``escape_cases``): set up fresh for each test."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from escape_cases import PY, TIMEOUT, VICTIM, World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a").write_text("a")
    (root / "mnt").mkdir()
    (root / "link").symlink_to(outside)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("original")
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "listen.sock"))
    unix.listen()
    abstract_name = f"exec-server-test-{os.getpid()}-{id(tmp_path)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    # The victim blocks SIGUSR1, so a signal that got through stays visibly pending.
    victim = subprocess.Popen([PY, "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert victim.stdout is not None
    assert victim.stdout.readline() == b"ready\n"
    try:
        yield World(root, outside, tcp, udp, unix, abstract, abstract_name, victim)
    finally:
        victim.kill()
        victim.wait(TIMEOUT)
        for sock in (tcp, udp, unix, abstract):
            sock.close()
