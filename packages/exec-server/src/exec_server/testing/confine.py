"""Run a command on a *simulated* poorer host: kernel features hidden.

``python -m exec_server.testing.confine [--hide-landlock] [--refuse-user-namespaces] --
COMMAND ...`` installs a seccomp filter on itself and execs ``COMMAND``
(the filter is inherited by everything the command starts), so a server started this way sees
the host its users have rather than this development machine:

- ``--hide-landlock``: ``landlock_create_ruleset``, ``landlock_add_rule`` and
  ``landlock_restrict_self`` answer ENOSYS, exactly what a kernel without Landlock answers
  (Debian 12 before a backport, RHEL 9 by default, gVisor).
- ``--refuse-user-namespaces``: ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` answer EPERM and
  ``clone3`` ENOSYS (its flags are out of seccomp's reach; C libraries fall back to ``clone``),
  as with ``kernel.unprivileged_userns_clone=0``, an AppArmor restriction, or Docker's default
  seccomp profile.

To run the server as another account too, put ``setpriv --reuid=N --regid=N --clear-groups``
(util-linux) between this and the server. Only for tests and benchmarks; it needs no privileges.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..sandbox import _kernel
from ..sandbox._seccomp import _assemble, _Jump, _Op

__all__ = ["build_confinement", "main"]

_LD_W_ABS, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x15, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
_SYS = {"x86_64": {"unshare": 272, "clone": 56, "clone3": 435},
        "aarch64": {"unshare": 97, "clone": 220, "clone3": 435}}  # fmt: skip
_LANDLOCK = (444, 445, 446)


def build_confinement(*, hide_landlock: bool, refuse_user_namespaces: bool) -> bytes:
    """The packed seccomp program for these options (for this machine's architecture)."""
    table = _SYS[_kernel.ARCH or "x86_64"]
    p: list[_Op | _Jump | str] = [
        _Op(_LD_W_ABS, 4),
        _Jump(_JEQ_K, _kernel.SYSCALLS["audit_arch"], None, "allow"),
        _Op(_LD_W_ABS, 0),
    ]
    if hide_landlock:
        p += [_Jump(_JEQ_K, nr, "enosys", None) for nr in _LANDLOCK]
    if refuse_user_namespaces:
        p += [
            _Jump(_JEQ_K, table["clone3"], "enosys", None),
            _Jump(_JEQ_K, table["unshare"], "flags", None),
            _Jump(_JEQ_K, table["clone"], "flags", "allow"),
            "flags",
            _Op(_LD_W_ABS, 16),
            _Jump(_JSET_K, _kernel.CLONE_NEWUSER, "eperm", "allow"),
            "eperm",
            _Op(_RET_K, _ERRNO | _EPERM),
        ]
    p += ["allow", _Op(_RET_K, _ALLOW), "enosys", _Op(_RET_K, _ERRNO | _ENOSYS)]
    return _assemble(p)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m exec_server.testing.confine")
    parser.add_argument("--hide-landlock", action="store_true")
    parser.add_argument("--refuse-user-namespaces", action="store_true")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.hide_landlock or args.refuse_user_namespaces:
        _kernel.set_no_new_privs()
        _kernel.seccomp_set_filter(
            build_confinement(
                hide_landlock=args.hide_landlock,
                refuse_user_namespaces=args.refuse_user_namespaces,
            )
        )
    try:
        os.execvp(args.command[0], args.command)
    except OSError as exc:
        sys.exit(f"confine: cannot run {args.command[0]}: {exc}")


if __name__ == "__main__":
    main()
