"""Active users, counted without keeping who they are: each pod gathers the user ids its business requests name, and
every flush adds them to one HyperLogLog per UTC hour in Redis (PFADD, kept 8 days), then asks Redis for the union of
the last 24 and 168 hours (PFCOUNT over several keys counts their union, within about 1 %; 12 KB a key at most). Every
pod reports the same two numbers (`active_users`); no user id reaches a label, a log line or PostgreSQL, and no
request waits on Redis for it. Rolling windows, not calendar days: no drop at midnight, no time zone to choose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Optional

log = logging.getLogger("real_estate_api.activity")

WINDOWS_HOURS = {"1d": 24, "7d": 168}
KEEP_SECONDS = 8 * 86400
# Users gathered between two flushes, at most (a few MB): beyond it a burst is counted from the next flush on.
PENDING_MAX = 50_000


def hour_key(epoch_seconds: float) -> str:
    return time.strftime("activity:users:%Y%m%d%H", time.gmtime(epoch_seconds))


class ActiveUsers:
    def __init__(self, cache, gauge, interval: float, clock: Callable[[], float] = time.time):
        self._cache = cache
        self._gauge = gauge
        self._interval = interval
        self._clock = clock
        self._pending: set[str] = set()
        self._task: Optional[asyncio.Task] = None

    def seen(self, user: Optional[str]) -> None:
        if user is not None and len(self._pending) < PENDING_MAX:
            self._pending.add(user)

    async def flush(self) -> Optional[dict[str, int]]:
        """Adds the gathered users to this hour's key and sets the gauges; None (keeping the users for the next
        flush) when Redis does not answer."""
        now = self._clock()
        windows = {name: [hour_key(now - h * 3600) for h in range(hours)] for name, hours in WINDOWS_HOURS.items()}
        users = sorted(self._pending)
        counts = await self._cache.record_activity(hour_key(now), users, KEEP_SECONDS, windows)
        if counts is None:
            return None
        self._pending.difference_update(users)
        for name, count in counts.items():
            self._gauge.labels(name).set(count)
        return counts

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="active-users")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:  # the loop must outlive any surprise; the next flush tries again
                log.exception("counting active users failed")
