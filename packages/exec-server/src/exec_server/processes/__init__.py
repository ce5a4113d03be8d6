"""Process supervision: spawn, output retention, stdin, signals, whole-tree kill."""

from .env import build_env, resolve_executable
from .process import ManagedProcess
from .ring import OutputRing
from .spawn import SpawnSpec
from .table import ProcessConfig, ProcessTable
from .tree import CgroupManager, OrphanReaper, make_subreaper, reset_inherited_signal_state

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
