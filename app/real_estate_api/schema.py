"""The service's tables, migrated once per start, off the request path.

Each pod runs `migrate` at start-up (and retries in the background while PostgreSQL is unreachable); requests
answer 503 until it has succeeded. Pods take a session advisory lock, so one migrates at a time. A version row
makes a migrated database a single SELECT. Table changes take a short lock_timeout (they queue behind running
queries and everything queues behind them, so they give up quickly and retry); indexes are built CONCURRENTLY,
without blocking writes, after a failed concurrent build's invalid leftover is dropped.
"""

from __future__ import annotations

import psycopg

VERSION = 2
MIGRATION_LOCK = 7_242_001

TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS listings (
    id          BIGSERIAL PRIMARY KEY,
    city        TEXT NOT NULL,
    district    TEXT,
    area_sqm    DOUBLE PRECISION NOT NULL CHECK (area_sqm > 0),
    bedrooms    INTEGER NOT NULL CHECK (bedrooms >= 0),
    price       DOUBLE PRECISION NOT NULL CHECK (price > 0),
    latitude    DOUBLE PRECISION NOT NULL,
    longitude   DOUBLE PRECISION NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A retried POST with the same Idempotency-Key returns the first row instead of adding a second.
ALTER TABLE listings ADD COLUMN IF NOT EXISTS idempotency_key TEXT;
-- NULL until the listing's vector is in Milvus: the outbox the reconciler drains.
ALTER TABLE listings ADD COLUMN IF NOT EXISTS indexed_at TIMESTAMPTZ;
CREATE TABLE IF NOT EXISTS valuations (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    city          TEXT NOT NULL,
    district      TEXT,
    area_sqm      DOUBLE PRECISION NOT NULL,
    bedrooms      INTEGER NOT NULL,
    estimate      DOUBLE PRECISION NOT NULL,
    confidence    DOUBLE PRECISION NOT NULL,
    model         TEXT NOT NULL,
    actual_price  DOUBLE PRECISION,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE valuations ADD COLUMN IF NOT EXISTS feedback_at TIMESTAMPTZ;
"""

INDEXES = {
    "listings_idempotency_key": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS listings_idempotency_key ON listings (idempotency_key)",
    "listings_unindexed": "CREATE INDEX CONCURRENTLY IF NOT EXISTS listings_unindexed ON listings (id) WHERE indexed_at IS NULL",
    # Valuations aggregate price per m² of a city or district with an index-only scan.
    "listings_city_district_prices": (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS listings_city_district_prices ON listings (city, district) INCLUDE (price, area_sqm)"
    ),
    # The rule engine: listings of a city under a budget.
    "listings_city_price": "CREATE INDEX CONCURRENTLY IF NOT EXISTS listings_city_price ON listings (city, price)",
}
# Replaced by listings_city_district_prices.
OBSOLETE_INDEXES = ("listings_city_district",)


async def migrate(url: str, connect_kwargs: dict) -> bool:
    """Bring the schema to VERSION; False when it already was."""
    options = {**connect_kwargs, "options": "-c statement_timeout=0 -c lock_timeout=2000"}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, **options) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            if await _current(conn) >= VERSION:
                return False
            async with conn.transaction():
                await conn.execute(TABLES)
            for name, statement in INDEXES.items():
                invalid = await (await conn.execute(
                    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s AND NOT i.indisvalid",
                    (name,),
                )).fetchone()
                if invalid:
                    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                await conn.execute(statement)
            for name in OBSOLETE_INDEXES:
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            async with conn.transaction():
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (VERSION,))
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def _current(conn: psycopg.AsyncConnection) -> int:
    if (await (await conn.execute("SELECT to_regclass('schema_version')")).fetchone())[0] is None:
        return 0
    row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
    return row[0] or 0
