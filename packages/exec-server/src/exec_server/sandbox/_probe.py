"""What this host can enforce, probed once per process."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable

from . import _kernel
from ._landlock import REQUIRED_ABI
from ._seccomp import build_filter

__all__ = ["capabilities", "landlock_abi", "missing_for"]

_CLONE_NEWNS = 0x00020000


@functools.cache
def landlock_abi() -> int:
    return _kernel.landlock_abi()


def _in_throwaway_thread(probe: Callable[[], object]) -> bool:
    """Run ``probe`` in a thread that dies afterwards (its restrictions die with it)."""
    result: list[bool] = []

    def run() -> None:
        try:
            probe()
        except OSError:
            result.append(False)
        else:
            result.append(True)

    thread = threading.Thread(target=run, name="sandbox-probe", daemon=True)
    thread.start()
    thread.join()
    return result == [True]


def _probe_seccomp() -> None:
    _kernel.set_no_new_privs()
    _kernel.seccomp_set_filter(build_filter(network_restricted=True))


def _probe_mount_namespace() -> bool:
    if os.geteuid() == 0:
        return _in_throwaway_thread(lambda: _kernel.unshare(_CLONE_NEWNS))
    # A thread of a multi-threaded process cannot enter a user namespace; the forked child can,
    # if the kernel lets unprivileged users create one.
    for path, bad in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            with open(path) as file:
                if file.read().strip() == bad:
                    return False
        except OSError:
            continue
    return True


@functools.cache
def capabilities() -> dict[str, bool]:
    """What this host can enforce (probed once).

    Returns:
        ``landlock`` (ABI >= 1), ``landlockNetwork`` (ABI >= 4), ``landlockScopes`` (ABI >= 6),
        ``seccomp`` (a filter installs and the syscall table is known), ``mountNamespace``
        (protected paths can be mounted read-only), ``sandbox`` (all of it: what a sandboxed
        start needs), ``sandboxFs`` (what a sandboxed fs method needs).
    """
    abi = landlock_abi()
    seccomp = _kernel.ARCH is not None and _in_throwaway_thread(_probe_seccomp)
    mount_ns = _probe_mount_namespace()
    return {
        "landlock": abi >= 1,
        "landlockNetwork": abi >= 4,
        "landlockScopes": abi >= 6,
        "seccomp": seccomp,
        "mountNamespace": mount_ns,
        "sandbox": abi >= REQUIRED_ABI and seccomp and mount_ns,
        "sandboxFs": abi >= REQUIRED_ABI and mount_ns and os.geteuid() == 0,
    }


def missing_for(*, mounts: bool, fs_method: bool = False) -> str | None:
    """A sentence naming what the host lacks for this kind of sandbox, or ``None``."""
    caps = capabilities()
    missing: list[str] = []
    abi = landlock_abi()
    if abi < REQUIRED_ABI:
        missing.append(f"Landlock ABI {REQUIRED_ABI} (kernel offers {abi or 'no Landlock'})")
    if not fs_method and not caps["seccomp"]:
        missing.append(f"seccomp filtering on {_kernel.ARCH or 'this architecture'}")
    if mounts and not caps["mountNamespace"]:
        missing.append("mount namespaces (to keep .git/.agents/.codex/.aws read-only)")
    if mounts and fs_method and os.geteuid() != 0:
        missing.append("root (a server thread can only enter a mount namespace as root)")
    if not missing:
        return None
    return "sandbox unavailable on this host: missing " + ", ".join(missing)
