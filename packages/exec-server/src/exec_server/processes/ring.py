"""Retention of a process's output and its event sequence numbers (docs/protocol.md §5).

Pure data, no I/O. One seq counter per process, starting at 1, is shared by output chunks,
the exit event and the close event. The newest chunks up to ``limit`` bytes are retained;
the oldest *whole* chunks are evicted first (the newest chunk is always kept).

Chunks are kept base64-encoded, as they go on the wire: the output pump encodes each read once
and both the notification and every later `process/read` reuse that encoding. ``limit`` counts
raw (decoded) bytes.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import pybase64

__all__ = ["Chunk", "OutputRing", "ReadSlice"]


class Chunk(NamedTuple):
    seq: int
    stream: str
    b64: bytes
    """The output, base64-encoded."""
    size: int
    """Length of the raw output."""

    @property
    def data(self) -> bytes:
        return pybase64.b64decode(self.b64)


class ReadSlice(NamedTuple):
    chunks: list[Chunk]
    next_seq: int


class OutputRing:
    """Sequence numbers and the retained output of one process."""

    __slots__ = ("_chunks", "_evicted_through", "_limit", "_next_seq", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[Chunk] = deque()
        self._size = 0
        self._next_seq = 1
        self._evicted_through = 0

    @property
    def next_seq(self) -> int:
        """The next unassigned seq."""
        return self._next_seq

    @property
    def size(self) -> int:
        """Raw bytes retained."""
        return self._size

    def evict_oldest(self, nbytes: int) -> int:
        """Evict whole oldest chunks (never the newest) until ``nbytes`` are freed or one
        chunk is left; returns the bytes freed."""
        freed = 0
        while freed < nbytes and len(self._chunks) > 1:
            old = self._chunks.popleft()
            self._size -= old.size
            self._evicted_through = old.seq
            freed += old.size
        return freed

    def evict_all(self) -> int:
        """Evict every chunk (the process is closed and its output is wanted elsewhere);
        returns the bytes freed. Seqs stay as they were."""
        freed = self._size
        if self._chunks:
            self._evicted_through = self._chunks[-1].seq
            self._chunks.clear()
            self._size = 0
        return freed

    @property
    def retained_from_seq(self) -> int:
        """Every output chunk with a seq at or above this is still retained."""
        return self._evicted_through + 1

    def next(self) -> int:
        """Assign the next seq to a non-output event (exit, close)."""
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    def append(self, stream: str, data: bytes) -> int:
        """Retain raw output; returns its seq."""
        return self.append_encoded(stream, pybase64.b64encode(data), len(data))

    def append_encoded(self, stream: str, b64: bytes, size: int) -> int:
        """Retain output already base64-encoded (``size`` raw bytes); returns its seq."""
        seq = self._next_seq
        self._next_seq = seq + 1
        self._chunks.append(Chunk(seq, stream, b64, size))
        self._size += size
        while self._size > self._limit and len(self._chunks) > 1:
            old = self._chunks.popleft()
            self._size -= old.size
            self._evicted_through = old.seq
        return seq

    def read(self, after_seq: int, max_bytes: int | None) -> ReadSlice:
        """Retained chunks with seq > ``after_seq``, in order.

        ``max_bytes`` always lets at least one chunk through and never splits one; when it
        cuts the list, ``next_seq`` is the last returned seq + 1, else the next unassigned seq.
        """
        chunks = self._chunks
        if not chunks or chunks[-1].seq <= after_seq:
            return ReadSlice([], self._next_seq)
        start = 0
        if chunks[0].seq <= after_seq:
            # Chunk seqs are increasing but not contiguous (exit/close take seqs too).
            lo, hi = 0, len(chunks)
            while lo < hi:
                mid = (lo + hi) // 2
                if chunks[mid].seq <= after_seq:
                    lo = mid + 1
                else:
                    hi = mid
            start = lo
        out: list[Chunk] = []
        total = 0
        for i in range(start, len(chunks)):
            chunk = chunks[i]
            if max_bytes is not None and out and total + chunk.size > max_bytes:
                return ReadSlice(out, out[-1].seq + 1)
            out.append(chunk)
            total += chunk.size
        return ReadSlice(out, self._next_seq)

    def tail(self, max_bytes: int) -> bytes:
        """The last ``max_bytes`` bytes of retained output, all streams interleaved."""
        parts: list[bytes] = []
        total = 0
        for chunk in reversed(self._chunks):
            parts.append(chunk.data)
            total += chunk.size
            if total >= max_bytes:
                break
        return b"".join(reversed(parts))[-max_bytes:]

    def all_output(self) -> bytes:
        return b"".join(c.data for c in self._chunks)
