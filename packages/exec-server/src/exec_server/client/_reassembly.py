"""Reassembly of one process's event stream, without I/O.

Events reach the client two ways: pushed notifications (``process/output``, ``process/exited``,
``process/closed``, each with its seq) and ``process/read`` results (chunks with seqs, plus
``exited``/``closed`` flags, ``nextSeq`` and ``retainedFromSeq``). This class merges both into
one stream released in seq order, each seq exactly once.

Rules:

* One seq counter per process, starting at 1, shared by output, exit and close; close is last.
* An event with a seq at or below :attr:`SeqReassembler.delivered` is a duplicate and dropped;
  one above ``delivered + 1`` is buffered until the gap is filled.
* A read result does not carry the seqs of the exit and close events, but it explains every
  seq up to what it covers: in ``afterSeq + 1 .. end`` (``end`` is the last returned chunk when
  the result may have been cut by ``maxBytes``, else ``nextSeq - 1``) each seq that is not a
  returned chunk is the close event (``nextSeq - 1`` when ``closed``) or else the exit event.
  A seq left unexplained (a server bug) is skipped rather than waited for forever.
* ``retainedFromSeq > delivered + 1`` means output was evicted: a :class:`LostMarker` for the
  lost range is released in its place, never a silent skip. An exit event inside that range
  is released right after the marker.
"""

from __future__ import annotations

import pybase64
from exec_server_protocol.process import ReadResult

from ._events import ClosedEvent, ExitEvent, LostMarker, OutputEvent

__all__ = ["Released", "SeqReassembler"]

Released = OutputEvent | ExitEvent | ClosedEvent | LostMarker


class _Skip:
    """A seq that carries nothing for the caller."""

    __slots__ = ()


_SKIP = _Skip()


class SeqReassembler:
    """Orders one process's events by seq and drops duplicates."""

    __slots__ = ("_buffer", "_lost", "_lost_exit", "closed", "delivered", "exit_seq")

    def __init__(self) -> None:
        self.delivered = 0
        """The highest seq released so far (every lower seq is released too)."""
        self.exit_seq: int | None = None
        """The exit event's seq, once known."""
        self.closed = False
        """Whether the close event was released (nothing more will come)."""
        self._buffer: dict[int, OutputEvent | ExitEvent | ClosedEvent | _Skip] = {}
        self._lost: LostMarker | None = None
        self._lost_exit: ExitEvent | None = None

    @property
    def has_gap(self) -> bool:
        """Whether events are buffered behind a missing seq (a read must fill it)."""
        return bool(self._buffer) or self._lost is not None

    def push(self, event: OutputEvent | ExitEvent | ClosedEvent) -> list[Released]:
        """Take one pushed notification; return what can now be released, in order."""
        if self.closed:
            return []
        if isinstance(event, ExitEvent):
            self.exit_seq = event.seq
        self._put(event.seq, event)
        return self._release()

    def feed_read(self, after_seq: int, result: ReadResult) -> tuple[list[Released], bool]:
        """Take a ``process/read`` result for ``afterSeq = after_seq``.

        Returns:
            What can now be released, in order, and whether the result reached the server's
            newest event (False: it was cut by ``maxBytes``; read again after
            :attr:`delivered`).
        """
        if self.closed:
            return [], True
        low = after_seq + 1
        retained_from = result.retained_from_seq
        if retained_from > max(low, self.delivered + 1):
            first = max(low, self.delivered + 1)
            if self._lost is None or self._lost.retained_from_seq < retained_from:
                self._lost = LostMarker(first, retained_from)
            low = retained_from
        chunks = result.chunks
        next_seq = result.next_seq
        cut = bool(chunks) and next_seq == chunks[-1].seq + 1
        end = chunks[-1].seq if cut else next_seq - 1
        closed_seq = next_seq - 1 if result.closed and not cut else None
        events: dict[int, OutputEvent | ExitEvent | ClosedEvent | _Skip] = {}
        for c in chunks:
            if c.seq >= low:
                events[c.seq] = OutputEvent(c.seq, c.stream, pybase64.b64decode(c.chunk))
        exited = result.exited and result.exit_code is not None
        for seq in range(low, end + 1):
            if seq in events:
                continue
            if seq == closed_seq:
                events[seq] = ClosedEvent(seq)
            elif exited and self.exit_seq in (None, seq):
                self.exit_seq = seq
                events[seq] = _exit_event(seq, result)
            else:
                events[seq] = _SKIP
        if exited and self.exit_seq is None and self._lost is not None and not cut:
            # The exit is older than every retained chunk: it fell in the evicted range.
            self.exit_seq = self._lost.retained_from_seq - 1
            self._lost_exit = _exit_event(self.exit_seq, result)
        for seq, event in events.items():
            self._put(seq, event)
        return self._release(), not cut

    def _put(self, seq: int, event: OutputEvent | ExitEvent | ClosedEvent | _Skip) -> None:
        if seq > self.delivered and seq not in self._buffer:
            self._buffer[seq] = event

    def _release(self) -> list[Released]:
        out: list[Released] = []
        buffer = self._buffer
        while True:
            lost = self._lost
            if lost is not None and lost.first_seq <= self.delivered + 1:
                if lost.retained_from_seq - 1 > self.delivered:
                    out.append(LostMarker(self.delivered + 1, lost.retained_from_seq))
                    for seq in range(self.delivered + 1, lost.retained_from_seq):
                        buffer.pop(seq, None)
                    self.delivered = lost.retained_from_seq - 1
                    if self._lost_exit is not None:
                        out.append(self._lost_exit)
                self._lost = None
                self._lost_exit = None
                continue
            event = buffer.pop(self.delivered + 1, None)
            if event is None:
                return out
            self.delivered += 1
            if isinstance(event, _Skip):
                continue
            out.append(event)
            if isinstance(event, ClosedEvent):
                self.closed = True
                buffer.clear()
                return out


def _exit_event(seq: int, result: ReadResult) -> ExitEvent:
    assert result.exit_code is not None
    return ExitEvent(
        seq, result.exit_code, result.sandbox_denied, result.signal, result.resource_usage
    )
