"""Bounds on what unauthenticated peers can hold, and logs that cannot flood.

* :class:`HandshakeTracker`: connections accepted but not yet upgraded (or answered), counted per
  peer address and in all, so idle or slow peers cannot use up the file descriptors that
  legitimate clients need; the transport refuses a connection over either cap at once and
  closes one that has not finished its handshake by the deadline.
* :class:`RateLimitedLog`: one line per key per interval, with the count of what it held back.
* :class:`AcceptErrorHandler`: the event loop's exception handler, turning asyncio's traceback
  for every failed ``accept()`` (EMFILE, ENFILE, ...) into a rate-limited one-line warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..metrics import METRICS

__all__ = ["AcceptErrorHandler", "HandshakeTracker", "RateLimitedLog"]

log = logging.getLogger("exec_server.transport")

# The message asyncio's selector loop reports when accept() fails for lack of resources.
_ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"


class RateLimitedLog:
    """Log at most one line per key every ``interval`` seconds.

    A line logged after a quiet period says how many were held back before it.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` under ``key`` unless one was logged recently; True if logged."""
        now = self._clock()
        if now < self._next.get(key, float("-inf")):
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._next[key] = now + self._interval
        held = self._held.pop(key, 0)
        if held:
            msg += f" ({held} more since the last report)"
        self._logger.log(level, msg, *args)
        return True


class HandshakeTracker:
    """Counts connections that are still in the HTTP handshake.

    Args:
        max_total: most handshakes in progress on the listener.
        max_per_address: most handshakes in progress from one peer address.
    """

    def __init__(self, *, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self._per_address: dict[str, int] = {}
        self._refusals = RateLimitedLog(log)

    def try_enter(self, address: str) -> bool:
        """Count one more handshake from ``address``; False (and nothing counted) when a cap
        is reached."""
        current = self._per_address.get(address, 0)
        if current >= self.max_per_address:
            METRICS.limit_hit("max_handshakes_per_address")
            self._refusals(
                logging.WARNING,
                "per-address",
                "refusing connections from %s: %d handshakes in progress from it "
                "(--max-handshakes-per-address)",
                address,
                current,
            )
            return False
        if self.total >= self.max_total:
            METRICS.limit_hit("max_handshakes")
            self._refusals(
                logging.WARNING,
                "total",
                "refusing connections: %d handshakes in progress (--max-handshakes)",
                self.total,
            )
            return False
        self._per_address[address] = current + 1
        self.total += 1
        return True

    def leave(self, address: str) -> None:
        """One handshake from ``address`` ended (upgraded, answered, closed or timed out)."""
        self.total -= 1
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]


def _is_retry_after_close(context: dict[str, Any]) -> bool:
    handle = context.get("handle")
    exc = context.get("exception")
    callback = getattr(handle, "_callback", None)
    return (
        isinstance(exc, ValueError)
        and getattr(callback, "__name__", "") == "_start_serving"
        and "Invalid file descriptor: -1" in str(exc)
    )


class AcceptErrorHandler:
    """An event-loop exception handler for servers.

    asyncio reports each failed ``accept()`` for lack of resources with a traceback and retries a
    second later, for as long as the shortage lasts. This handler logs one line per
    ``interval`` instead; every other report goes to the loop's default handler. A retry that
    comes due after the listener was closed (asyncio schedules one per failed accept and does
    not cancel them at close: "Invalid file descriptor: -1" in ``_start_serving``) is dropped
    quietly: there is nothing left to serve.
    """

    def __init__(self, *, interval: float = 5.0) -> None:
        self._log = RateLimitedLog(log, interval=interval)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == _ACCEPT_OUT_OF_RESOURCES and isinstance(exc, OSError):
            self._log(
                logging.WARNING,
                "accept",
                "cannot accept connections: %s (retrying; raise the open-file limit or lower "
                "--max-handshakes)",
                exc.strerror or exc,
            )
            return
        if _is_retry_after_close(context):
            log.debug("accept retry after the listener closed: ignored")
            return
        loop.default_exception_handler(context)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)
