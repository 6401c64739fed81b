"""A circuit breaker per dependency: during an outage, calls fail fast instead of each waiting out a timeout.

closed    → calls go through; the circuit opens on TRIP_AFTER failures in a row, or when at least half of the calls
            of the last WINDOW_SECONDS failed (with MIN_CALLS or more to judge by). One failure among many successes
            (a search slow under load, a stale pooled connection after a restart) is no outage and opens nothing:
            the answers stay the dependency's, not the fallback's.
open      → calls are refused at once; after `reset_after` seconds one trial call is let through (half-open).
half-open → the trial's success closes the circuit (with a clean record), its failure opens it again.

A hung dependency therefore costs at most TRIP_AFTER timeouts to requests arriving one by one, and about one
timeout's worth under load (the concurrent calls fail together).

The background health probe reports too: a dependency that answers its probe moves an open circuit to half-open
at once (the next call is the trial), so recovery does not wait for `reset_after`, yet only a real call closes it
(a server can answer a probe and still time out searches).

Each admitted call gets a ticket: the circuit's generation when it was admitted. An outcome that arrives after the
state has changed (a slow call admitted while closed, finishing after another call opened the circuit) is stale
and ignored, so it can neither close an open circuit nor let a second trial in.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Exported as a gauge: 0 closed, 1 half-open, 2 open.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
TRIP_AFTER = 3
WINDOW_SECONDS = 10.0
MIN_CALLS = 10
FAILURE_SHARE = 0.5


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
        # While closed: failures in a row, and (when, failed) of the calls of the last WINDOW_SECONDS.
        self._in_a_row = 0
        self._recent: deque[tuple[float, bool]] = deque()
        self._recent_failures = 0

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
            self._record(False)
            self._set(CLOSED)

    def failure(self, ticket: int) -> None:
        if ticket != self._generation:
            return
        self._trial_in_flight = False
        if self._state == CLOSED:
            self._record(True)
            if not self._outage():
                return
        self._opened_at = self._clock()
        self._set(OPEN)

    def _record(self, failed: bool) -> None:
        now = self._clock()
        self._in_a_row = self._in_a_row + 1 if failed else 0
        self._recent.append((now, failed))
        self._recent_failures += failed
        while self._recent and self._recent[0][0] <= now - WINDOW_SECONDS:
            self._recent_failures -= self._recent.popleft()[1]

    def _outage(self) -> bool:
        calls = len(self._recent)
        return self._in_a_row >= TRIP_AFTER or (calls >= MIN_CALLS and self._recent_failures >= FAILURE_SHARE * calls)

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
            # Each state starts with a clean record: a closed circuit judges only what came after the trial.
            self._in_a_row = 0
            self._recent.clear()
            self._recent_failures = 0
            self._on_change(self.name, state)
