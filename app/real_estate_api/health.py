"""The background health monitor: probes every dependency on its own schedule and resources, so `/ready` answers
from the last result at once and never queues behind searches or waits for a pool connection.

What `/ready` fails on, and why:
- **until this pod has reached PostgreSQL and found its schema in place** (schema.py, migrated here at start): a pod
  with a wrong URL, password or network policy must not take traffic (a rollout of a broken configuration stops at
  the first pod);
- **while shutting down** (uvicorn stops answering anyway; the preStop sleep has removed the endpoint first).
After that, an outage of any dependency is reported as `degraded` with status 200: PostgreSQL, Redis and Milvus are
shared by every pod, so failing readiness would take every pod out at once and turn a partial outage (cached and
vector recommendations still answer without PostgreSQL; the rule engine answers without Milvus; everything answers
without Redis) into a total one. Each dependency's state is in the body and in `dependency_up`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

from real_estate_api.metrics import Metrics
from real_estate_api.stores import DependencyUnavailable, Stores, within

log = logging.getLogger("real_estate_api.health")


class HealthMonitor:
    def __init__(self, stores: Stores, metrics: Metrics, interval: float, timeout: float,
                 on_cache_empty: Callable[[], Awaitable[None]]):
        self._stores = stores
        self._metrics = metrics
        self._interval = interval
        self._timeout = timeout
        self._on_cache_empty = on_cache_empty
        self._tasks: list[asyncio.Task] = []
        self._rebuild: Optional[asyncio.Task] = None
        self.status: dict[str, str] = {store.name: "unknown" for store in stores.all()}
        self.reasons: dict[str, str] = {}
        self.checked_at = 0.0
        self._migration: Optional[asyncio.Task] = None

    async def start(self) -> None:
        """One round first (so /ready means something at once), then a loop per dependency: a hung one delays
        only its own verdict."""
        await asyncio.gather(*(self._check(store) for store in self._stores.all()))
        self._tasks = [asyncio.create_task(self._loop(store), name=f"probe-{store.name}") for store in self._stores.all()]

    async def stop(self) -> None:
        tasks = [*self._tasks, *(t for t in (self._rebuild, self._migration) if t is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, store) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._check(store)
            except Exception:  # the monitor must outlive any surprise; the next round tries again
                log.exception("health check failed", extra={"dependency": store.name})

    async def _check(self, store) -> None:
        name, was = store.name, self.status[store.name]
        probe = self._probe_cache() if store is self._stores.cache else store.probe()
        try:
            await within(probe, self._timeout * 3)
            up, reason = True, None
        except DependencyUnavailable as error:
            up, reason = False, error.reason
        except asyncio.TimeoutError:
            up, reason = False, "timeout"
        self.status[name] = "ok" if up else "unavailable"
        self._metrics.dependency_up.labels(name).set(1 if up else 0)
        if up:
            self.reasons.pop(name, None)
            # The next real call may try: an open circuit goes half-open now, not at the end of its reset time.
            store.breaker.probe_ok()
        else:
            self.reasons[name] = reason
        if was not in ("unknown", self.status[name]):
            log.warning("dependency state changed", extra={"dependency": name, "state": self.status[name], "reason": reason})
        if name == self._stores.postgres.name and up and was == "unavailable":
            await self._stores.postgres.renew_pool()
        if name == self._stores.postgres.name and up and not self._stores.postgres.schema_ready:
            if self._migration is None or self._migration.done():
                self._migration = asyncio.create_task(self._migrate(), name="schema-migration")
            if was == "unknown":  # the first round: a new database takes a moment, let /ready wait for it
                await asyncio.wait({self._migration}, timeout=self._timeout * 3)
        self.checked_at = time.time()

    async def _migrate(self) -> None:
        try:
            await self._stores.postgres.migrate()
            log.info("schema ready")
        except Exception as error:  # retried by the next probe round
            log.warning("schema migration postponed", extra={"reason": getattr(error, "reason", type(error).__name__)})

    async def _probe_cache(self) -> None:
        if not await self._stores.cache.probe() and (self._rebuild is None or self._rebuild.done()):
            # Redis answers without what this pod cached (restarted empty, flushed): refill it in the background.
            self._rebuild = asyncio.create_task(self._on_cache_empty(), name="cache-rebuild")

    def readiness(self) -> tuple[int, dict]:
        body = {"dependencies": dict(self.status), "checked_at": round(self.checked_at, 3)}
        if self.reasons:
            body["failed"] = dict(self.reasons)
        if not self._stores.postgres.schema_ready:
            return 503, {"status": "not ready", **body}
        if self.reasons:
            return 200, {"status": "degraded", **body}
        return 200, {"status": "ready", **body}
