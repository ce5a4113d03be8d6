"""A fault-injecting TCP proxy on 127.0.0.1, for tests of connection recovery.

Every accepted connection is forwarded to ``target``. Faults:

* :meth:`FaultProxy.cut_all` cuts every open connection now;
* :meth:`FaultProxy.cut_after` cuts each connection once it has forwarded N more bytes;
* :meth:`FaultProxy.random_cuts` gives each connection a random byte budget drawn from a seeded
  RNG (budgets are drawn in connection order, so a run with the same seed and the same byte
  stream cuts at the same places). Budgets are log-uniform by default: many short-lived
  connections (cuts in handshakes and in recovery batches) and now and then a long one, so a
  message larger than most budgets still gets through eventually;
* :attr:`FaultProxy.refusing` resets new connections at once (the server looks down);
* :attr:`FaultProxy.target` can be changed: new connections go to the new address.

A cut is one of four modes: ``"reset"`` (RST to both sides), ``"close"`` (FIN to both sides),
``"half_open"`` (the client side is reset, the server side stays open and silent, so the
server does not notice the disconnect) or ``"stall"`` (both sides stay open and nothing more
is forwarded: a network that silently stopped working). Bytes are counted in both
directions; a cut inside a chunk forwards exactly the bytes up to the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Literal

__all__ = ["CutMode", "FaultProxy"]

CutMode = Literal["reset", "close", "half_open", "stall"]


class _Side(asyncio.Protocol):
    def __init__(self, link: _Link, client_side: bool) -> None:
        self.link = link
        self.client_side = client_side
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.client_side:
            self.link.client_connected(self)

    def data_received(self, data: bytes) -> None:
        self.link.forward(data, from_client=self.client_side)

    def eof_received(self) -> bool | None:
        self.link.eof(from_client=self.client_side)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.link.side_lost(self.client_side)


class _Link:
    """One proxied connection."""

    def __init__(self, proxy: FaultProxy, number: int) -> None:
        self.proxy = proxy
        self.number = number
        self.down: _Side | None = None
        self.up: _Side | None = None
        self.pending = bytearray()
        self.pending_eof = False
        self.forwarded = 0
        self.budget: int | None = None
        self.mode: CutMode = "reset"
        self.cut = False
        self.done = False
        self._connector: asyncio.Task[None] | None = None

    def client_connected(self, side: _Side) -> None:
        self.down = side
        if self.proxy.refusing:
            self.cut = True
            self.proxy.refused += 1
            self._abort(side)
            return
        self.proxy.arm(self)
        self._connector = asyncio.ensure_future(self._connect_up())

    async def _connect_up(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.proxy.target
        try:
            _, up = await loop.create_connection(lambda: _Side(self, False), host, port)
        except OSError:
            self._abort(self.down)
            return
        if self.cut or self.down is None or self.down.transport is None:
            self._abort(up)
            return
        self.up = up
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            self._write(up, data)
        if self.pending_eof and up.transport is not None and up.transport.can_write_eof():
            up.transport.write_eof()

    def forward(self, data: bytes, *, from_client: bool) -> None:
        if self.cut:
            return
        budget = self.budget
        if budget is not None and self.forwarded + len(data) >= budget:
            keep = max(0, budget - self.forwarded)
            self._send(data[:keep], from_client)
            self.forwarded += keep
            self.cut_now(self.mode)
            return
        self.forwarded += len(data)
        self._send(data, from_client)

    def _send(self, data: bytes, from_client: bool) -> None:
        if not data:
            return
        if from_client:
            if self.up is None:
                self.pending += data
            else:
                self._write(self.up, data)
        elif self.down is not None:
            if self.proxy.withheld is not None:
                self.proxy.withheld.append((self, data))
            else:
                self._write(self.down, data)

    @staticmethod
    def _write(side: _Side, data: bytes) -> None:
        if side.transport is not None and not side.transport.is_closing():
            side.transport.write(data)

    def eof(self, *, from_client: bool) -> None:
        if self.cut:
            return
        dst = self.up if from_client else self.down
        if from_client and self.up is None:
            self.pending_eof = True
        elif dst is not None and dst.transport is not None and dst.transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                dst.transport.write_eof()

    def side_lost(self, client_side: bool) -> None:
        other = self.up if client_side else self.down
        if self.cut and self.mode in ("half_open", "stall"):
            return  # the server side stays open on purpose
        if other is not None and other.transport is not None:
            other.transport.close()
        if self._connector is not None and not self._connector.done() and client_side:
            self._connector.cancel()
        self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.proxy.links.discard(self)

    def cut_now(self, mode: CutMode) -> None:
        """Cut this connection (counted once)."""
        if self.cut:
            return
        self.cut = True
        self.mode = mode
        self.proxy.cuts += 1
        self.proxy.cut_event()
        if mode == "reset":
            self._abort(self.down)
            self._abort(self.up)
        elif mode == "close":
            for side in (self.down, self.up):
                if side is not None and side.transport is not None:
                    side.transport.close()
        elif mode == "stall":
            for side in (self.down, self.up):
                if side is not None and side.transport is not None:
                    side.transport.pause_reading()
                    self.proxy.held.append(side)
        else:
            self._abort(self.down)
            if self.up is not None and self.up.transport is not None:
                self.up.transport.pause_reading()
                self.proxy.held.append(self.up)
            elif self._connector is not None:
                self._connector.cancel()

    @staticmethod
    def _abort(side: _Side | None) -> None:
        if side is not None and side.transport is not None:
            side.transport.abort()


class FaultProxy:
    """``async with FaultProxy(host, port, seed=1) as proxy: proxy.url``.

    Attributes:
        cuts: connections cut so far (by any fault).
        accepted: connections accepted so far.
        refused: connections reset at once because :attr:`refusing` was set.
        refusing: while True, new connections are reset as soon as they are accepted.
        target: where new connections go.
    """

    def __init__(self, target_host: str, target_port: int, *, seed: int = 0) -> None:
        self.target = (target_host, target_port)
        self.seed = seed
        self.cuts = 0
        self.accepted = 0
        self.refused = 0
        self.refusing = False
        self.links: set[_Link] = set()
        self.held: list[_Side] = []
        self.withheld: list[tuple[_Link, bytes]] | None = None
        """While not None: what the server sent, not yet passed on (see :meth:`hold_replies`)."""
        self._server: asyncio.Server | None = None
        self._rng = random.Random(seed)
        self._random: tuple[int, int, bool] | None = None
        self._after: int | None = None
        self._mode: CutMode = "reset"
        self._cut_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.port = 0

    @classmethod
    def for_url(cls, url: str, *, seed: int = 0) -> FaultProxy:
        """A proxy in front of ``ws://host:port``."""
        hostport = url.split("://", 1)[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        return cls(host, int(port), seed=seed)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.mode = "reset"
            link._abort(link.down)
            link._abort(link.up)
        for side in self.held:
            if side.transport is not None:
                side.transport.abort()
        self.held.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    def _accept(self) -> _Side:
        self.accepted += 1
        link = _Link(self, self.accepted)
        self.links.add(link)
        return _Side(link, True)

    # ------------------------------------------------------------------ faults

    def arm(self, link: _Link) -> None:
        """Give a connection its byte budget under the current fault setting."""
        link.mode = self._mode
        if self._random is not None:
            lo, hi, log_uniform = self._random
            if log_uniform:
                budget = round(math.exp(self._rng.uniform(math.log(lo), math.log(hi))))
            else:
                budget = self._rng.randint(lo, hi)
            link.budget = link.forwarded + budget
        elif self._after is not None:
            link.budget = link.forwarded + self._after
        else:
            link.budget = None

    def hold_replies(self) -> None:
        """Stop passing on what the server sends (it is kept, in order): the client's
        requests reach the server, their answers wait, as on a link that stalls one way."""
        if self.withheld is None:
            self.withheld = []

    def release_replies(self) -> None:
        """Pass on what :meth:`hold_replies` kept, then forward as usual."""
        withheld, self.withheld = self.withheld or [], None
        for link, data in withheld:
            if not link.cut and link.down is not None:
                link._write(link.down, data)

    def cut_all(self, mode: CutMode = "reset") -> int:
        """Cut every open connection now; returns how many were cut."""
        n = 0
        for link in list(self.links):
            if not link.cut and link.down is not None:
                link.cut_now(mode)
                n += 1
        return n

    def cut_after(self, n_bytes: int, mode: CutMode = "reset") -> None:
        """Cut every connection (open or new) after it forwards ``n_bytes`` more bytes."""
        self._random = None
        self._after = n_bytes
        self._mode = mode
        self._rearm()

    def random_cuts(
        self,
        min_bytes: int,
        max_bytes: int,
        mode: CutMode = "reset",
        *,
        seed: int | None = None,
        log_uniform: bool = True,
    ) -> None:
        """Cut every connection after a random number of bytes in ``[min_bytes, max_bytes]``
        (drawn from the proxy's seeded RNG, or a new one seeded with ``seed``; log-uniform
        unless ``log_uniform`` is False)."""
        if min_bytes < 1 or max_bytes < min_bytes:
            raise ValueError("need 1 <= min_bytes <= max_bytes")
        if seed is not None:
            self._rng = random.Random(seed)
        self._after = None
        self._random = (min_bytes, max_bytes, log_uniform)
        self._mode = mode
        self._rearm()

    def stop_cuts(self) -> None:
        """No more byte-budget cuts (open connections keep running)."""
        self._after = None
        self._random = None
        self._rearm()

    def _rearm(self) -> None:
        for link in sorted(self.links, key=lambda lk: lk.number):
            if not link.cut and link.down is not None:
                self.arm(link)

    # ------------------------------------------------------------------ waiting

    def cut_event(self) -> None:
        keep = []
        for target, fut in self._cut_waiters:
            if self.cuts >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._cut_waiters = keep

    async def wait_cuts(self, total: int) -> None:
        """Wait until :attr:`cuts` reaches ``total`` (bound it with ``asyncio.timeout``)."""
        if self.cuts >= total:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cut_waiters.append((total, fut))
        await fut
