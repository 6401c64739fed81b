"""A circuit breaker per dependency: after a failure, calls fail fast instead of each waiting out a timeout.

closed    → calls go through; a failure opens the circuit.
open      → calls are refused at once; after `reset_after` seconds one trial call is let through (half-open).
half-open → the trial's success closes the circuit, its failure opens it again for another `reset_after`.

The background health probe reports too: a dependency that answers its probe moves an open circuit to half-open
at once (the next call is the trial), so recovery does not wait for `reset_after`, yet only a real call closes it
(a server can answer a probe and still time out searches).

Each admitted call gets a ticket: the circuit's generation when it was admitted. An outcome that arrives after the
state has changed (a slow call admitted while closed, finishing after another call opened the circuit) is stale
and ignored, so it can neither close an open circuit nor let a second trial in.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

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
        self._generation = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_after:
            return HALF_OPEN
        return self._state

    def allow(self) -> Optional[int]:
        """A ticket when a call may go to the dependency now, else None. In half-open state only one caller gets one."""
        state = self.state
        if state == CLOSED:
            return self._generation
        if state == HALF_OPEN and not self._trial_in_flight:
            self._set(HALF_OPEN)
            self._trial_in_flight = True
            return self._generation
        return None

    def success(self, ticket: int) -> None:
        if ticket == self._generation:
            self._trial_in_flight = False
            self._set(CLOSED)

    def failure(self, ticket: int) -> None:
        if ticket == self._generation:
            self._trial_in_flight = False
            self._opened_at = self._clock()
            self._set(OPEN)

    def release(self, ticket: int) -> None:
        """The call ended without telling anything (cancelled): let another caller try."""
        if ticket == self._generation:
            self._trial_in_flight = False

    def probe_ok(self) -> None:
        """The dependency answered its health probe: an open circuit may try a real call now."""
        if self._state == OPEN:
            self._opened_at = self._clock() - self.reset_after

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._generation += 1
            self._on_change(self.name, state)
