"""The client's connection state machine, without I/O.

Rules:

* A client starts CONNECTED (``connect()`` returns only after a successful handshake).
* A dropped connection starts RECOVERING: requests are queued, not failed.
* Recovery either succeeds (back to CONNECTED, queued requests are sent) or gives up: FAILED,
  with the exception that every pending and later operation raises.
* ``aclose()`` from any state but FAILED ends in CLOSED. FAILED and CLOSED are final.

Transitions (anything else raises :class:`IllegalTransition`)::

    CONNECTED  --drop-->     RECOVERING --resumed--> CONNECTED
    RECOVERING --give_up-->  FAILED
    CONNECTED  --give_up-->  FAILED          (the session was taken over by another client)
    CONNECTED|RECOVERING --close--> CLOSED
"""

from __future__ import annotations

import enum

__all__ = ["ClientEvent", "ClientState", "IllegalTransition", "transition"]


class ClientState(enum.Enum):
    CONNECTED = "connected"
    RECOVERING = "recovering"
    FAILED = "failed"
    CLOSED = "closed"


class ClientEvent(enum.Enum):
    DROP = "drop"
    RESUMED = "resumed"
    GIVE_UP = "give_up"
    CLOSE = "close"


_TRANSITIONS: dict[tuple[ClientState, ClientEvent], ClientState] = {
    (ClientState.CONNECTED, ClientEvent.DROP): ClientState.RECOVERING,
    (ClientState.RECOVERING, ClientEvent.RESUMED): ClientState.CONNECTED,
    (ClientState.RECOVERING, ClientEvent.GIVE_UP): ClientState.FAILED,
    (ClientState.CONNECTED, ClientEvent.GIVE_UP): ClientState.FAILED,
    (ClientState.CONNECTED, ClientEvent.CLOSE): ClientState.CLOSED,
    (ClientState.RECOVERING, ClientEvent.CLOSE): ClientState.CLOSED,
}


class IllegalTransition(RuntimeError):
    """A transition the table does not allow (a bug in the client)."""


def transition(state: ClientState, event: ClientEvent) -> ClientState:
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"client: {event.value} in {state.value}") from None
