"""Build a child's environment from ``env`` and ``envPolicy`` (docs/protocol.md §4).

Without a policy the child gets exactly ``env``. With one, the environment starts from the
*server's* environment filtered by ``inherit`` (``core`` keeps a fixed set of variables;
``all`` drops names containing KEY, SECRET or TOKEN unless ``ignoreDefaultExcludes``), then
``exclude`` / ``includeOnly`` (case-insensitive wildcards), then ``set``, then ``env``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
from collections.abc import Mapping

from exec_server_protocol.process import EnvPolicy

__all__ = ["CORE_VARS", "build_env", "resolve_executable", "resolve_program"]

CORE_VARS = frozenset({"HOME", "LANG", "LOGNAME", "PATH", "SHELL", "TMPDIR", "USER"})
_DEFAULT_EXCLUDES = ("*KEY*", "*SECRET*", "*TOKEN*")


def _matches(name: str, patterns: list[str] | tuple[str, ...]) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, p.upper()) for p in patterns)


def build_env(
    env: Mapping[str, str],
    policy: EnvPolicy | None,
    server_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment.

    Args:
        env: the request's ``env`` (applied last).
        policy: the request's ``envPolicy`` or None.
        server_env: the server's environment (defaults to ``os.environ``).
    """
    if policy is None:
        return dict(env)
    base = os.environ if server_env is None else server_env
    if policy.inherit == "none":
        out: dict[str, str] = {}
    elif policy.inherit == "core":
        out = {k: v for k, v in base.items() if k in CORE_VARS}
    else:
        out = dict(base)
        if not policy.ignore_default_excludes:
            out = {k: v for k, v in out.items() if not _matches(k, _DEFAULT_EXCLUDES)}
    if policy.exclude:
        out = {k: v for k, v in out.items() if not _matches(k, policy.exclude)}
    if policy.include_only:
        out = {k: v for k, v in out.items() if _matches(k, policy.include_only)}
    out.update(policy.set)
    out.update(env)
    return out


def resolve_executable(program: str, child_env: Mapping[str, str]) -> str:
    """Find ``program`` as the child would be started: a name with a slash is used as is;
    otherwise it is looked up on the child's PATH if it has one, else on the server's.

    Raises:
        FileNotFoundError: not found (or not executable) on that PATH.
    """
    if "/" in program:
        return program
    path = child_env.get("PATH")
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(2, "No such file or directory")
    return found


def resolve_program(program: str, cwd: str) -> str:
    """Where exec would find ``program`` (on the server's PATH), raising the OSError it would.

    Once the helper runs, a failing exec is only an exit status (125), so what exec would refuse
    is found here: a missing file, one without execute permission, and one that is neither an
    ELF binary nor a ``#!`` script (a binfmt_misc format is refused too: the price of
    reporting the ordinary case as the OS error it is).

    Raises:
        FileNotFoundError: not found.
        PermissionError: found but not executable.
        OSError: ENOEXEC, not a format this helper knows the kernel runs.
    """
    if "/" in program:
        path = os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        found = path
    else:
        which = shutil.which(program, path=os.environ.get("PATH", os.defpath))
        if which is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        found = program = which
    try:
        with open(found, "rb") as file:
            magic = file.read(4)
    except OSError:
        return program  # executable but not readable: exec may still run it
    if magic != b"\x7fELF" and not magic.startswith(b"#!"):
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), program)
    return program
