"""Transports: WebSocket (with the HTTP routes) and stdio. Both deliver whole JSON messages to
a :class:`MessageHandler` and take frames to send."""

from ._limits import AcceptErrorHandler
from .base import FrameSink, MessageHandler
from .stdio import serve_stdio
from .websocket import HttpPolicy, serve_websocket

__all__ = [
    "AcceptErrorHandler",
    "FrameSink",
    "HttpPolicy",
    "MessageHandler",
    "serve_stdio",
    "serve_websocket",
]
