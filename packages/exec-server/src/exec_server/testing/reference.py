"""Where the reference ``codex`` binary is (tests, interop and benchmarks compare against it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_BIN", "reference_bin"]

ENV_BIN = "EXEC_SERVER_REFERENCE_BIN"


def reference_bin(root: Path) -> str | None:
    """``$EXEC_SERVER_REFERENCE_BIN`` if set (``None`` when not executable), else the copy that
    ``scripts/install-reference`` puts in ``root/.reference/``, else ``None``."""
    env = os.environ.get(ENV_BIN)
    if env:
        return env if os.access(env, os.X_OK) else None
    found = sorted((root / ".reference" / "node_modules" / "@openai").glob("*/vendor/*/bin/codex"))
    return str(found[0]) if found else None
