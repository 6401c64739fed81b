"""Listing writes that converge: PostgreSQL is the system of record, Milvus an index of it.

A write saves the row (idempotent under an `Idempotency-Key`: a retry gets the first row back, the same key with a
different listing is refused), then upserts its vector and marks the row indexed. When Milvus fails in between, the row stays marked unindexed (an outbox) and the answer is 202:
saved, not yet searchable. A background reconciler in every pod upserts
the unindexed rows; upserts by primary key make every repeat harmless, so the two stores converge whatever
fails where. `listing_index_backlog` counts what is waiting.

The outbox trusts Milvus to keep what it acknowledged; it may not (a restore older than the newest listings, a
store that lost its log). So every `audit_interval` one pod compares every listing PostgreSQL marks indexed with
what Milvus holds, by id in batches, and puts what Milvus lacks back into the outbox;
`listing_index_repairs_total` counts them (an alert: the vector store lost data).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

from real_estate_api.metrics import Metrics
from real_estate_api.stores import DependencyUnavailable, Stores

log = logging.getLogger("real_estate_api.listings")

RECONCILE_BATCH = 500
# Rows younger than this are left to the request that is writing them.
RECONCILE_SETTLE_SECONDS = 5.0
# Ids per Milvus query of the audit: 200 000 listings are 200 queries.
AUDIT_BATCH = 1000
# Rows marked indexed more recently than this are left out of the audit (a write still settling in Milvus).
AUDIT_SETTLE_SECONDS = 60.0
AUDIT = "listing-index-audit"


class ListingIndex:
    def __init__(self, stores: Stores, metrics: Metrics, interval: float, audit_interval: float):
        self._stores = stores
        self._metrics = metrics
        self._interval = interval
        self._audit_interval = audit_interval
        self._task: Optional[asyncio.Task] = None

    async def add(self, listing: dict, idempotency_key: Optional[str]) -> tuple[int, dict]:
        row = await self._stores.postgres.add_listing(listing, idempotency_key)
        if not row["created"] and any(row[field] != value for field, value in listing.items()):
            return 409, {"error": "this Idempotency-Key was used for a different listing", "id": row["id"]}
        indexed = row["indexed"]
        if not indexed:
            try:
                await self._stores.vectors.upsert([row])
                await self._stores.postgres.mark_indexed([row["id"]])
                indexed = True
            except DependencyUnavailable as error:
                log.warning("listing saved, indexing deferred", extra={"listing_id": row["id"], "dependency": error.dependency, "reason": error.reason})
        self._metrics.listing_writes.labels("indexed" if indexed else "deferred").inc()
        status = 202 if not indexed else (201 if row["created"] else 200)
        return status, {"id": row["id"], "indexed": indexed, "replayed": not row["created"]}

    async def reconcile(self, settle_seconds: float = RECONCILE_SETTLE_SECONDS) -> int:
        """Index what is waiting; returns how many rows were indexed. Each store's call is guarded on its own, so a
        Milvus outage stops the round without counting against PostgreSQL. Several pods may index the same rows at
        once: the upsert makes that harmless."""
        postgres = self._stores.postgres
        try:
            done = 0
            while True:
                rows = await postgres.unindexed(RECONCILE_BATCH, settle_seconds)
                if rows:
                    await self._stores.vectors.upsert(rows)
                    await postgres.mark_indexed([row["id"] for row in rows])
                    done += len(rows)
                if len(rows) < RECONCILE_BATCH:
                    break
        finally:
            # Counted whatever happened: during the outage it is meant to report, the backlog must still show.
            try:
                self._metrics.listing_index_backlog.set(await postgres.index_backlog())
            except DependencyUnavailable:
                pass
        if done:
            log.info("listings reconciled", extra={"indexed": done})
        return done

    async def audit(self, settle_seconds: float = AUDIT_SETTLE_SECONDS) -> int:
        """Every listing marked indexed (longer than `settle_seconds` ago) that Milvus does not hold goes back into the
        outbox; returns how many. Reads Milvus with strong consistency, so a write it acknowledged is never
        mistaken for a lost one."""
        postgres, repaired, after = self._stores.postgres, 0, 0
        while True:
            ids = await postgres.indexed_ids(after, AUDIT_BATCH, settle_seconds)
            if not ids:
                break
            held = await self._stores.vectors.present(ids)
            lost = [i for i in ids if i not in held]
            if lost:
                await postgres.mark_unindexed(lost)
                self._metrics.listing_index_repairs.inc(len(lost))
                repaired += len(lost)
            after = ids[-1]
        self._metrics.listing_index_audit.set(time.time())
        if repaired:
            log.warning("listings missing from milvus queued to be indexed again", extra={"repaired": repaired})
        return repaired

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="listing-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._stores.postgres.schema_ready:
                continue
            try:
                await self.reconcile()
                if await self._stores.postgres.claim(AUDIT, self._audit_interval):
                    await self.audit()
            except DependencyUnavailable as error:
                log.info("reconcile postponed", extra={"dependency": error.dependency, "reason": error.reason})
            except Exception:
                log.exception("reconcile failed")
