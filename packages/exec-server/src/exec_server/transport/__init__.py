"""Transports: WebSocket (with the HTTP routes) and stdio. Both deliver whole JSON messages to
a :class:`MessageHandler` and take frames to send."""

from ._limits import AcceptErrorHandler
from ._tls import TlsCertificate
from .base import FrameSink, MessageHandler
from .stdio import serve_stdio
from .websocket import HttpPolicy, serve_websocket

__all__ = [
    "AcceptErrorHandler",
    "FrameSink",
    "HttpPolicy",
    "MessageHandler",
    "TlsCertificate",
    "serve_stdio",
    "serve_websocket",
]
