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

__all__ = ["CORE_VARS", "build_env", "resolve_executable"]

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


def resolve_executable(
    program: str, env: Mapping[str, str] | None = None, *, cwd: str | None = None
) -> str:
    """Find ``program`` as the child would be started: a name with a slash is used as is;
    otherwise it is looked up on the PATH of ``env`` (the child's environment) if it has one,
    else on the server's.

    With ``cwd`` (the child's working directory), also refuse what exec would refuse, raising
    the OSError it would: a missing file, one without execute permission, and one that is
    neither an ELF binary nor a ``#!`` script (a binfmt_misc format is refused too: the price
    of reporting the ordinary case as the OS error it is). The spawn helpers need this: once a
    helper runs, a failing exec is only an exit status (125).

    Raises:
        FileNotFoundError: not found (or, without ``cwd``, not executable) on that PATH.
        PermissionError: with ``cwd``: found but not executable.
        OSError: with ``cwd``: ENOEXEC, not a format the kernel is known to run.
    """
    if "/" in program:
        if cwd is None:
            return program
        path = os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        found = path
    else:
        search = env.get("PATH") if env is not None else None
        if search is None:
            search = os.environ.get("PATH", os.defpath)
        which = shutil.which(program, path=search)
        if which is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if cwd is None:
            return which
        found = program = which
    try:
        with open(found, "rb") as file:
            magic = file.read(4)
    except OSError:
        return program  # executable but not readable: exec may still run it
    if magic != b"\x7fELF" and not magic.startswith(b"#!"):
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), program)
    return program
