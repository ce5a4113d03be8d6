"""Sandbox intents exactly as the stock Codex client sends them (docs/reference-notes.md §6.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from exec_server_protocol import decode_params
from exec_server_protocol.sandbox import SandboxIntent

PROTECTED = (".git", ".agents", ".codex", ".aws")


def _special(kind: str, access: str, subpath: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"kind": kind}
    entry: dict[str, Any] = {"path": {"type": "special", "value": value}, "access": access}
    if subpath is not None:
        value["subpath"] = subpath
        entry["missing_path_behavior"] = "skip"
    return entry


def read_only() -> dict[str, Any]:
    return {
        "permissions": {
            "type": "managed",
            "network": "restricted",
            "file_system": {"type": "restricted", "entries": [_special("root", "read")]},
        },
        "windowsSandboxLevel": "disabled",
    }


def workspace_write(root: Path, *, subpaths: bool = True) -> dict[str, Any]:
    entries = [_special("root", "read"), _special("project_roots", "write")]
    if subpaths:
        entries += [_special("project_roots", "read", name) for name in PROTECTED[:3]]
    return {
        "permissions": {
            "type": "managed",
            "network": "restricted",
            "file_system": {"type": "restricted", "entries": entries},
        },
        "windowsSandboxLevel": "disabled",
        "cwd": f"file://{root}",
        "workspaceRoots": [f"file://{root}"],
    }


def decode(raw: dict[str, Any]) -> SandboxIntent:
    """Through the wire codec, as the server would receive it."""
    return decode_params(msgspec.Raw(msgspec.json.encode(raw)), SandboxIntent)
