"""Sandbox intent (docs/protocol.md §8) -> the concrete rules to enforce; only path lookups.

Rules of the translation:
- ``disabled``, ``external`` with network enabled, and ``managed`` with an unrestricted file
  system and network enabled need no enforcement (``None``). ``external`` with restricted network
  keeps the file system open but restricts the network.
- Restricted file system: ``read`` entries grant reading, ``write`` entries reading and writing.
  A ``root`` read grant means reads are not restricted at all; a ``root`` write grant means writes
  are not restricted.
- Inside every writable root, ``.git``, ``.agents``, ``.codex`` and ``.aws`` stay read-only, and
  so does every explicit ``read`` entry that lies inside a writable root; they are protected even
  when they do not exist yet. A nested ``sub/.git`` is not protected.
- Grants whose path does not exist are dropped (granting less is always safe).
- ``deny`` / ``none`` entries outside every grant change nothing; inside a grant they cannot be
  enforced and make the intent unavailable rather than silently ignored.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass

from exec_server_protocol.path_uri import InvalidPathUriError, parse_path_uri
from exec_server_protocol.sandbox import (
    DisabledPermissions,
    ExternalPermissions,
    FileSystemEntry,
    GlobPatternPath,
    PathEntryPath,
    RestrictedFileSystem,
    SandboxIntent,
    SpecialPath,
    UnrestrictedFileSystem,
)

from ..exceptions import InvalidArgument, SandboxUnavailable

__all__ = [
    "MINIMAL_READ_PATHS",
    "PROTECTED_NAMES",
    "Policy",
    "compile_policy",
    "inside",
    "real_or_normal",
]

PROTECTED_NAMES = (".git", ".agents", ".codex", ".aws")
"""Read-only (and uncreatable) directly inside every writable root."""

MINIMAL_READ_PATHS = (
    "/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
    "/dev", "/proc", "/sys", "/run",
)  # fmt: skip
"""What the ``minimal`` special path grants: enough to find and run ordinary programs."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The concrete rules of one intent, with resolved absolute paths.

    Attributes:
        read_all: reads are not restricted.
        write_all: writes are not restricted (then nothing is protected either).
        readable: directories and files readable when ``read_all`` is false.
        writable: writable roots (existing, symlinks resolved).
        read_only: paths kept read-only inside the writable roots (may not exist yet).
        network_restricted: no network (§8).
    """

    read_all: bool
    write_all: bool
    readable: tuple[str, ...]
    writable: tuple[str, ...]
    read_only: tuple[str, ...]
    network_restricted: bool

    @property
    def restricts_fs(self) -> bool:
        return not (self.read_all and self.write_all)


def compile_policy(
    intent: SandboxIntent | None, *, cwd: str, env: Mapping[str, str]
) -> Policy | None:
    """Translate an intent into rules, or ``None`` when it asks for no enforcement.

    Args:
        intent: the decoded ``sandbox`` object.
        cwd: the process's working directory (fallback for ``current_working_directory``).
        env: the process's environment (``tmpdir`` comes from its TMPDIR).

    Raises:
        InvalidArgument: a malformed intent (bad PathUri, relative glob, escaping subpath).
        SandboxUnavailable: the intent asks for something this sandbox cannot enforce.
    """
    if intent is None:
        return None
    permissions = intent.permissions
    if isinstance(permissions, DisabledPermissions):
        return None
    network_restricted = permissions.network == "restricted"
    if isinstance(permissions, ExternalPermissions) or isinstance(
        permissions.file_system, UnrestrictedFileSystem
    ):
        if not network_restricted:
            return None
        return Policy(True, True, (), (), (), network_restricted=True)
    assert isinstance(permissions.file_system, RestrictedFileSystem)
    return _compile_restricted(intent, permissions.file_system, network_restricted, cwd, env)


def _compile_restricted(
    intent: SandboxIntent,
    file_system: RestrictedFileSystem,
    network_restricted: bool,
    cwd: str,
    env: Mapping[str, str],
) -> Policy:
    context = intent.policy_context
    base_cwd = _path(intent.cwd or (context.cwd if context else None)) or cwd
    roots_uris = intent.workspace_roots or (context.workspace_roots if context else None)
    project_roots = [_path(uri) or base_cwd for uri in roots_uris] if roots_uris else [base_cwd]

    readable: list[str] = []
    writable: list[str] = []
    read_entries: list[str] = []
    denied: list[str] = []
    for entry in file_system.entries:
        paths = _entry_paths(entry, base_cwd, project_roots, env)
        if entry.access == "read":
            read_entries += paths
            readable += paths
        elif entry.access == "write":
            writable += paths
            readable += paths
        else:
            denied += paths

    writable_roots = _existing_real(writable)
    write_all = "/" in writable_roots
    read_all = write_all or "/" in _existing_real(readable)
    read_only: list[str] = []
    if not write_all:
        for root in writable_roots:
            read_only += [os.path.join(root, name) for name in PROTECTED_NAMES]
        for path in read_entries:
            resolved = real_or_normal(path)
            if any(inside(resolved, root) and resolved != root for root in writable_roots):
                read_only.append(resolved)
    granted = ["/"] if read_all else _existing_real(readable)
    for path in denied:
        resolved = real_or_normal(path)
        if any(inside(resolved, root) for root in granted):
            raise SandboxUnavailable(
                f"cannot enforce a deny entry for {resolved} inside a readable or writable area"
            )
    return Policy(
        read_all=read_all,
        write_all=write_all,
        readable=() if read_all else tuple(_dedupe(_existing_real(readable))),
        writable=() if write_all else tuple(_dedupe(writable_roots)),
        read_only=tuple(_dedupe(read_only)),
        network_restricted=network_restricted,
    )


def _entry_paths(
    entry: FileSystemEntry, cwd: str, project_roots: list[str], env: Mapping[str, str]
) -> list[str]:
    path = entry.path
    if isinstance(path, PathEntryPath):
        return [_path(path.path) or ""]
    if isinstance(path, GlobPatternPath):
        if not path.pattern.startswith("/"):
            raise InvalidArgument(f"glob_pattern must be absolute: {path.pattern!r}")
        return sorted(glob.glob(path.pattern, recursive=True))
    assert isinstance(path, SpecialPath)
    kind = path.value.kind
    bases: list[str]
    if kind == "root":
        bases = ["/"]
    elif kind == "minimal":
        bases = list(MINIMAL_READ_PATHS)
    elif kind == "current_working_directory":
        bases = [cwd]
    elif kind == "project_roots":
        bases = project_roots
    elif kind == "tmpdir":
        tmpdir = env.get("TMPDIR") or os.environ.get("TMPDIR")
        bases = [tmpdir] if tmpdir and tmpdir.startswith("/") else []
    elif kind == "slash_tmp":
        bases = ["/tmp"]
    else:  # "unknown": a kind newer than us grants nothing
        bases = []
    subpath = path.value.subpath
    if not subpath:
        return bases
    if subpath.startswith("/") or ".." in subpath.split("/"):
        raise InvalidArgument(f"subpath must be relative and stay inside its base: {subpath!r}")
    return [os.path.normpath(os.path.join(base, subpath)) for base in bases]


def _path(uri: str | None) -> str | None:
    if uri is None:
        return None
    try:
        return parse_path_uri(uri)
    except InvalidPathUriError as exc:
        raise InvalidArgument(f"invalid sandbox path: {exc}") from exc


def _existing_real(paths: list[str]) -> list[str]:
    return [os.path.realpath(p) for p in paths if p and os.path.exists(p)]


def real_or_normal(path: str) -> str:
    """The resolved path; for a missing path, its resolved parent joined with its name."""
    if os.path.lexists(path):
        return os.path.realpath(path)
    parent, name = os.path.split(os.path.normpath(path))
    return os.path.join(real_or_normal(parent) if parent != path else parent, name)


def inside(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _dedupe(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))
