"""Sessions and their registry: which connection a session is attached to, and when it expires.

No I/O and no clock of its own: callers pass ``now`` (monotonic seconds) and act on what the
methods return. A :class:`Session` holds the attachment state; the server subclasses it with
what a session owns (its processes, its file service), so one object, owned by the
:class:`SessionRegistry`, is the only place that says which connection a session belongs to.
Rules (docs/protocol.md §2):

* ``initialize`` without ``resumeSessionId`` creates a session, ATTACHED to the connection.
* A disconnect DETACHES the session (its processes keep running) and starts a TTL window;
  every detach starts a new window, and a resume cancels it.
* ``initialize {resumeSessionId}`` of a DETACHED session re-attaches it; of an ATTACHED one it
  *takes it over*: the previous connection is returned so the caller can close it. A
  connection whose session was taken over is no longer :meth:`Session.attached_to` it.
* A DETACHED session whose deadline passed is EXPIRED: its id becomes unknown (also to a resume
  that races the deadline — expiry wins at the boundary).
* A session belongs to the *owner* that created it (the caller's principal, compared with
  ``==``). A resume by another owner raises :class:`NotOwner`, a kind of
  :class:`UnknownSession`, in every state: the session is untouched (no takeover of an
  attached one), and a caller that answers both alike lets no one probe which ids exist.

States and transitions (anything else raises :class:`IllegalTransition`)::

    ATTACHED --detach--> DETACHED --resume--> ATTACHED
    ATTACHED --resume (takeover)--> ATTACHED
    DETACHED --expire--> EXPIRED
    ATTACHED|DETACHED --close--> EXPIRED      (server shutdown, stdio end)
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from exec_server_protocol import SessionId

from ._fsm import IllegalTransition, TransitionTable
from .exceptions import NotOwner, UnknownSession

__all__ = [
    "IllegalTransition",
    "NotOwner",
    "Session",
    "SessionRegistry",
    "SessionState",
    "UnknownSession",
]

C = TypeVar("C")
"""The caller's connection type (opaque here)."""


class SessionState(enum.Enum):
    ATTACHED = "attached"
    DETACHED = "detached"
    EXPIRED = "expired"


class Event(enum.Enum):
    DETACH = "detach"
    RESUME = "resume"
    EXPIRE = "expire"
    CLOSE = "close"


_ATTACHED, _DETACHED, _EXPIRED = SessionState.ATTACHED, SessionState.DETACHED, SessionState.EXPIRED
_TRANSITIONS: TransitionTable[SessionState, Event] = TransitionTable(
    {
        _ATTACHED: {Event.DETACH: _DETACHED, Event.RESUME: _ATTACHED, Event.CLOSE: _EXPIRED},
        _DETACHED: {Event.RESUME: _ATTACHED, Event.EXPIRE: _EXPIRED, Event.CLOSE: _EXPIRED},
    }
)


class Session(Generic[C]):
    """One session's attachment: its state, its connection, its owner and its deadline.

    Created ATTACHED to ``connection``; moved only by the registry's methods (which apply the
    transition table).
    """

    def __init__(self, session_id: SessionId, connection: C, *, owner: object = None) -> None:
        self.id = session_id
        self.state = SessionState.ATTACHED
        self.connection: C | None = connection
        self.owner = owner
        self.deadline: float | None = None

    def attached_to(self, connection: C) -> bool:
        """Whether ``connection`` is the one this session is attached to now (False once it
        was taken over by another connection, or detached)."""
        return self.connection is connection

    def _apply(self, event: Event) -> None:
        self.state = _TRANSITIONS.next(self.state, event, what=f"session {self.id}: ")


S = TypeVar("S", bound="Session[Any]")


class SessionRegistry(Generic[S]):
    """All live sessions of a server; the only owner of :class:`Session` objects.

    Args:
        ttl: how long a detached session lives, in seconds.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._sessions: dict[SessionId, S] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> S:
        try:
            return self._sessions[SessionId(session_id)]
        except KeyError:
            raise UnknownSession(session_id) from None

    def sessions(self) -> list[S]:
        return list(self._sessions.values())

    def create(self, make: Callable[[SessionId], S]) -> S:
        """Register the session ``make(id)`` builds (attached to its connection); its id is a
        random UUID v4."""
        session = make(SessionId(str(uuid.uuid4())))
        self._sessions[session.id] = session
        return session

    def resume(
        self, session_id: str, connection: object, now: float, *, owner: object = None
    ) -> tuple[S, object | None]:
        """Attach ``connection`` to a live session of ``owner``.

        Returns:
            The session and the connection it was taken from (None if it was detached).

        Raises:
            UnknownSession: unknown id, or a detached session whose deadline has passed.
            NotOwner: the session belongs to another owner (it is left as it was).
        """
        session = self._sessions.get(SessionId(session_id))
        if session is None:
            raise UnknownSession(session_id)
        if self._due(session, now):
            self.expire(session)
            raise UnknownSession(session_id)
        if session.owner != owner:
            raise NotOwner(session_id)
        previous = session.connection if session.state is SessionState.ATTACHED else None
        session._apply(Event.RESUME)
        session.connection = connection
        session.deadline = None
        return session, previous

    def detach(self, session_id: str, connection: object, now: float) -> S | None:
        """``connection`` went away. Returns the session if this detached it (None if the
        session had already been taken over by another connection or is gone)."""
        session = self._sessions.get(SessionId(session_id))
        if session is None or session.connection is not connection:
            return None
        session._apply(Event.DETACH)
        session.connection = None
        session.deadline = now + self.ttl
        return session

    @staticmethod
    def _due(session: Session[Any], now: float) -> bool:
        return (
            session.state is SessionState.DETACHED
            and session.deadline is not None
            and now >= session.deadline
        )

    def due(self, now: float) -> list[S]:
        """Detached sessions whose deadline has passed (the caller expires them)."""
        return [s for s in self._sessions.values() if self._due(s, now)]

    def next_deadline(self) -> float | None:
        deadlines = [s.deadline for s in self._sessions.values() if s.deadline is not None]
        return min(deadlines) if deadlines else None

    def expire(self, session: S) -> None:
        session._apply(Event.EXPIRE)
        self._sessions.pop(session.id, None)
        session.connection = None

    def close(self, session: S) -> None:
        session._apply(Event.CLOSE)
        self._sessions.pop(session.id, None)
        session.connection = None
