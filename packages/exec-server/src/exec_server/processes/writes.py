"""writeId dedupe (docs/protocol.md §6): the most recent 4096 write ids of a process and the status
each got. A repeated id returns the first status and writes nothing; a retry that arrives
while the first attempt is still in flight shares its outcome."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Literal

__all__ = ["WriteLog", "WriteOutcome", "WriteStatus"]

WRITE_ID_WINDOW = 4096

WriteStatus = Literal["accepted", "stdinClosed"]
"""What a write to a known process is answered (``unknownProcess`` is the handler's; the
protocol's ``starting`` is never sent by this server: a process exists once it started)."""
WriteOutcome = WriteStatus | asyncio.Future[WriteStatus]
"""The status, or a future of it while the write waits for room in the pipe."""


class WriteLog:
    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int = WRITE_ID_WINDOW) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, WriteOutcome] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, write_id: str) -> WriteOutcome | None:
        return self._entries.get(write_id)

    def record(self, write_id: str, outcome: WriteOutcome) -> None:
        entries = self._entries
        entries[write_id] = outcome
        if len(entries) > self._capacity:
            entries.popitem(last=False)
