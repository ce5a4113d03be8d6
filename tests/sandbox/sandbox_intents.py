"""Sandbox intents exactly as the stock Codex client sends them (docs/reference-notes.md §6.1)."""

from __future__ import annotations

from typing import Any

import msgspec
from exec_server.testing.intents import PROTECTED, read_only, workspace_write
from exec_server_protocol import decode_params
from exec_server_protocol.sandbox import SandboxIntent

__all__ = ["PROTECTED", "decode", "read_only", "workspace_write"]


def decode(raw: dict[str, Any]) -> SandboxIntent:
    """Through the wire codec, as the server would receive it."""
    return decode_params(msgspec.Raw(msgspec.json.encode(raw)), SandboxIntent)
