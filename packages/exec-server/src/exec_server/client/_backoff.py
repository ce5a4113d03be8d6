"""Reconnect delays without I/O: bounded exponential backoff with jitter.

The first attempt after a drop is immediate (a blip on a healthy network costs one round trip,
not a delay); then ``initial``, ``initial * factor``, ... capped at ``maximum``, each scaled by
a random factor in ``[1 - jitter, 1]`` so that many clients do not reconnect in lockstep. The
caller owns the overall deadline. Pass a seeded ``random.Random`` for deterministic delays.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays before successive reconnect attempts.

    Args:
        initial: the delay before the second attempt, in seconds.
        factor: growth per attempt.
        maximum: the cap, in seconds.
        jitter: fraction of each delay that is randomised (0 = none, 1 = full jitter).
        rng: the source of randomness.
    """

    def __init__(
        self,
        *,
        initial: float = 0.01,
        factor: float = 2.0,
        maximum: float = 1.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        if initial < 0 or factor < 1 or maximum < initial or not 0 <= jitter <= 1:
            raise ValueError("need 0 <= initial <= maximum, factor >= 1, 0 <= jitter <= 1")
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def reset(self) -> None:
        """A connection succeeded: the next drop starts over with an immediate attempt."""
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay to wait before the next attempt (0.0 for the first one)."""
        n = self.attempts
        self.attempts += 1
        if n == 0:
            return 0.0
        base = min(self.maximum, self.initial * self.factor ** (n - 1))
        return base * (1.0 - self.jitter * self._rng.random())
