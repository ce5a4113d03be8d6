"""Sandbox intents exactly as the stock Codex client sends them (docs/reference-notes.md §6.1),
for tests and benchmarks. They live in the client (``exec-server run --sandbox`` sends them)."""

from ..client._intents import PROTECTED, read_only, workspace_write

__all__ = ["PROTECTED", "read_only", "workspace_write"]
