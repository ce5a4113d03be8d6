"""Transports: WebSocket (with the HTTP routes) and stdio. Both deliver whole JSON messages to
a :class:`MessageHandler` and take frames to send."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._limits import AcceptErrorHandler
    from ._tls import TlsCertificate
    from .base import FrameSink, MessageHandler
    from .stdio import serve_stdio
    from .websocket import HttpPolicy, serve_websocket

# Imported on first use: the client shares ``_messages`` with the server and imports none of
# the server's modules through here (``websocket`` and ``_limits`` count the server's metrics,
# ``websocket`` authenticates).
__getattr__ = lazy_exports(
    __name__,
    {
        "AcceptErrorHandler": "._limits",
        "TlsCertificate": "._tls",
        "FrameSink": ".base",
        "MessageHandler": ".base",
        "serve_stdio": ".stdio",
        "HttpPolicy": ".websocket",
        "serve_websocket": ".websocket",
    },
)


__all__ = [
    "AcceptErrorHandler",
    "FrameSink",
    "HttpPolicy",
    "MessageHandler",
    "TlsCertificate",
    "serve_stdio",
    "serve_websocket",
]
