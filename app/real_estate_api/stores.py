"""The three data stores: PostgreSQL (listings, valuations), Redis (cache), Milvus (listing vectors).

Each store answers a readiness check within a timeout and raises DependencyUnavailable when it
cannot serve, which the API turns into a 503 naming the dependency.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pymilvus import MilvusClient

log = logging.getLogger("real_estate_api.stores")

VECTOR_DIMENSION = 6
COLLECTION = "listings"

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS listings_city_district ON listings (city, district);
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
"""


class DependencyUnavailable(Exception):
    def __init__(self, dependency: str, reason: str):
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


def _reason(error: BaseException) -> str:
    """A short reason that cannot carry a credential: the error's class, or 'timeout'."""
    if isinstance(error, (asyncio.TimeoutError, PoolTimeout, TimeoutError)):
        return "timeout"
    return type(error).__name__


def listing_vector(price: float, area_sqm: float, bedrooms: int, latitude: float, longitude: float) -> list[float]:
    """Listings and wishes in one space: price and size on log scales, location on the unit sphere
    (weighted so that distance matters as much as price)."""
    lat, lon = math.radians(latitude), math.radians(longitude)
    return [
        math.log10(max(price, 1.0)) / 7.0,
        math.log10(max(area_sqm, 1.0)) / 3.0,
        min(bedrooms, 10) / 10.0,
        3.0 * math.cos(lat) * math.cos(lon),
        3.0 * math.cos(lat) * math.sin(lon),
        3.0 * math.sin(lat),
    ]


class Postgres:
    name = "postgres"

    def __init__(self, url: str, timeout: float, pool_size: int = 10):
        self._timeout = timeout
        self._schema_ready = False
        # Opened lazily and kept trying in the background: the service starts while PostgreSQL is down.
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=timeout, kwargs={"connect_timeout": max(1, int(timeout))}
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def check(self) -> None:
        try:
            async with self.pool.connection(timeout=self._timeout) as conn:
                await asyncio.wait_for(conn.execute("SELECT 1"), self._timeout)
        except (psycopg.Error, PoolTimeout, asyncio.TimeoutError, OSError) as error:
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def _run(self, query: str, params: tuple = (), fetch: str = "all") -> Any:
        try:
            async with self.pool.connection() as conn:
                if not self._schema_ready:
                    await conn.execute(SCHEMA)
                    self._schema_ready = True
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(query, params)
                    if fetch == "one":
                        return await cur.fetchone()
                    if fetch == "all":
                        return await cur.fetchall()
                    return None
        except (psycopg.OperationalError, PoolTimeout, OSError) as error:
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def add_listing(self, listing: dict) -> dict:
        return await self._run(
            "INSERT INTO listings (city, district, area_sqm, bedrooms, price, latitude, longitude) "
            "VALUES (%(city)s, %(district)s, %(area_sqm)s, %(bedrooms)s, %(price)s, %(latitude)s, %(longitude)s) "
            "RETURNING id, created_at",
            listing,
            fetch="one",
        )

    async def comparables(self, city: str, district: Optional[str]) -> list[dict]:
        """Price per square metre of comparable listings: the district when it has enough, else the city."""
        if district:
            rows = await self._run(
                "SELECT price / area_sqm AS ppsqm FROM listings WHERE city = %s AND district = %s", (city, district)
            )
            if len(rows) >= 3:
                return rows
        return await self._run("SELECT price / area_sqm AS ppsqm FROM listings WHERE city = %s", (city,))

    async def save_valuation(self, valuation: dict) -> dict:
        return await self._run(
            "INSERT INTO valuations (city, district, area_sqm, bedrooms, estimate, confidence, model) "
            "VALUES (%(city)s, %(district)s, %(area_sqm)s, %(bedrooms)s, %(estimate)s, %(confidence)s, %(model)s) "
            "RETURNING id",
            valuation,
            fetch="one",
        )

    async def record_actual_price(self, valuation_id: str, actual_price: float) -> Optional[dict]:
        return await self._run(
            "UPDATE valuations SET actual_price = %s WHERE id = %s RETURNING estimate",
            (actual_price, valuation_id),
            fetch="one",
        )


class Cache:
    """Redis as a cache: every failure is reported to the caller as None/False so it can degrade."""

    name = "redis"

    def __init__(self, url: str, timeout: float):
        self._timeout = timeout
        self.client = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def check(self) -> None:
        try:
            await asyncio.wait_for(self.client.ping(), self._timeout)
        except (aioredis.RedisError, asyncio.TimeoutError, OSError) as error:
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def get(self, key: str) -> tuple[bool, Optional[Any]]:
        """(available, value)."""
        try:
            raw = await asyncio.wait_for(self.client.get(key), self._timeout)
        except (aioredis.RedisError, asyncio.TimeoutError, OSError) as error:
            log.warning("cache read failed", extra={"dependency": self.name, "reason": _reason(error)})
            return False, None
        return True, json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: Any, ttl_seconds: int) -> bool:
        try:
            await asyncio.wait_for(self.client.set(key, json.dumps(value), ex=ttl_seconds), self._timeout)
            return True
        except (aioredis.RedisError, asyncio.TimeoutError, OSError) as error:
            log.warning("cache write failed", extra={"dependency": self.name, "reason": _reason(error)})
            return False


class VectorStore:
    """Milvus through pymilvus. The client blocks, so calls run in a worker thread under a timeout."""

    name = "milvus"

    def __init__(self, url: str, timeout: float):
        self._url = url
        self._timeout = timeout
        self._client: Optional[MilvusClient] = None
        self._collection_ready = False

    def _connect(self) -> MilvusClient:
        if self._client is None:
            self._client = MilvusClient(uri=self._url, timeout=self._timeout)
        return self._client

    async def _call(self, fn, timeout: Optional[float] = None) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), timeout or self._timeout * 5)
        except DependencyUnavailable:
            raise
        except Exception as error:  # pymilvus raises many types, grpc ones included
            # Drop the client: after an outage a fresh channel reconnects faster than a broken one.
            self._client = None
            self._collection_ready = False
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    async def check(self) -> None:
        await self._call(lambda: self._connect().get_server_version(timeout=self._timeout), self._timeout)

    def _ensure_collection(self, client: MilvusClient) -> None:
        if not self._collection_ready:
            if not client.has_collection(COLLECTION):
                client.create_collection(COLLECTION, dimension=VECTOR_DIMENSION, metric_type="L2", auto_id=False)
            self._collection_ready = True

    async def add_listing(self, listing_id: int, vector: list[float], fields: dict) -> None:
        def insert():
            client = self._connect()
            self._ensure_collection(client)
            client.insert(COLLECTION, [{"id": listing_id, "vector": vector, **fields}])

        await self._call(insert)

    async def search(self, vector: list[float], limit: int, city: Optional[str], max_price: Optional[float]) -> list[dict]:
        conditions = []
        if city:
            conditions.append(f"city == {json.dumps(city)}")
        if max_price is not None:
            conditions.append(f"price <= {float(max_price)}")

        def search():
            client = self._connect()
            self._ensure_collection(client)
            result = client.search(
                COLLECTION,
                data=[vector],
                limit=limit,
                filter=" and ".join(conditions),
                output_fields=["city", "district", "price", "area_sqm", "bedrooms"],
            )
            return [
                {"listing_id": hit["id"], "distance": float(hit["distance"]), **hit["entity"]}
                for hit in result[0]
            ]

        return await self._call(search)


@dataclass
class Stores:
    postgres: Postgres
    cache: Cache
    vectors: VectorStore

    def all(self) -> list:
        return [self.postgres, self.cache, self.vectors]
