"""Whole-tree process control: per-process cgroups, and reaping adopted orphans.

Killing a process group misses descendants that called ``setsid`` or double-forked. Each
process we start therefore enters its own cgroup v2 leaf before it execs the command (the spawn
helper writes to the leaf's ``cgroup.procs``, see ``spawn_helper``), and ``cgroup.kill`` ends
everything in it at once. The server itself never enters a leaf, so nothing it forks can land
in a command's cgroup. Leaves live under ``<server's cgroup>/exec-server-<pid>-<random>/``; the
server holds an ``flock`` on that directory for its whole life, and only trees whose lock is
free (their server is gone, in whichever PID namespace it ran) are swept at start.

Hosts without a writable cgroup v2 hierarchy fall back to killing the process group plus every
descendant found through ``/proc`` — best effort: a double-forked orphan that already left the
tree cannot be attributed there. The server also makes itself a child subreaper so orphans are
reparented to it and reaped (no zombies), see :class:`OrphanReaper`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import itertools
import logging
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Callable

from .._linux import CLONE_NEWNS, MNT_DETACH, MS_REC, MS_SLAVE, PR_SET_CHILD_SUBREAPER

__all__ = [
    "CgroupManager",
    "OrphanReaper",
    "ProcessTree",
    "kill_descendants",
    "make_subreaper",
    "reset_inherited_signal_state",
]

log = logging.getLogger(__name__)


def make_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants. Returns success."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except OSError:  # pragma: no cover - libc without prctl
        return False


def _ignore(signum: int, frame: object) -> None:
    """Stands in for an inherited SIG_IGN (handlers, unlike SIG_IGN, reset at exec)."""


def reset_inherited_signal_state() -> list[str]:
    """Make sure children start with default signal handling, as under ssh or kubectl exec.

    ``SIG_IGN`` dispositions and the blocked-signal mask survive ``exec``: a server started by
    ``nohup`` or from a non-interactive shell's background job would pass on ignored SIGHUP,
    SIGINT or SIGQUIT to every command it runs. Each inherited ``SIG_IGN`` is replaced by a
    handler that does nothing (so the server still ignores it, and children get the default),
    and the mask is cleared. Returns the names of the signals that were ignored.
    """
    changed = []
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
            continue  # cannot be caught, or Popen restores it itself, or the server handles it
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, _ignore)
                changed.append(signal.Signals(sig).name)
        except (OSError, ValueError):
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    return changed


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _cgroup2_mount() -> str | None:
    """A writable cgroup2 mount point of this mount namespace, if any."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split(" ")
                if right.split(" ", 1)[0] == "cgroup2" and "rw" in fields[5].split(","):
                    return fields[4]
    except OSError:
        return None
    return None


def _private_cgroup2_mount() -> str | None:
    """Mount cgroup2 where only this server sees it, for hosts that do not mount it writable
    (a chroot with a read-only /sys, a container without the cgroup mount).

    The server moves into a mount namespace of its own whose mounts follow the host's (slave
    propagation, so nothing leaks back), then mounts cgroup2 on a temporary directory. Needs
    CAP_SYS_ADMIN and a single-threaded process; returns None when either is missing.
    """
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return None
    if libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None) != 0:
        return None
    target = tempfile.mkdtemp(prefix="exec-server-cgroup-")
    if libc.mount(b"cgroup2", target.encode(), b"cgroup2", 0, None) != 0:
        os.rmdir(target)
        return None
    return target


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


class CgroupManager:
    """Per-process cgroup leaves under ``<our cgroup>/exec-server-<pid>-<random>/``."""

    def __init__(self, home: str, base: str, lock_fd: int) -> None:
        self._home = home
        self._base = base
        self._lock_fd = lock_fd
        self._counter = itertools.count(1)
        self._stale: set[str] = set()
        self._private_mount: str | None = None
        self._limits: dict[str, str] = {}

    @property
    def base(self) -> str:
        return self._base

    @classmethod
    def create(cls) -> CgroupManager | None:
        """Set up the manager, or None when this host offers no usable cgroup v2 with
        ``cgroup.kill`` writable by us (the caller then falls back to process-group kills)."""
        own = _own_cgroup()
        if own is None:
            return None
        mount = _cgroup2_mount() or _private_cgroup2_mount()
        if mount is None:
            return None
        home = os.path.normpath(mount + "/" + own)
        _sweep_dead_servers(home)
        base = os.path.join(home, f"exec-server-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(base)
            lock_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            log.info("cgroup v2 not writable (%s); falling back to process-group kills", exc)
            with contextlib.suppress(OSError):
                os.rmdir(base)
            return None
        manager = cls(home, base, lock_fd)
        manager._private_mount = mount if mount.startswith(tempfile.gettempdir()) else None
        try:
            probe = manager.new_leaf()
            if not os.path.exists(os.path.join(probe, "cgroup.kill")):
                raise OSError("cgroup.kill not supported")
            if not os.access(os.path.join(probe, "cgroup.procs"), os.W_OK) or not os.access(
                os.path.join(home, "cgroup.procs"), os.W_OK
            ):
                raise OSError("cgroup.procs not writable")
            manager.remove_leaf(probe)
        except OSError as exc:
            log.info("cgroup v2 unusable (%s); falling back to process-group kills", exc)
            manager.aclose()
            return None
        log.info("tree kill through cgroup tree %s", base)
        return manager

    def set_limits(self, *, pids_max: int | None, memory_max: int | None) -> None:
        """Give every leaf made from now on ``pids.max`` / ``memory.max`` (None: no limit).

        The controllers must be enabled in ``cgroup.subtree_control`` of our home cgroup and of
        our tree. cgroup v2 refuses that for a cgroup that holds processes (other than the
        root), such as the home of a server that was started in it: the server needs a
        delegated cgroup of its own whose processes live in a child.

        Raises:
            OSError: a controller is not available or cannot be enabled (the message says
                which and where).
        """
        limits = {"pids.max": pids_max, "memory.max": memory_max}
        wanted = [name.split(".")[0] for name, value in limits.items() if value is not None]
        for directory in (self._home, self._base):
            with open(os.path.join(directory, "cgroup.controllers"), encoding="ascii") as f:
                available = f.read().split()
            missing = [c for c in wanted if c not in available]
            if missing:
                raise OSError(
                    errno.ENOTSUP,
                    f"the {' and '.join(missing)} controller is not available in {directory} "
                    "(cgroup.controllers): the host does not delegate it to this server",
                )
            try:
                _write(
                    os.path.join(directory, "cgroup.subtree_control"),
                    " ".join(f"+{c}" for c in wanted).encode(),
                )
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot enable {' and '.join(wanted)} for the children of {directory}: "
                    f"{exc.strerror} (a cgroup that holds processes, such as the server's own, "
                    "cannot hand controllers down)",
                ) from exc
        self._limits = {name: str(value) for name, value in limits.items() if value is not None}

    def new_leaf(self) -> str:
        if self._stale:
            self._stale = {leaf for leaf in self._stale if not self.remove_leaf(leaf)}
        path = os.path.join(self._base, f"p{next(self._counter)}")
        os.mkdir(path)
        for name, value in self._limits.items():
            _write(os.path.join(path, name), value.encode())
        return path

    def kill(self, leaf: str) -> None:
        """SIGKILL everything in the leaf (idempotent)."""
        try:
            _write(os.path.join(leaf, "cgroup.kill"), b"1")
        except FileNotFoundError:
            pass
        except OSError as exc:  # pragma: no cover - unexpected kernel refusal
            log.warning("cgroup.kill of %s failed: %s", leaf, exc)

    @staticmethod
    def members(leaf: str) -> list[int]:
        """Pids in the leaf now."""
        try:
            with open(os.path.join(leaf, "cgroup.procs"), "rb") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def discard_leaf(self, leaf: str) -> None:
        """Remove ``leaf`` now or, while processes are still in it, at a later sweep."""
        if not self.remove_leaf(leaf):
            self._stale.add(leaf)

    def try_remove(self, leaf: str) -> bool:
        """Remove ``leaf`` if it is empty."""
        return self.remove_leaf(leaf)

    @staticmethod
    def remove_leaf(leaf: str) -> bool:
        """Remove an empty leaf; False while it still has processes."""
        try:
            os.rmdir(leaf)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    def aclose(self) -> None:
        """Kill every leaf and remove the base directory (server shutdown)."""
        try:
            leaves = [e.path for e in os.scandir(self._base) if e.is_dir()]
        except OSError:
            leaves = []
        for leaf in leaves:
            self.kill(leaf)
        for leaf in leaves:
            self.remove_leaf(leaf)
        with contextlib.suppress(OSError):
            os.rmdir(self._base)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        if self._private_mount is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.umount2(self._private_mount.encode(), MNT_DETACH)
            with contextlib.suppress(OSError):
                os.rmdir(self._private_mount)


_TREE_NAME = re.compile(r"exec-server-\d+-[0-9a-f]{8}")


def _sweep_dead_servers(home: str) -> None:
    """Remove the empty cgroup trees of earlier servers that died without cleaning up: those
    whose directory lock nobody holds (a live server holds its own for its whole life)."""
    try:
        # Only trees named like ours (pid-random): a server of an older version holds no lock
        # on its tree, and must not lose it to a newer one during an upgrade.
        entries = [e for e in os.scandir(home) if _TREE_NAME.fullmatch(e.name)]
    except OSError:
        return
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live server's
        try:
            with contextlib.suppress(OSError):
                for leaf in os.scandir(entry.path):
                    if leaf.is_dir():
                        os.rmdir(leaf.path)  # fails (and stops) if anything still runs there
                os.rmdir(entry.path)
        finally:
            os.close(fd)


def _children_of(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


def kill_descendants(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every descendant of ``pid`` still linked to it through ``/proc`` (fallback)."""
    stack = _children_of(pid)
    seen: set[int] = set()
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        stack.extend(_children_of(child))
        with contextlib.suppress(OSError):
            os.kill(child, sig)


class ProcessTree:
    """A started process and every descendant: its cgroup leaf when it has one, else its
    process group (and what ``/proc`` still links to it).

    Args:
        pid: the process (leader of its own process group).
        cgroups, leaf: its leaf, which the process enters itself just after the spawn.
    """

    __slots__ = ("_cgroups", "_leaf", "pid")

    def __init__(self, pid: int, cgroups: CgroupManager | None, leaf: str | None) -> None:
        self.pid = pid
        self._cgroups = cgroups if leaf is not None else None
        self._leaf = leaf

    def kill(self, *, exited: bool) -> None:
        """SIGKILL the process and every descendant, also those that left its group
        (``exited``: the process itself has been reaped)."""
        if self._leaf is not None and self._cgroups is not None:
            self._cgroups.kill(self._leaf)
            if not exited:
                # The child enters its leaf itself, just after the spawn: one that has not
                # yet got there (nor forked) is killed directly.
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
            return
        if not exited:
            kill_descendants(self.pid)
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)

    def signal(self, sig: int, *, exited: bool) -> None:
        """Send ``sig`` to every process of the tree (its cgroup, else its process group)."""
        leaf = self._leaf
        if leaf is not None:
            members = CgroupManager.members(leaf)
            if not exited and self.pid not in members:
                members.append(self.pid)  # not in its leaf yet (it enters it itself)
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            return
        with contextlib.suppress(OSError):
            os.killpg(self.pid, sig)

    def try_remove_leaf(self) -> None:
        """Remove the leaf if nothing lives in it any more (background children keep it, so
        a later kill still finds them)."""
        leaf, cgroups = self._leaf, self._cgroups
        if leaf is not None and cgroups is not None and cgroups.try_remove(leaf):
            self._leaf = None

    def discard_leaf(self) -> None:
        """Remove the leaf now or, while processes are still in it, at a later sweep."""
        if self._leaf is not None and self._cgroups is not None:
            self._cgroups.discard_leaf(self._leaf)
            self._leaf = None


class OrphanReaper:
    """Reaps children of the server that no managed process owns (adopted orphans).

    ``is_managed(pid)`` tells the pids the process supervisor reaps itself.
    """

    def __init__(self, is_managed: Callable[[int], bool]) -> None:
        self._is_managed = is_managed
        self._self = os.getpid()

    def reap(self) -> int:
        """Reap every finished unmanaged child; returns how many were reaped."""
        reaped = 0
        for child in _children_of(self._self):
            if self._is_managed(child):
                continue
            try:
                pid, _ = os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                continue
            if pid:
                reaped += 1
        return reaped
