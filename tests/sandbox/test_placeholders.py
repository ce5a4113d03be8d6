"""Placeholder directories (``_mounts.PLACEHOLDERS``): shared while used, removed off-thread
once unused, kept when taken again before the worker removed them."""

from __future__ import annotations

import threading
from pathlib import Path

from escape_cases import wait_for
from exec_server.sandbox._mounts import PLACEHOLDERS, _Placeholders


def test_a_missing_path_gets_a_read_only_placeholder_that_goes_once_released(
    tmp_path: Path,
) -> None:
    target, ours = PLACEHOLDERS.hold(str(tmp_path / ".agents"))
    assert (target, ours) == (str(tmp_path / ".agents"), True)
    assert (tmp_path / ".agents").stat().st_mode & 0o777 == 0o555
    PLACEHOLDERS.release(target)
    assert wait_for(lambda: not (tmp_path / ".agents").exists())


def test_the_first_missing_ancestor_is_the_placeholder(tmp_path: Path) -> None:
    target, ours = PLACEHOLDERS.hold(str(tmp_path / "sub" / "deeper"))
    assert (target, ours) == (str(tmp_path / "sub"), True)
    again, _ = PLACEHOLDERS.hold(str(tmp_path / "sub" / "other"))
    assert again == str(tmp_path / "sub")
    PLACEHOLDERS.release(target)
    PLACEHOLDERS.release(again)
    assert wait_for(lambda: not (tmp_path / "sub").exists())


def test_an_existing_path_needs_no_placeholder(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert PLACEHOLDERS.hold(str(tmp_path / ".git")) == (None, False)


def test_a_placeholder_taken_again_before_removal_survives(tmp_path: Path) -> None:
    placeholders = _Placeholders()
    placeholders._worker = threading.Thread()  # no worker: releases stay queued until flush
    path = str(tmp_path / ".codex")
    assert placeholders.hold(path) == (path, True)
    placeholders.release(path)
    assert placeholders.hold(path) == (path, True)  # revived from the queue, not re-made
    placeholders.flush()
    assert (tmp_path / ".codex").is_dir()
    placeholders.release(path)
    placeholders.flush()
    assert not (tmp_path / ".codex").exists()


def test_a_placeholder_something_was_put_into_is_left_alone(tmp_path: Path) -> None:
    placeholders = _Placeholders()
    target, _ = placeholders.hold(str(tmp_path / ".aws"))
    assert target is not None
    (tmp_path / ".aws").chmod(0o755)
    (tmp_path / ".aws" / "credentials").write_text("kept")
    placeholders.release(target)
    placeholders.flush()
    assert (tmp_path / ".aws" / "credentials").read_text() == "kept"
