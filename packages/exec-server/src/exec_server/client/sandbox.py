"""Typed sandbox intents for :meth:`Client.start`, :meth:`Client.run` and ``client.files``.

The executor enforces the intent (docs/protocol.md §8); these helpers build the two policies an
agent harness uses most, in the exact shape the stock Codex client sends::

    from exec_server.client import sandbox

    await client.run(["make"], cwd=root, sandbox=sandbox.workspace_write(root))
    await client.run(["cat", "/etc/hostname"], sandbox=sandbox.read_only())

A command the sandbox probably stopped raises :class:`~exec_server.exceptions.SandboxDenied`
from ``wait()``, ``communicate()`` and ``run()``; an fs call it refused raises
:class:`PermissionError`.
"""

from __future__ import annotations

from exec_server_protocol.sandbox import (
    Access,
    FileSystemEntry,
    ManagedPermissions,
    NetworkPolicy,
    RestrictedFileSystem,
    SandboxIntent,
    SpecialKind,
    SpecialPath,
    SpecialValue,
)

from ._paths import RemotePath, to_uri

__all__ = ["PROTECTED", "SandboxIntent", "read_only", "workspace_write"]

PROTECTED = (".git", ".agents", ".codex")
"""Names kept read-only inside every writable root (as Codex asks)."""


def _special(kind: SpecialKind, access: Access, subpath: str | None = None) -> FileSystemEntry:
    return FileSystemEntry(
        path=SpecialPath(value=SpecialValue(kind=kind, subpath=subpath)),
        access=access,
        missing_path_behavior="skip" if subpath is not None else None,
    )


def _intent(
    entries: list[FileSystemEntry], roots: list[RemotePath], network: bool
) -> SandboxIntent:
    uris = [to_uri(r) for r in roots]
    policy: NetworkPolicy = "enabled" if network else "restricted"
    return SandboxIntent(
        permissions=ManagedPermissions(
            file_system=RestrictedFileSystem(entries=entries), network=policy
        ),
        windows_sandbox_level="disabled",
        cwd=uris[0] if uris else None,
        workspace_roots=uris or None,
    )


def read_only(cwd: RemotePath | None = None, *, network: bool = False) -> SandboxIntent:
    """The whole file system readable, nothing writable; no network unless ``network``.

    Args:
        cwd: the command's project directory (a native absolute path or ``file:`` URI).
    """
    return _intent([_special("root", "read")], [cwd] if cwd is not None else [], network)


def workspace_write(
    root: RemotePath,
    *more_roots: RemotePath,
    network: bool = False,
    protected: tuple[str, ...] = PROTECTED,
) -> SandboxIntent:
    """Everything readable; ``root`` (and ``more_roots``) writable except the ``protected``
    names inside them (``.git``, ``.agents``, ``.codex``); no network unless ``network``."""
    entries = [_special("root", "read"), _special("project_roots", "write")]
    entries += [_special("project_roots", "read", name) for name in protected]
    return _intent(entries, [root, *more_roots], network)
