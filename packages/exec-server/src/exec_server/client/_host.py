"""What a :class:`~exec_server.client.Process` needs from the client that made it.

The client implements :class:`ProcessHost`; a process, its event feed and its output streams
see only this, so ``_process``, ``_feed`` and ``_streams`` import nothing of ``_client`` (the
client imports them), and a test can drive a process with a host of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..exceptions import ConnectionLost, SandboxDenied

__all__ = ["ProcessHost"]

T = TypeVar("T")


class ProcessHost(Protocol):
    """The client, as its processes use it."""

    @property
    def read_page_bytes(self) -> int:
        """``maxBytes`` of a catch-up ``process/read``."""
        ...

    @property
    def max_buffered_output(self) -> int:
        """Output bytes an event feed buffers while nobody reads them; beyond it the feed stops
        taking pushed events and reads them back from the server's retention later."""
        ...

    @property
    def failure(self) -> ConnectionLost | None:
        """Why the client FAILED (None while it is usable)."""
        ...

    @property
    def sandbox_denied_handler(self) -> Callable[[Any, SandboxDenied], Awaitable[int]] | None:
        """What :meth:`Process.wait` calls with a :class:`SandboxDenied` (the process first)."""
        ...

    def capability(self, name: str) -> bool:
        """Whether the server announced capability ``name`` (``environmentInfo.capabilities``;
        False before the handshake and against the reference, which announces none)."""
        ...

    async def request(
        self, method: str, params: Any, result_type: type[T], *, retry: bool = True
    ) -> T:
        """Send one request and decode its result.

        Args:
            retry: send it again after a reconnect when its response was lost (else
                :class:`ConnectionLost`).

        Raises:
            RemoteError: the server answered with an error.
            ConnectionLost, SessionLost: the connection could not be recovered.
            TimeoutError: no response within the client's request timeout.
        """
        ...

    def release(self, process_id: str, feed: object) -> None:
        """``feed`` delivered its last event: the client stops routing events to it."""
        ...
