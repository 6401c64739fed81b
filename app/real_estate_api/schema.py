"""The service's tables, migrated once per start, off the request path.

Each pod runs `migrate` at start-up (and retries in the background while PostgreSQL is unreachable); requests
answer 503 until it has succeeded. Everything happens in one transaction, so it works through PgBouncer's
transaction pooling as well as straight to PostgreSQL: a transaction-scoped advisory lock lets one pod migrate at a
time, a version row makes a migrated database a single SELECT, and a short lock_timeout (set for this transaction
only) makes the DDL give up rather than queue every query behind it; the next probe round retries. Indexes are built
in the transaction (writes wait for the build: well under a second at 200 000 listings).
"""

from __future__ import annotations

import logging

import psycopg

from real_estate_api.bounds import sql_violation

log = logging.getLogger("real_estate_api.schema")

VERSION = 4
MIGRATION_LOCK = 7_242_001

SCHEMA = """
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
CREATE UNIQUE INDEX IF NOT EXISTS listings_idempotency_key ON listings (idempotency_key);
-- NULL until the listing's vector is in Milvus: the outbox the reconciler drains.
ALTER TABLE listings ADD COLUMN IF NOT EXISTS indexed_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS listings_unindexed ON listings (id) WHERE indexed_at IS NULL;
-- Valuations aggregate price per m² of a city or district with an index-only scan (replacing the plain index).
DROP INDEX IF EXISTS listings_city_district;
CREATE INDEX IF NOT EXISTS listings_city_district_prices ON listings (city, district) INCLUDE (price, area_sqm);
-- The rule engine: listings of a city under a budget.
CREATE INDEX IF NOT EXISTS listings_city_price ON listings (city, price);
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
-- Periodic work one pod at a time: the pod whose update moves started_at runs it. Seeded here so that a claim that
-- is not due is an UPDATE matching nothing, which writes no WAL (an idle database stays idle).
CREATE TABLE IF NOT EXISTS maintenance_runs (name TEXT PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL);
INSERT INTO maintenance_runs (name, started_at) VALUES ('listing-index-audit', '-infinity') ON CONFLICT (name) DO NOTHING;
-- Rows earlier releases accepted outside a listing's bounds (bounds.py) are moved aside, kept for whoever wants to
-- fix them, and the bounds become a constraint: no stored row can turn a valuation into infinities again.
CREATE TABLE IF NOT EXISTS listings_quarantine (
    id BIGINT PRIMARY KEY, city TEXT, district TEXT, area_sqm DOUBLE PRECISION, bedrooms INTEGER, price DOUBLE PRECISION,
    latitude DOUBLE PRECISION, longitude DOUBLE PRECISION, created_at TIMESTAMPTZ, idempotency_key TEXT,
    indexed_at TIMESTAMPTZ, quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
WITH moved AS (DELETE FROM listings WHERE {violation} RETURNING *)
INSERT INTO listings_quarantine (id, city, district, area_sqm, bedrooms, price, latitude, longitude, created_at,
                                 idempotency_key, indexed_at)
SELECT id, city, district, area_sqm, bedrooms, price, latitude, longitude, created_at, idempotency_key, indexed_at
FROM moved;
-- NOT VALID: checked for every new row at once, without scanning the table under the exclusive lock this takes;
-- the existing rows are validated in a transaction of their own (VALIDATE), which reads and writes go on beside.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'listings_within_bounds') THEN
        ALTER TABLE listings ADD CONSTRAINT listings_within_bounds CHECK (NOT ({violation})) NOT VALID;
    END IF;
END $$;
""".format(violation=sql_violation())
# After the migration's commit: SHARE UPDATE EXCLUSIVE, so no query waits on the scan.
VALIDATE = "ALTER TABLE listings VALIDATE CONSTRAINT listings_within_bounds"


async def migrate(url: str, connect_kwargs: dict) -> bool:
    """Bring the schema to VERSION; False when it already was."""
    async with await psycopg.AsyncConnection.connect(url, **connect_kwargs) as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await conn.execute("SET LOCAL statement_timeout = 0")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            migrated = await _current(conn) < VERSION
            if migrated:
                await conn.execute(SCHEMA)
                moved = await (await conn.execute("SELECT count(*) FROM listings_quarantine WHERE quarantined_at = now()")).fetchone()
                if moved[0]:
                    log.warning("listings outside their bounds moved to listings_quarantine", extra={"listings": moved[0]})
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (VERSION,))
        # Until it succeeds (a pod that stopped before it), every start validates; then it is one SELECT.
        async with conn.transaction():
            pending = await (await conn.execute(
                "SELECT NOT convalidated FROM pg_constraint WHERE conname = 'listings_within_bounds'")).fetchone()
            if pending and pending[0]:
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute(VALIDATE)
        return migrated


async def _current(conn: psycopg.AsyncConnection) -> int:
    if (await (await conn.execute("SELECT to_regclass('schema_version')")).fetchone())[0] is None:
        return 0
    row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
    return row[0] or 0
