"""The transition tables of the sans-I/O state machines (the RPC handshake, sessions): one
table each, state -> event -> next state; an event the table does not list for a state raises
:class:`IllegalTransition` (a bug in the caller). No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

__all__ = ["IllegalTransition", "TransitionTable"]

S = TypeVar("S", bound=enum.Enum)
E = TypeVar("E", bound=enum.Enum)


class IllegalTransition(RuntimeError):
    """A transition the table does not allow (a bug in the caller)."""


class TransitionTable(Generic[S, E]):
    """``{state: {event: next state}}``."""

    def __init__(self, rows: Mapping[S, Mapping[E, S]]) -> None:
        self._rows = rows

    def next(self, state: S, event: E, *, what: str = "") -> S:
        """The state ``event`` leads to from ``state``.

        Raises:
            IllegalTransition: the table has no such transition (``what`` names the machine
                in the message).
        """
        try:
            return self._rows[state][event]
        except KeyError:
            raise IllegalTransition(f"{what}{event.value} in {state.value}") from None
