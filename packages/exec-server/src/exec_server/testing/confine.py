"""Run a command on a *simulated* poorer host: kernel features hidden.

``python -m exec_server.testing.confine [--hide-landlock] [--hide-pidfd]
[--refuse-user-namespaces] -- COMMAND ...`` installs a seccomp filter on itself and execs
``COMMAND`` (the filter is inherited by everything the command starts), so a server started this
way sees the host its users have rather than this development machine:

- ``--hide-landlock``: ``landlock_create_ruleset``, ``landlock_add_rule`` and
  ``landlock_restrict_self`` answer ENOSYS, exactly what a kernel without Landlock answers
  (Debian 12 before a backport, RHEL 9 by default, gVisor).
- ``--hide-pidfd``: ``pidfd_open``, ``pidfd_send_signal`` and ``pidfd_getfd`` answer ENOSYS, as
  on kernels before 5.3 (Debian 10's 4.19, RHEL 8's 4.18) and in gVisor.
- ``--refuse-user-namespaces``: ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` answer EPERM and
  ``clone3`` ENOSYS (its flags are out of seccomp's reach; C libraries fall back to ``clone``),
  as with ``kernel.unprivileged_userns_clone=0``, an AppArmor restriction, or Docker's default
  seccomp profile.
- ``--own-root`` (root only): when chrooted, first move into a private mount namespace whose
  root is this chroot (made its root with ``pivot_root``). The kernel refuses user namespaces to
  a chrooted process; the server then is not chrooted any more, so a check run inside a chroot
  (a throwaway root file system) sees an ordinary host.

To run the server as another account too, put ``setpriv --reuid=N --regid=N --clear-groups``
(util-linux) between this and the server. Only for tests and benchmarks; it needs no privileges.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

from .._linux import GENERIC_SYSCALLS, MNT_DETACH, MS_BIND, MS_PRIVATE, MS_REC, SYSCALLS_BY_ARCH
from ..sandbox import _kernel
from ..sandbox._seccomp import _assemble, _Jump, _Op

__all__ = ["build_confinement", "main"]

_LD_W_ABS, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x15, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
_LANDLOCK = tuple(
    GENERIC_SYSCALLS[name]
    for name in ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self")
)
_PIDFD = tuple(
    GENERIC_SYSCALLS[name] for name in ("pidfd_open", "pidfd_send_signal", "pidfd_getfd")
)


def build_confinement(
    *, hide_landlock: bool, refuse_user_namespaces: bool, hide_pidfd: bool = False
) -> bytes:
    """The packed seccomp program for these options (for this machine's architecture)."""
    table = SYSCALLS_BY_ARCH[_kernel.ARCH or "x86_64"]
    p: list[_Op | _Jump | str] = [
        _Op(_LD_W_ABS, 4),
        _Jump(_JEQ_K, _kernel.SYSCALLS["audit_arch"], None, "allow"),
        _Op(_LD_W_ABS, 0),
    ]
    if hide_landlock:
        p += [_Jump(_JEQ_K, nr, "enosys", None) for nr in _LANDLOCK]
    if hide_pidfd:
        p += [_Jump(_JEQ_K, nr, "enosys", None) for nr in _PIDFD]
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


def own_root() -> None:
    """Make this process's root the root of a new private mount namespace (see ``--own-root``);
    nothing to do when it is not chrooted.

    Root may leave a chroot (chroot into a subdirectory, walk up past it); from the real root,
    the old root directory is bound onto itself and made the namespace's root with
    ``pivot_root``, so the kernel no longer sees a chrooted process.

    Raises:
        OSError: the kernel refused a step (not root, say).
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    check(libc.unshare(_kernel.CLONE_NEWNS))
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    here = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chroot("/tmp")  # the working directory stays outside the new root: walk up
        for _ in range(256):
            os.chdir("..")
        os.chroot(".")
        path = os.readlink(f"/proc/self/fd/{here}").encode()
    finally:
        os.close(here)
    if path == b"/":
        return
    check(libc.mount(path, path, None, MS_BIND | MS_REC, None))
    os.chdir(path)
    check(libc.syscall(SYSCALLS_BY_ARCH[_kernel.ARCH or "x86_64"]["pivot_root"], b".", b"."))
    check(libc.umount2(b".", MNT_DETACH))
    os.chdir("/")


def _save_coverage() -> None:
    """Under a test run that measures coverage in subprocesses, write what this process ran
    before the exec replaces it (coverage writes at exit, and an exec is no exit)."""
    coverage = sys.modules.get("coverage")
    current = getattr(coverage, "Coverage", None)
    cov = current.current() if current is not None else None
    if cov is not None:
        cov.stop()
        cov.save()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m exec_server.testing.confine")
    parser.add_argument("--hide-landlock", action="store_true")
    parser.add_argument("--hide-pidfd", action="store_true")
    parser.add_argument("--refuse-user-namespaces", action="store_true")
    parser.add_argument("--own-root", action="store_true")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.own_root:
        own_root()
    if args.hide_landlock or args.hide_pidfd or args.refuse_user_namespaces:
        _kernel.set_no_new_privs()
        _kernel.seccomp_set_filter(
            build_confinement(
                hide_landlock=args.hide_landlock,
                refuse_user_namespaces=args.refuse_user_namespaces,
                hide_pidfd=args.hide_pidfd,
            )
        )
    _save_coverage()
    try:
        os.execvp(args.command[0], args.command)
    except OSError as exc:
        sys.exit(f"confine: cannot run {args.command[0]}: {exc}")


if __name__ == "__main__":
    main()
