"""The sandbox *intent* a client sends (docs/protocol.md §8).

The permission objects use snake_case and a ``type`` tag, as Codex's permission profile does;
the outer object is camelCase. The executor decides how to enforce the intent.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ._base import WireStruct
from .path_uri import PathUri

__all__ = [
    "DisabledPermissions",
    "ExternalPermissions",
    "FileSystemEntry",
    "GlobPatternPath",
    "ManagedPermissions",
    "NetworkPolicy",
    "PathEntryPath",
    "Permissions",
    "PolicyContext",
    "RestrictedFileSystem",
    "SandboxIntent",
    "SpecialPath",
    "SpecialValue",
    "UnrestrictedFileSystem",
]

NetworkPolicy = Literal["restricted", "enabled"]
Access = Literal["read", "write", "deny", "none"]
SpecialKind = Literal[
    "root",
    "minimal",
    "current_working_directory",
    "project_roots",
    "tmpdir",
    "slash_tmp",
    "unknown",
]


class SpecialValue(msgspec.Struct, kw_only=True):
    kind: SpecialKind
    subpath: str | None = None


class PathEntryPath(msgspec.Struct, tag="path", tag_field="type", kw_only=True):
    path: PathUri
    """A PathUri."""


class GlobPatternPath(msgspec.Struct, tag="glob_pattern", tag_field="type", kw_only=True):
    pattern: str


class SpecialPath(msgspec.Struct, tag="special", tag_field="type", kw_only=True):
    value: SpecialValue


class FileSystemEntry(msgspec.Struct, kw_only=True):
    path: PathEntryPath | GlobPatternPath | SpecialPath
    access: Access
    missing_path_behavior: str | None = None


class UnrestrictedFileSystem(msgspec.Struct, tag="unrestricted", tag_field="type"):
    pass


class RestrictedFileSystem(msgspec.Struct, tag="restricted", tag_field="type", kw_only=True):
    entries: list[FileSystemEntry] = msgspec.field(default_factory=list)


class DisabledPermissions(msgspec.Struct, tag="disabled", tag_field="type"):
    pass


class ExternalPermissions(msgspec.Struct, tag="external", tag_field="type", kw_only=True):
    network: NetworkPolicy = "restricted"


class ManagedPermissions(msgspec.Struct, tag="managed", tag_field="type", kw_only=True):
    file_system: UnrestrictedFileSystem | RestrictedFileSystem
    network: NetworkPolicy = "restricted"


Permissions = DisabledPermissions | ExternalPermissions | ManagedPermissions


class PolicyContext(WireStruct):
    cwd: PathUri | None = None
    workspace_roots: list[PathUri] | None = None


class SandboxIntent(WireStruct):
    permissions: Permissions
    windows_sandbox_level: Any = None
    cwd: PathUri | None = None
    workspace_roots: list[PathUri] | None = None
    use_legacy_landlock: bool | None = None
    policy_context: PolicyContext | None = None
    user_home_dir: str | None = None
