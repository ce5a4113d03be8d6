"""What a transport gives the server and what it expects back."""

from __future__ import annotations

from typing import Protocol

__all__ = ["FrameSink", "MessageHandler"]


class FrameSink(Protocol):
    """The transport side of one connection."""

    def send(self, *parts: bytes) -> None:
        """Queue one JSON message, given as the parts it concatenates to (never blocks; flow
        control is signalled separately). Parts spare the caller a join on the hot path."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (WebSocket close code and reason where it applies)."""

    def pause_reading(self) -> None:
        """Hand the handler no more messages until :meth:`resume_reading`, and stop reading
        from the peer; messages already read wait, in order. Safe after close."""

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading`: queued messages are delivered, reading resumes."""

    @property
    def closed(self) -> bool: ...


class MessageHandler(Protocol):
    """The server side of one connection."""

    def on_message(self, frame: bytes) -> None: ...

    def on_close(self) -> None: ...

    def pause_output(self) -> None:
        """The transport's send buffer is over its high-water mark. (The transport itself
        stops delivering messages until the buffer drains, see :mod:`.websocket`.)"""

    def resume_output(self) -> None: ...
