"""Session registry: which connection a session is attached to, and when it expires.

No I/O and no clock of its own: callers pass ``now`` (monotonic seconds) and act on what the
methods return. Rules (docs/protocol.md §2):

* ``initialize`` without ``resumeSessionId`` creates a session, ATTACHED to the connection.
* A disconnect DETACHES the session (its processes keep running) and starts a TTL window;
  every detach starts a new window, and a resume cancels it.
* ``initialize {resumeSessionId}`` of a DETACHED session re-attaches it; of an ATTACHED one it
  *takes it over*: the previous connection is returned so the caller can close it.
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
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "IllegalTransition",
    "NotOwner",
    "SessionRecord",
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


_TRANSITIONS: dict[tuple[SessionState, Event], SessionState] = {
    (SessionState.ATTACHED, Event.DETACH): SessionState.DETACHED,
    (SessionState.DETACHED, Event.RESUME): SessionState.ATTACHED,
    (SessionState.ATTACHED, Event.RESUME): SessionState.ATTACHED,
    (SessionState.DETACHED, Event.EXPIRE): SessionState.EXPIRED,
    (SessionState.ATTACHED, Event.CLOSE): SessionState.EXPIRED,
    (SessionState.DETACHED, Event.CLOSE): SessionState.EXPIRED,
}


class IllegalTransition(RuntimeError):
    """A transition the table does not allow (a bug in the caller)."""


class UnknownSession(LookupError):
    """No live session has this id (never existed, or expired)."""


class NotOwner(UnknownSession):
    """The session exists but belongs to another owner: to that caller it is unknown."""


@dataclass(eq=False)
class SessionRecord(Generic[C]):
    id: str
    state: SessionState
    connection: C | None
    owner: object = None
    deadline: float | None = None
    data: dict[str, object] = field(default_factory=dict)

    def _apply(self, event: Event) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalTransition(
                f"session {self.id}: {event.value} in {self.state.value}"
            ) from None


class SessionRegistry(Generic[C]):
    """All live sessions of a server.

    Args:
        ttl: how long a detached session lives, in seconds.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._sessions: dict[str, SessionRecord[C]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> SessionRecord[C]:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownSession(session_id) from None

    def sessions(self) -> list[SessionRecord[C]]:
        return list(self._sessions.values())

    def create(self, connection: C, *, owner: object = None) -> SessionRecord[C]:
        """A new session of ``owner``, attached to ``connection``; its id is a random UUID v4."""
        record = SessionRecord(str(uuid.uuid4()), SessionState.ATTACHED, connection, owner)
        self._sessions[record.id] = record
        return record

    def resume(
        self, session_id: str, connection: C, now: float, *, owner: object = None
    ) -> tuple[SessionRecord[C], C | None]:
        """Attach ``connection`` to a live session of ``owner``.

        Returns:
            The session and the connection it was taken from (None if it was detached).

        Raises:
            UnknownSession: unknown id, or a detached session whose deadline has passed.
            NotOwner: the session belongs to another owner (it is left as it was).
        """
        record = self._sessions.get(session_id)
        if record is None:
            raise UnknownSession(session_id)
        if (
            record.state is SessionState.DETACHED
            and record.deadline is not None
            and now >= record.deadline
        ):
            self.expire(record)
            raise UnknownSession(session_id)
        if record.owner != owner:
            raise NotOwner(session_id)
        previous = record.connection if record.state is SessionState.ATTACHED else None
        record._apply(Event.RESUME)
        record.connection = connection
        record.deadline = None
        return record, previous

    def detach(self, session_id: str, connection: C, now: float) -> SessionRecord[C] | None:
        """``connection`` went away. Returns the session if this detached it (None if the
        session had already been taken over by another connection or is gone)."""
        record = self._sessions.get(session_id)
        if record is None or record.connection is not connection:
            return None
        record._apply(Event.DETACH)
        record.connection = None
        record.deadline = now + self.ttl
        return record

    def due(self, now: float) -> list[SessionRecord[C]]:
        """Detached sessions whose deadline has passed (the caller expires them)."""
        return [
            r
            for r in self._sessions.values()
            if r.state is SessionState.DETACHED and r.deadline is not None and now >= r.deadline
        ]

    def next_deadline(self) -> float | None:
        deadlines = [r.deadline for r in self._sessions.values() if r.deadline is not None]
        return min(deadlines) if deadlines else None

    def expire(self, record: SessionRecord[C]) -> None:
        record._apply(Event.EXPIRE)
        self._sessions.pop(record.id, None)
        record.connection = None

    def close(self, record: SessionRecord[C]) -> None:
        record._apply(Event.CLOSE)
        self._sessions.pop(record.id, None)
        record.connection = None
