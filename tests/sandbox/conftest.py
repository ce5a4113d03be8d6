"""The ``world`` of the escape cases (see ``escape_cases``): set up fresh for each test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from escape_cases import World, make_world, require_kernel_features


@pytest.fixture(scope="module")
def kernel_features() -> None:
    """Fails the module's tests loudly when this host cannot enforce the sandbox (mark a
    module with ``pytestmark = pytest.mark.usefixtures("kernel_features")``)."""
    require_kernel_features()


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
