"""Read-only bind mounts over protected paths inside writable roots, in a private mount namespace.

Landlock only grants, it cannot carve a read-only hole into a writable tree, so ``.git`` & co are
protected with the VFS instead: the child enters a new mount namespace (slave of the host's, so
nothing propagates back) and bind-mounts each protected path onto itself read-only. A mount point
cannot be renamed or removed, and writes under it fail with EROFS.

A path that does not exist yet cannot be mounted over, so (as the reference does) an empty
directory is created as a placeholder for the command's lifetime and removed afterwards (just
after, by a worker thread) if still empty and no other live sandbox uses it. Inside the sandbox
creating it fails (EEXIST/EROFS).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from dataclasses import dataclass

from . import _kernel

__all__ = ["PLACEHOLDERS", "MountPlan", "apply_mounts", "mount_steps", "plan_mounts"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOATIME = 1024
_MS_NODIRATIME = 2048
_MS_BIND = 4096
_MS_REC = 1 << 14
_MS_SLAVE = 1 << 19
_MS_RELATIME = 1 << 21
_ST_TO_MS = (
    (os.ST_NOSUID, _MS_NOSUID),
    (os.ST_NODEV, _MS_NODEV),
    (os.ST_NOEXEC, _MS_NOEXEC),
    (os.ST_NOATIME, _MS_NOATIME),
    (os.ST_NODIRATIME, _MS_NODIRATIME),
    (os.ST_RELATIME, _MS_RELATIME),
)


@dataclass(frozen=True, slots=True)
class MountPlan:
    """What the child mounts. ``targets``: (path, remount flags) for each read-only bind."""

    targets: tuple[tuple[bytes, int], ...]
    placeholders: tuple[str, ...]
    uid: int
    gid: int


class _Placeholders:
    """Reference-counted placeholder directories, shared by concurrent sandboxes.

    Removal happens off the caller's thread (an ``rmdir`` costs the event loop ~0.1 ms on
    ext4): a placeholder nobody uses any more is queued to a worker thread, and acquiring it
    again before the worker got to it simply keeps it (no mkdir/rmdir churn between
    back-to-back commands). The worker removes a queued path only if it is still unused,
    under the same lock ``acquire`` takes, so a sandbox never loses its mount point.
    ``flush`` removes everything queued now (also run at interpreter exit).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._counts: dict[str, int] = {}
        self._doomed: list[str] = []
        self._worker: threading.Thread | None = None

    def hold(self, path: str) -> tuple[str | None, bool]:
        """Find what to mount over for ``path``, creating a placeholder if it is missing.

        Returns:
            ``(None, False)`` when ``path`` exists on its own; ``(target, True)`` when
            ``target`` (``path`` or its first missing ancestor) is one of our placeholders,
            now held (call ``release(target)``); ``(target, False)`` when someone else
            created ``target`` meanwhile.
        """
        with self._lock:
            probe = path
            while True:  # one of ours, alive or queued for removal, covers the path: keep it
                if probe in self._counts:
                    self._counts[probe] += 1
                    return probe, True
                parent = os.path.dirname(probe)
                if parent == probe:
                    break
                probe = parent
            target = _first_missing(path)
            if target is None:
                return None, False
            try:
                os.mkdir(target, 0o555)
            except FileExistsError:
                return target, False
            self._counts[target] = 1
            return target, True

    def release(self, path: str) -> None:
        with self._lock:
            self._counts[path] -= 1
            if self._counts[path]:
                return
            self._doomed.append(path)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="sandbox-placeholders", daemon=True
                )
                self._worker.start()
            self._queued.notify()

    def flush(self) -> None:
        """Remove every unused placeholder now, in the calling thread."""
        with self._lock:
            while self._doomed:
                self._remove_locked(self._doomed.pop())

    def _run(self) -> None:
        with self._lock:
            while True:
                while not self._doomed:
                    self._queued.wait()
                self._remove_locked(self._doomed.pop())

    def _remove_locked(self, path: str) -> None:
        if self._counts.get(path) != 0:
            return  # acquired again since it was queued (or removed already)
        del self._counts[path]
        with contextlib.suppress(OSError):  # not empty, or already gone: leave it
            os.rmdir(path)


PLACEHOLDERS = _Placeholders()
atexit.register(PLACEHOLDERS.flush)


def plan_mounts(read_only: tuple[str, ...]) -> MountPlan | None:
    """Create placeholders for missing paths and list the mounts; ``None`` if nothing to mount.

    The caller must ``PLACEHOLDERS.release`` every path in ``placeholders`` when done.
    """
    targets: list[tuple[bytes, int]] = []
    placeholders: list[str] = []
    try:
        for path in read_only:
            target, ours = PLACEHOLDERS.hold(path)
            if target is None:
                target = os.path.realpath(path)
            elif ours:
                placeholders.append(target)
            flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
            mount_flags = os.statvfs(target).f_flag
            for st_flag, ms_flag in _ST_TO_MS:
                if mount_flags & st_flag:
                    flags |= ms_flag
            targets.append((os.fsencode(target), flags))
    except BaseException:
        for placeholder in placeholders:
            PLACEHOLDERS.release(placeholder)
        raise
    if not targets:
        return None
    return MountPlan(tuple(targets), tuple(placeholders), os.geteuid(), os.getegid())


def _first_missing(path: str) -> str | None:
    """The first component of ``path`` that does not exist (``None`` if it all exists).

    A dangling symlink counts as existing and is resolved by the mount (its target is what a
    write would reach).
    """
    if os.path.lexists(path):
        return None
    parent = os.path.dirname(path)
    first = _first_missing(parent) if parent != path else None
    return first or path


MountStep = tuple[str | bytes | int, ...]


def mount_steps(plan: MountPlan, *, userns: bool) -> list[MountStep]:
    """The syscalls that set the mounts up, as ``(name, *args)``; ``bytes`` are C strings.

    ``("write_file", path, content)`` stands for open + write + close.
    """
    steps: list[MountStep] = []
    if userns:
        steps.append(("unshare", _CLONE_NEWUSER | _CLONE_NEWNS))
        steps.append(("write_file", b"/proc/self/setgroups", b"deny"))
        steps.append(("write_file", b"/proc/self/uid_map", b"%d %d 1" % (plan.uid, plan.uid)))
        steps.append(("write_file", b"/proc/self/gid_map", b"%d %d 1" % (plan.gid, plan.gid)))
    else:
        steps.append(("unshare", _CLONE_NEWNS))
    steps.append(("mount", 0, b"/", 0, _MS_REC | _MS_SLAVE, 0))
    for target, flags in plan.targets:
        steps.append(("mount", target, target, 0, _MS_BIND | _MS_REC, 0))
        steps.append(("mount", 0, target, 0, flags, 0))
    return steps


def apply_mounts(plan: MountPlan, *, new_user_namespace: bool) -> None:
    """Enter a private mount namespace and make each target read-only (in the calling task).

    Args:
        plan: from ``plan_mounts``.
        new_user_namespace: also enter a user namespace (needed when not root); only possible
            in a single-threaded process, i.e. the forked child.
    """
    for step in mount_steps(plan, userns=new_user_namespace):
        name, *args = step
        if name == "unshare":
            _kernel.unshare(int(args[0]))
        elif name == "write_file":
            _kernel.write_file(os.fsdecode(args[0]), bytes(args[1]))  # type: ignore[arg-type]  # a C string
        else:
            source, target, _, flags, _ = args
            _kernel.mount(source if isinstance(source, bytes) else None, bytes(target), int(flags))  # type: ignore[arg-type]  # a C string
