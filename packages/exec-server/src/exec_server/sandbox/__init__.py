"""The Linux sandbox: intent (PROTOCOL.md §8) -> kernel enforcement, and the denial heuristic.

Mechanism (all applied by the child to itself between fork and exec, see ``_spawn``):
Landlock ABI >= 6 for the file system (writes only inside writable roots, symlinks, renames and
hard links included), TCP, signal and abstract-unix-socket scoping; read-only bind mounts in a
private mount namespace for ``.git``/``.agents``/``.codex``/``.aws`` inside writable roots;
seccomp for UDP, raw and non-unix sockets, unix connect/bind, io_uring and foreign syscall ABIs;
no_new_privs and an empty capability set against privilege regain; close-on-exec for every
inherited descriptor. Background children are killed with the main process by the spawner
(``SandboxPlan.kill_tree_on_exit``, through the command's cgroup; without cgroup v2 a sandboxed
start is refused).

A sandbox-denied write by an fs method is reported as EROFS, like the reference's read-only
mount (see ``_fs``).
"""

from __future__ import annotations

from ._fs import run_fs_sandboxed
from ._heuristic import DENIAL_KEYWORDS, is_sandbox_denied
from ._probe import capabilities
from ._spawn import SandboxPlan, SandboxType, prepare_spawn

__all__ = [
    "DENIAL_KEYWORDS",
    "SandboxPlan",
    "SandboxType",
    "capabilities",
    "is_sandbox_denied",
    "prepare_spawn",
    "run_fs_sandboxed",
]
