"""Locating the reference `codex exec-server` (opt-in; these tests skip without it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.testing import ServerProcess
from exec_server.testing.reference import reference_bin

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def reference() -> AsyncIterator[ServerProcess]:
    binary = reference_bin(ROOT)
    if binary is None:
        pytest.skip("reference codex not installed (scripts/install-reference)")
    # Its CODEX_HOME must not be under /tmp: it could not set up its sandbox helpers there.
    home = tempfile.mkdtemp(prefix="codex-ref-home-", dir="/var/tmp")
    env = dict(os.environ, CODEX_HOME=home)
    try:
        async with ServerProcess(
            "exec-server", "--listen", "ws://127.0.0.1:0", command=[binary], env=env
        ) as s:
            yield s
    finally:
        shutil.rmtree(home, ignore_errors=True)
