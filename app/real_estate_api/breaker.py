"""A circuit breaker per dependency: after a failure, calls fail fast instead of each waiting out a timeout.

closed   → calls go through; a failure opens the circuit.
open     → calls are refused at once; after `reset_after` seconds one trial call is let through (half-open).
half-open→ the trial's success closes the circuit, its failure opens it again for another `reset_after`.
The background health probe reports to the breaker too, so a recovered dependency closes the circuit
within one probe interval even when no request is trying it.
"""

from __future__ import annotations

import time
from typing import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Exported as a gauge: 0 closed, 1 half-open, 2 open.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    def __init__(self, name: str, reset_after: float, on_change: Callable[[str, str], None] = lambda name, state: None,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.reset_after = reset_after
        self._on_change = on_change
        self._clock = clock
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_after:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """True when a call may go to the dependency now. In half-open state only one caller gets True."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            self._set(HALF_OPEN)
            return True
        return False

    def success(self) -> None:
        self._trial_in_flight = False
        self._set(CLOSED)

    def release(self) -> None:
        """The trial call ended without telling anything (cancelled): let another caller try."""
        self._trial_in_flight = False

    def failure(self) -> None:
        self._trial_in_flight = False
        self._opened_at = self._clock()
        self._set(OPEN)

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_change(self.name, state)
