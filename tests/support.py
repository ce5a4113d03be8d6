"""Helpers shared by the tests."""

from __future__ import annotations

import os
from typing import Any

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def start_params(process_id: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    """process/start params with the defaults tests use (cwd /tmp, a minimal env)."""
    params: dict[str, Any] = {
        "processId": process_id,
        "argv": argv,
        "cwd": "file:///tmp",
        "env": dict(ENV),
        "tty": False,
    }
    params.update(extra)
    return params
