"""Process supervision: spawn, output retention, stdin, signals, whole-tree kill."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .config import ProcessConfig
    from .env import build_env, resolve_executable
    from .process import ManagedProcess
    from .ring import OutputRing
    from .spawn import SpawnSpec
    from .table import ProcessTable
    from .tree import CgroupManager, OrphanReaper, make_subreaper, reset_inherited_signal_state

# Imported on first use: a server with no client yet needs only ``tree`` (the orphan reaper,
# the cgroup tree) and ``config``; the rest is imported with its first session (idle RSS of a
# warm executor, see bench/README.md "Executor start").
__getattr__ = lazy_exports(
    __name__,
    {
        "CgroupManager": ".tree",
        "ManagedProcess": ".process",
        "OrphanReaper": ".tree",
        "OutputRing": ".ring",
        "ProcessConfig": ".config",
        "ProcessTable": ".table",
        "SpawnSpec": ".spawn",
        "build_env": ".env",
        "make_subreaper": ".tree",
        "reset_inherited_signal_state": ".tree",
        "resolve_executable": ".env",
    },
)


__all__ = [
    "CgroupManager",
    "ManagedProcess",
    "OrphanReaper",
    "OutputRing",
    "ProcessConfig",
    "ProcessTable",
    "SpawnSpec",
    "build_env",
    "make_subreaper",
    "reset_inherited_signal_state",
    "resolve_executable",
]
