"""Valuation by comparables: the median price per m² of the district (or city), with a robust confidence.

Confidence = min(1, n / 10) × (1 − QCD), where QCD = (Q3 − Q1) / (Q3 + Q1) is the quartile coefficient of
dispersion of price per m². Quartiles ignore a few outliers, unlike the standard deviation, so one absurd
listing no longer collapses the confidence of a whole city.

The aggregates of a city change slowly, so each pod keeps them for STATS_TTL_SECONDS and computes each
at most once at a time (concurrent requests for the same city wait for the one query).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional

STATS_TTL_SECONDS = 30.0
STATS_CACHE_ENTRIES = 10_000


def confidence(count: int, q1: float, q3: float) -> float:
    dispersion = (q3 - q1) / (q3 + q1) if q3 + q1 > 0 else 1.0
    return round(min(1.0, count / 10) * max(0.0, 1.0 - dispersion), 3)


class StatsCache:
    """A per-process TTL cache with single flight, for the comparables aggregates."""

    def __init__(self, ttl: float = STATS_TTL_SECONDS, entries: int = STATS_CACHE_ENTRIES, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._entries = entries
        self._clock = clock
        self._values: dict[tuple, tuple[float, Optional[dict]]] = {}
        self._pending: dict[tuple, asyncio.Task] = {}

    async def get(self, key: tuple, compute: Callable[[], Awaitable[Optional[dict]]]) -> Optional[dict]:
        hit = self._values.get(key)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        task = self._pending.get(key)
        if task is None:
            # Its own task: a caller that goes away (a client disconnect cancels its request) cancels only itself.
            task = asyncio.ensure_future(self._compute(key, compute))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if every caller left
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _compute(self, key: tuple, compute: Callable[[], Awaitable[Optional[dict]]]) -> Optional[dict]:
        try:
            value = await compute()
        finally:
            self._pending.pop(key, None)
        if len(self._values) >= self._entries:
            self._values.clear()
        # Empty results are not kept: the first listing of a new city must be usable at once.
        if value is not None:
            self._values[key] = (self._clock(), value)
        return value
