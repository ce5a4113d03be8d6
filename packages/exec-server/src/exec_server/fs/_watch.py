"""``fs/watchMissing``: tell the client once something it waits for may have appeared.

Semantics of the reference (codex 0.169.0): a watch starts only if every ``missing`` path is
absent and the ``present`` path (if any) exists; it fires ``fs/missingChanged`` **once**, on the
first change in the ancestry of a missing path (``a/b/c`` fires when ``a`` is created) or when
``present`` disappears, and is then gone.

Polling, not inotify: per interval a watch costs at most a few ``lstat`` calls per path, it
works for paths whose parent directories do not exist yet, and needs no descriptor per
directory. Bounded: at most :data:`MAX_WATCHES` live watches per session and
:data:`MAX_PATHS_PER_WATCH` paths each. Each watch is one task owned by its :class:`Watches`;
:meth:`Watches.aclose` cancels them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import _ops

__all__ = ["MAX_PATHS_PER_WATCH", "MAX_WATCHES", "WatchState", "Watches"]

logger = logging.getLogger(__name__)

MAX_WATCHES = 256
MAX_PATHS_PER_WATCH = 1024

WatchKey = int | str


class Watches:
    """The live watches of one session."""

    def __init__(self, *, on_appeared: Callable[[WatchKey], None], interval: float) -> None:
        self._on_appeared = on_appeared
        self._interval = interval
        self._tasks: dict[WatchKey, asyncio.Task[None]] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, watch_id: WatchKey) -> bool:
        return watch_id in self._tasks

    def can_start(self, watch_id: WatchKey, paths: list[str]) -> bool:
        return (
            not self._closed
            and watch_id not in self._tasks
            and len(self._tasks) < MAX_WATCHES
            and 0 < len(paths) <= MAX_PATHS_PER_WATCH
        )

    def start(self, watch_id: WatchKey, state: WatchState) -> None:
        """Poll until ``state`` changes, then report ``watch_id`` once and forget it."""
        task = asyncio.get_running_loop().create_task(
            self._poll(watch_id, state), name=f"fs-watch-{watch_id}"
        )
        self._tasks[watch_id] = task

    async def _poll(self, watch_id: WatchKey, state: WatchState) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                if await asyncio.to_thread(state.changed):
                    break
        except asyncio.CancelledError:
            raise
        except Exception:  # a poll must never die silently: log and stop watching
            logger.exception("fs/watchMissing %r failed", watch_id)
            self._tasks.pop(watch_id, None)
            return
        self._tasks.pop(watch_id, None)
        self._on_appeared(watch_id)

    async def aclose(self) -> None:
        """Stop every watch (no notification is sent for them)."""
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _existing_depth(path: str) -> int:
    """How many leading components of ``path`` exist (``/`` counts as 0)."""
    parts = [part for part in path.split("/") if part]
    prefix = ""
    for depth, part in enumerate(parts):
        prefix += "/" + part
        if not _ops.path_exists(prefix):
            return depth
    return len(parts)


class WatchState:
    """What a watch compares against: the existing depth of each missing path, and ``present``."""

    def __init__(self, paths: list[str], present: str | None, depths: list[int]) -> None:
        self.paths = paths
        self.present = present
        self.depths = depths

    @classmethod
    def capture(cls, paths: list[str], present: str | None) -> WatchState | None:
        """The starting state, or ``None`` when no watch may start (a missing path exists, or
        ``present`` does not). Blocking."""
        depths = []
        for path in paths:
            depth = _existing_depth(path)
            if depth == len([part for part in path.split("/") if part]):
                return None
            depths.append(depth)
        if present is not None and not _ops.path_exists(present):
            return None
        return cls(paths, present, depths)

    def changed(self) -> bool:
        """Whether an ancestor of a missing path (or the path) appeared or vanished, or
        ``present`` vanished. Blocking."""
        if self.present is not None and not _ops.path_exists(self.present):
            return True
        return any(_existing_depth(p) != d for p, d in zip(self.paths, self.depths, strict=True))
