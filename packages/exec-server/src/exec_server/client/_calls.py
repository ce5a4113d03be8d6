"""The client's request table, without I/O: wire ids, encoding, resends after a reconnect.

Rules:

* A call is created QUEUED and gets a fresh wire id each time it is sent; requests are sent in
  the order the calls were made, also when a batch is re-sent after a reconnect.
* When a connection drops, each call sent on it that has no response yet is either queued
  again (``retry``: the request is idempotent, e.g. ``process/write`` with its writeId) or
  abandoned (the caller must be told the outcome is unknown).
* A response is matched by wire id; a response to an id not in flight (a late answer on a
  connection we gave up on, a call already failed) is ignored.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
from exec_server_protocol import encode_request

__all__ = ["Call", "CallTable"]

W = TypeVar("W")
"""The caller's waiter type (opaque here; the asyncio layer uses a future)."""


@dataclass(eq=False, slots=True)
class Call(Generic[W]):
    order: int
    method: str
    params: bytes
    """The params, already encoded as JSON."""
    retry: bool
    waiter: W
    wire_id: int | None = None
    generation: int | None = None
    """The connection it was last sent on."""
    attempts: int = 0


class CallTable(Generic[W]):
    """Calls that have no response yet."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._orders = itertools.count()
        self._in_flight: dict[int, Call[W]] = {}
        self._queued: list[Call[W]] = []

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._queued)

    def add(self, method: str, params: bytes, waiter: W, *, retry: bool) -> Call[W]:
        """A new call, queued until :meth:`send` or :meth:`flush`."""
        call = Call(next(self._orders), method, params, retry, waiter)
        self._queued.append(call)
        return call

    def send(self, call: Call[W], generation: int) -> bytes:
        """Send a queued call now on connection ``generation``: returns its frame."""
        self._queued.remove(call)
        return self._encode(call, generation)

    def flush(self, generation: int) -> list[bytes]:
        """Frames of every queued call, in call order, now in flight on ``generation``."""
        queued = sorted(self._queued, key=lambda c: c.order)
        self._queued = []
        return [self._encode(call, generation) for call in queued]

    def _encode(self, call: Call[W], generation: int) -> bytes:
        wire_id = next(self._ids)
        call.wire_id = wire_id
        call.generation = generation
        call.attempts += 1
        self._in_flight[wire_id] = call
        return encode_request(wire_id, call.method, msgspec.Raw(call.params))

    def resolve(self, wire_id: object) -> Call[W] | None:
        """The call a response with ``wire_id`` answers (removed from the table), if any."""
        if not isinstance(wire_id, int):
            return None
        return self._in_flight.pop(wire_id, None)

    def discard(self, call: Call[W]) -> None:
        """Forget a call (its caller gave up waiting)."""
        if call.wire_id is not None and self._in_flight.get(call.wire_id) is call:
            del self._in_flight[call.wire_id]
        if call in self._queued:
            self._queued.remove(call)

    def connection_lost(self, generation: int) -> list[Call[W]]:
        """Connection ``generation`` dropped: queue its retryable calls again.

        Returns:
            The calls that cannot be retried (removed from the table).
        """
        abandoned: list[Call[W]] = []
        for wire_id, call in list(self._in_flight.items()):
            if call.generation != generation:
                continue
            del self._in_flight[wire_id]
            call.wire_id = None
            if call.retry:
                self._queued.append(call)
            else:
                abandoned.append(call)
        return abandoned

    def drain(self) -> list[Call[W]]:
        """Remove and return every call (the client failed or closed)."""
        calls = [*self._in_flight.values(), *self._queued]
        self._in_flight.clear()
        self._queued = []
        return calls
