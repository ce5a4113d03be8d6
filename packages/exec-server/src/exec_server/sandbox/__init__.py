"""The Linux sandbox: intent (docs/protocol.md §8) -> kernel enforcement, and the
denial heuristic.

Mechanism (``_spawn`` has the order and the reasons): a user namespace (none needed when the
server is root), a mount namespace where the whole host is read-only and only the writable roots
are writable (``.git``/``.agents``/``.codex``/``.aws`` read-only inside them), a PID namespace
whose death takes every background child with it, a ``/proc`` of its own; seccomp for the
network, ptrace, TIOCSTI, setuid/setgid bits, io_uring and foreign syscall ABIs; no_new_privs and
an empty capability set; Landlock on top with whatever ABI the kernel offers. None of it needs
privileges or a new kernel: user namespaces exist on every mainstream kernel since 3.8.

A sandbox-denied write by an fs method is reported as EROFS, like the reference's read-only
mount (see ``_fs``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._fs import run_fs_sandboxed
    from ._heuristic import DENIAL_KEYWORDS, is_sandbox_denied
    from ._probe import capabilities, configure, describe, external_isolation, layers
    from ._spawn import SandboxPlan, SandboxType, prepare_spawn

# Imported on first use: the server probes the layers right after it is ready (``_probe``,
# which brings ``_spawn`` for the namespace probe), and ``_fs`` with the file machinery comes
# with the first sandboxed fs method (idle RSS of a warm executor, see bench/README.md).
__getattr__ = lazy_exports(
    __name__,
    {
        "DENIAL_KEYWORDS": "._heuristic",
        "SandboxPlan": "._spawn",
        "SandboxType": "._spawn",
        "capabilities": "._probe",
        "configure": "._probe",
        "describe": "._probe",
        "external_isolation": "._probe",
        "is_sandbox_denied": "._heuristic",
        "layers": "._probe",
        "prepare_spawn": "._spawn",
        "run_fs_sandboxed": "._fs",
    },
)


__all__ = [
    "DENIAL_KEYWORDS",
    "SandboxPlan",
    "SandboxType",
    "capabilities",
    "configure",
    "describe",
    "external_isolation",
    "is_sandbox_denied",
    "layers",
    "prepare_spawn",
    "run_fs_sandboxed",
]
