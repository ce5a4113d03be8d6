"""The TCP option both ends of a WebSocket connection set, the server's and the client's."""

from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ["no_delay"]


def no_delay(transport: asyncio.BaseTransport) -> socket.socket | None:
    """Turn Nagle's algorithm off on ``transport``'s socket: a small frame leaves at once.

    Returns:
        The socket (asyncio's stand-in for it), or None for a transport without one.
    """
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
