"""The background health monitor: probes every dependency on its own schedule and resources, so `/ready` answers
from the last result at once and never queues behind searches or waits for a pool connection.

What `/ready` fails on, and why:
- **before PostgreSQL has answered once** since start: a pod with a wrong URL, password or network policy must not
  take traffic (a rollout of a broken configuration stops at the first pod);
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
from real_estate_api.stores import DependencyUnavailable, Stores

log = logging.getLogger("real_estate_api.health")


class HealthMonitor:
    def __init__(self, stores: Stores, metrics: Metrics, interval: float, timeout: float,
                 on_cache_empty: Callable[[], Awaitable[None]]):
        self._stores = stores
        self._metrics = metrics
        self._interval = interval
        self._timeout = timeout
        self._on_cache_empty = on_cache_empty
        self._task: Optional[asyncio.Task] = None
        self.status: dict[str, str] = {store.name: "unknown" for store in stores.all()}
        self.reasons: dict[str, str] = {}
        self.checked_at = 0.0
        self.postgres_reached = False

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # the monitor must outlive any surprise; the next round tries again
                log.exception("health check round failed")

    async def check(self) -> None:
        stores = self._stores
        probes = [(stores.postgres, stores.postgres.probe()), (stores.cache, self._probe_cache()), (stores.vectors, stores.vectors.probe())]
        results = await asyncio.gather(*(asyncio.wait_for(probe, self._timeout * 3) for _, probe in probes), return_exceptions=True)
        for (store, _), result in zip(probes, results):
            name, was = store.name, self.status[store.name]
            up = not isinstance(result, BaseException)
            self.status[name] = "ok" if up else "unavailable"
            self._metrics.dependency_up.labels(name).set(1 if up else 0)
            if up:
                self.reasons.pop(name, None)
                # A dependency that answers closes its circuit now, not at the next trial request.
                store.breaker.success()
            elif isinstance(result, DependencyUnavailable):
                self.reasons[name] = result.reason
            else:
                self.reasons[name] = "timeout" if isinstance(result, asyncio.TimeoutError) else type(result).__name__
            if was not in ("unknown", self.status[name]):
                log.warning("dependency state changed", extra={"dependency": name, "state": self.status[name], "reason": self.reasons.get(name)})
        self.postgres_reached = self.postgres_reached or self.status[stores.postgres.name] == "ok"
        self.checked_at = time.time()

    async def _probe_cache(self) -> None:
        if not await self._stores.cache.probe():
            # Redis answers but lost its data (a restart without persistence, a flush): rebuild in the background.
            await self._stores.cache.mark_built()
            asyncio.create_task(self._on_cache_empty(), name="cache-rebuild")

    def readiness(self) -> tuple[int, dict]:
        body = {"dependencies": dict(self.status), "checked_at": round(self.checked_at, 3)}
        if self.reasons:
            body["failed"] = dict(self.reasons)
        if not self.postgres_reached:
            return 503, {"status": "not ready", **body}
        if self.reasons:
            return 200, {"status": "degraded", **body}
        return 200, {"status": "ready", **body}
