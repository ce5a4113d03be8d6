"""The command's view of the file system, made in a private mount namespace.

Rules (docs/protocol.md §8): when writes are restricted, every mount of the host is
remounted read-only in the command's namespace — so nothing outside the writable roots changes,
metadata (mode, owner, times, extended attributes) included, and a write answers "Read-only file
system" like the reference's bubblewrap. Each writable root is then bound onto itself and made
writable again, and inside it ``.git``/``.agents``/``.codex``/``.aws`` (and read entries that lie
in a root) are bound read-only over themselves. A mount point cannot be renamed or removed.

Mount flags a less privileged user namespace inherits locked (nosuid, nodev, noexec, atime) are
preserved on every remount; propagation is private, so nothing a host mounts later shows up
writable inside. Mounts the server cannot reach (a path it has no search permission for) are
left alone: the command, with the same uid and no capabilities, cannot reach them either.

A protected path that does not exist yet cannot be mounted over, so (as the reference does) an
empty directory is created as a placeholder for the command's lifetime and removed afterwards
(just after, by a worker thread) if still empty and no other live sandbox uses it. Inside the
sandbox creating it fails (EEXIST/EROFS).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
from dataclasses import dataclass

from .._linux import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from ..processes.spawn_helper import TOLERATED_ERRNOS
from . import _kernel
from ._policy import Policy

__all__ = [
    "PLACEHOLDERS",
    "MountPlan",
    "apply_mounts",
    "host_mounts",
    "plan_mounts",
]

_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
_ST_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC))

MountStep = tuple[bytes | None, bytes, int, bool]
"""``mount(source, target, NULL, flags, NULL)``; ``source`` None for a remount. The last field
says the step may fail with ENOENT or EINVAL and the plan goes on: a host mount read from the
mount table may be gone by the time the command's namespace is made (container hosts mount
and unmount all the time); what was under it is then covered by the mount above."""


@dataclass(frozen=True, slots=True)
class MountPlan:
    """The mount syscalls of one command, and the placeholders it holds.

    Attributes:
        steps: in order, after entering the mount namespace.
        placeholders: directories created for this plan (``PLACEHOLDERS.release`` each).
    """

    steps: tuple[MountStep, ...]
    placeholders: tuple[str, ...]


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


PLACEHOLDERS = _Placeholders()
atexit.register(PLACEHOLDERS.flush)


_host_cache: tuple[bytes, tuple[MountStep, ...]] = (b"", ())


def _unescape(field: bytes) -> bytes:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field)


def host_mounts() -> tuple[MountStep, ...]:
    """Remount steps making every reachable mount of this namespace read-only (cached until
    the mount table changes)."""
    global _host_cache
    with open("/proc/self/mountinfo", "rb") as file:
        table = file.read()
    if table == _host_cache[0]:
        return _host_cache[1]
    steps: dict[bytes, MountStep] = {}
    for line in table.splitlines():
        fields = line.split(b" ")
        if len(fields) < 6:
            continue
        target = _unescape(fields[4])
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in fields[5].split(b","):
            flags |= _OPTION_FLAGS.get(option.decode("ascii", "replace"), 0)
        try:
            os.stat(target)
        except OSError:
            continue  # unreachable for us, so for the command too
        steps[target] = (None, target, flags, True)
    result = tuple(steps.values())
    _host_cache = (table, result)
    return result


def _mount_flags(path: str) -> int:
    found = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_FLAGS if found & st)


def plan_mounts(policy: Policy) -> MountPlan:
    """Plan the mounts of ``policy``, creating placeholders for missing protected paths.

    The caller must ``PLACEHOLDERS.release`` every path in ``placeholders`` when done.
    """
    steps: list[MountStep] = [(None, b"/", MS_REC | MS_PRIVATE, False)]
    placeholders: list[str] = []
    if policy.write_all:
        return MountPlan(tuple(steps), ())
    steps += host_mounts()
    try:
        for root in policy.writable:
            flags = _mount_flags(root)
            if os.statvfs(root).f_flag & os.ST_RDONLY:
                continue  # read-only on the host already: nothing to give back
            target = os.fsencode(root)
            steps.append((target, target, MS_BIND | MS_REC, False))
            steps.append((None, target, MS_REMOUNT | MS_BIND | flags, False))
        for path in policy.read_only:
            target_path, ours = PLACEHOLDERS.hold(path)
            if target_path is None:
                target_path = os.path.realpath(path)
            elif ours:
                placeholders.append(target_path)
            target = os.fsencode(target_path)
            flags = _mount_flags(target_path) | MS_REMOUNT | MS_BIND | MS_RDONLY
            steps.append((target, target, MS_BIND | MS_REC, False))
            steps.append((None, target, flags, False))
    except BaseException:
        for placeholder in placeholders:
            PLACEHOLDERS.release(placeholder)
        raise
    return MountPlan(tuple(steps), tuple(placeholders))


def apply_mounts(plan: MountPlan) -> None:
    """Enter a private mount namespace and apply ``plan`` (in the calling thread; root only:
    a thread of a multi-threaded process cannot enter a user namespace)."""
    _kernel.unshare(_kernel.CLONE_NEWNS)
    for source, target, flags, tolerant in plan.steps:
        try:
            _kernel.mount(source, target, flags)
        except OSError as exc:
            if not (tolerant and exc.errno in TOLERATED_ERRNOS):
                raise
