"""What this host can enforce, probed once per process: which sandbox layers a command gets.

Layers (see ``_spawn``): a user namespace (skipped when the server is root and the host refuses
them), mount and PID namespaces, a ``/proc`` of the command's own PID namespace (a container's
masked ``/proc`` may refuse a new one; the host's then stays, read-only), the seccomp filter, and
Landlock with whatever ABI the kernel has (capped by ``configure(landlock_max_abi=...)``).
The namespaces are probed by running ``true`` through the real helper.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..exceptions import SandboxUnavailable
from ..processes.spawn_helper import HELPER_ARCH
from . import _kernel
from ._seccomp import build_filter

__all__ = [
    "Layers",
    "capabilities",
    "configure",
    "describe",
    "external_isolation",
    "layers",
    "layers_for",
]

_settings = {"landlock_max_abi": 99, "external_isolation": 0}


def configure(
    *, landlock_max_abi: int | None = None, external_isolation: bool | None = None
) -> None:
    """Operator settings, applied before the first probe (the server's CLI calls this).

    Args:
        landlock_max_abi: use at most this Landlock ABI.
        external_isolation: the operator isolates each executor from outside (a sandboxed
            pod, ``--isolation external``): an intent this host cannot enforce runs under that
            isolation only instead of being refused. What the host can enforce still is.
    """
    if landlock_max_abi is not None:
        _settings["landlock_max_abi"] = landlock_max_abi
    if external_isolation is not None:
        _settings["external_isolation"] = int(external_isolation)
    layers.cache_clear()
    capabilities.cache_clear()


@dataclass(frozen=True, slots=True)
class Layers:
    """What a sandboxed command gets on this host.

    Attributes:
        problem: why nothing can be sandboxed here (the start is refused), or ``None``.
        userns: the namespaces are created in a user namespace of their own.
        own_proc: the command sees a ``/proc`` of its own PID namespace.
        seccomp: the seccomp filter installs.
        landlock_abi: the Landlock ABI used on top (0: none).
        kernel_landlock_abi: what the kernel offers.
    """

    problem: str | None
    userns: bool
    own_proc: bool
    seccomp: bool
    landlock_abi: int
    kernel_landlock_abi: int


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


@functools.cache
def layers() -> Layers:
    """Probe the host once (a few milliseconds: up to four runs of ``true``)."""
    from ._spawn import probe_namespaces

    kernel_abi = _kernel.landlock_abi()
    abi = min(kernel_abi, _settings["landlock_max_abi"])
    if _kernel.ARCH != HELPER_ARCH:
        problem = f"the spawn helper exists for {HELPER_ARCH} only, this is {_kernel.ARCH}"
        return Layers(
            f"sandbox unavailable on this host: {problem}", False, False, False, abi, kernel_abi
        )
    seccomp = _in_throwaway_thread(_probe_seccomp)
    if not seccomp:
        return Layers(
            "sandbox unavailable on this host: missing seccomp filtering",
            False, False, False, abi, kernel_abi,
        )  # fmt: skip
    root = os.geteuid() == 0
    failures: list[str] = []
    for userns in (True, False) if root else (True,):
        for own_proc in (True, False):
            failure = probe_namespaces(userns=userns, own_proc=own_proc)
            if failure is None:
                return Layers(None, userns, own_proc, True, abi, kernel_abi)
            failures.append(failure)
    need = "user namespaces" if not root else "mount and PID namespaces"
    if failures[0].startswith("the spawn helper"):
        need = "a way to run the spawn helper"
    return Layers(
        f"sandbox unavailable on this host: missing {need} (the kernel refused to create them: "
        f"{failures[0]})",
        False, False, True, abi, kernel_abi,
    )  # fmt: skip


def external_isolation() -> bool:
    """Whether the operator said each executor is isolated from outside (see ``configure``)."""
    return bool(_settings["external_isolation"])


def layers_for(restricts_reads: bool) -> Layers:
    """The layers, when they can enforce a policy (reads restricted to some paths or not).

    Raises:
        SandboxUnavailable: the host cannot (the message says what is missing).
    """
    found = layers()
    if found.problem is not None:
        raise SandboxUnavailable(found.problem)
    if restricts_reads and found.landlock_abi < 1:
        raise SandboxUnavailable(
            "sandbox unavailable on this host: restricting reads to some paths needs Landlock "
            "(the kernel offers none)"
        )
    return found


_EXTERNAL_NOTE = (
    "; --isolation external: such commands run under the executor's outside isolation only"
)


def describe() -> str:
    """One line for the log at start: the layers a sandboxed command gets here."""
    found = layers()
    if found.problem is not None:
        return found.problem + _EXTERNAL_NOTE * external_isolation()
    parts = [
        ("user, " if found.userns else "") + "mount and PID namespaces",
        "own /proc" if found.own_proc else "the host's /proc (read-only)",
        "seccomp",
        f"Landlock ABI {found.landlock_abi}" if found.landlock_abi else "no Landlock",
    ]
    if found.landlock_abi < found.kernel_landlock_abi:
        parts[-1] += f" (kernel offers {found.kernel_landlock_abi})"
    return "sandbox layers: " + ", ".join(parts)


@functools.cache
def capabilities() -> dict[str, bool]:
    """The layers as booleans (for ``environment/info`` and the tests).

    Returns:
        ``sandbox`` (a sandboxed start can run), ``userNamespace``, ``ownProc``, ``seccomp``,
        ``landlock`` (ABI >= 1 in use), ``landlockNetwork`` (>= 4), ``landlockScopes`` (>= 6),
        ``sandboxFs`` (a sandboxed fs method can run: in a thread as root, else in a child).
    """
    found = layers()
    ok = found.problem is None
    return {
        "sandbox": ok,
        "userNamespace": ok and found.userns,
        "ownProc": ok and found.own_proc,
        "seccomp": found.seccomp,
        "landlock": found.landlock_abi >= 1,
        "landlockNetwork": found.landlock_abi >= 4,
        "landlockScopes": found.landlock_abi >= 6,
        "sandboxFs": ok,
    }
