"""Sandbox intents as raw JSON objects, exactly as the stock Codex client sends them
(docs/reference-notes.md §6.1), for tests and benchmarks that speak the wire directly. A client
uses the typed :mod:`exec_server.client.sandbox` instead."""

from __future__ import annotations

from os import PathLike
from typing import Any

__all__ = ["PROTECTED", "read_only", "workspace_write"]

PROTECTED = (".git", ".agents", ".codex", ".aws")
"""Names kept read-only inside every writable root (Codex lists the first three)."""


def _special(kind: str, access: str, subpath: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"kind": kind}
    entry: dict[str, Any] = {"path": {"type": "special", "value": value}, "access": access}
    if subpath is not None:
        value["subpath"] = subpath
        entry["missing_path_behavior"] = "skip"
    return entry


def _managed(entries: list[dict[str, Any]], root: str | PathLike[str] | None) -> dict[str, Any]:
    intent: dict[str, Any] = {
        "permissions": {
            "type": "managed",
            "network": "restricted",
            "file_system": {"type": "restricted", "entries": entries},
        },
        "windowsSandboxLevel": "disabled",
    }
    if root is not None:
        intent["cwd"] = f"file://{root}"
        intent["workspaceRoots"] = [f"file://{root}"]
    return intent


def read_only(root: str | PathLike[str] | None = None) -> dict[str, Any]:
    """Codex's read-only intent: the whole file system readable, nothing writable."""
    return _managed([_special("root", "read")], root)


def workspace_write(root: str | PathLike[str], *, subpaths: bool = True) -> dict[str, Any]:
    """Codex's workspace-write intent for ``root`` (an absolute path)."""
    entries = [_special("root", "read"), _special("project_roots", "write")]
    if subpaths:
        entries += [_special("project_roots", "read", name) for name in PROTECTED[:3]]
    return _managed(entries, root)
