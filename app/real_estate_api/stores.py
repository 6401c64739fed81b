"""The three data stores: PostgreSQL (listings, valuations), Redis (cache), Milvus (listing vectors).

Every call goes through the store's circuit breaker and a timeout, and raises DependencyUnavailable
when the store cannot serve, which the API turns into a fallback or a 503 naming the dependency.
Each store also has a `probe()` for the background health monitor that never queues behind requests.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import psycopg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from real_estate_api import schema
from real_estate_api.text import UnsafeFilterValue, filter_literal_problem
from real_estate_api.breaker import CircuitBreaker

log = logging.getLogger("real_estate_api.stores")

VECTOR_DIMENSION = 6
COLLECTION = "listings"
# Fields stored beside each vector and returned with every hit.
VECTOR_FIELDS = ("city", "district", "price", "area_sqm", "bedrooms", "latitude", "longitude")
# The reason a call refused by an open circuit breaker carries.
CIRCUIT_OPEN = "circuit open"
# A pod's cache marker outlives it by this much (cache probes renew it every couple of seconds).
MARKER_TTL_SECONDS = 600
# Feedback more than this factor away from the estimate is refused: a typo, not a price.
FEEDBACK_MAX_FACTOR = 10.0


class DependencyUnavailable(Exception):
    def __init__(self, dependency: str, reason: str):
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


class Refused(Exception):
    """A client error with a clear message and its HTTP status (raised by the stores and the routes alike)."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _reason(error: BaseException) -> str:
    """A short reason that cannot carry a credential: the error's class, or 'timeout'."""
    if isinstance(error, (asyncio.TimeoutError, PoolTimeout, TimeoutError, psycopg.errors.QueryCanceled)):
        return "timeout"
    if isinstance(error, MilvusException):
        return f"milvus code {error.code}"
    code = getattr(error, "code", None)
    if callable(code):  # a gRPC error: its status name (UNAVAILABLE, DEADLINE_EXCEEDED)
        try:
            return str(code().name)
        except Exception:
            pass
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


def string_literal(value: str) -> str:
    """A Milvus filter-expression string literal. The parser reads `\\"` and `\\\\` escapes and raw UTF-8, but
    not JSON's `\\uXXXX` (which broke every non-ASCII city); what no literal can hold (text.py) is refused."""
    problem = filter_literal_problem(value)
    if problem:
        raise UnsafeFilterValue(problem)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def within(awaitable: Awaitable[Any], seconds: float) -> Any:
    """Await with a deadline that holds even when cancelling takes long: on expiry the call is cancelled in the
    background (a driver's cancellation can wait for an unresponsive server) and TimeoutError raised at once."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved" warning
        raise asyncio.TimeoutError()
    return task.result()


async def guarded(store, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run `call` unless the store's breaker is open, time it, and report its outcome: DependencyUnavailable is an
    outage; any other error means the dependency answered (about this call), so it counts as up."""
    breaker = store.breaker
    ticket = breaker.allow()
    if ticket is None:
        raise DependencyUnavailable(store.name, CIRCUIT_OPEN)
    started = time.perf_counter()
    try:
        result = await call()
    except DependencyUnavailable:
        breaker.failure(ticket)
        raise
    except (asyncio.CancelledError, _Busy):
        # Cancelled, or too busy to tell: no verdict on the dependency (and a half-open trial is given back).
        breaker.release(ticket)
        raise
    except Exception:
        breaker.success(ticket)
        raise
    finally:
        store.observe(time.perf_counter() - started)
    breaker.success(ticket)
    return result


def _ignore(_: float) -> None:
    pass


class Postgres:
    name = "postgres"
    # Called with the seconds each call took (the API sets it to a histogram).
    observe: Callable[[float], None] = staticmethod(_ignore)

    def __init__(self, url: str, timeout: float, pool_size: int, statement_timeout: float, breaker: CircuitBreaker):
        self._url = url
        self._timeout = timeout
        # The client's own deadline (waiting for a pooled connection, then the statement): the server's
        # statement_timeout cannot end a call to a hung server.
        self._deadline = timeout + statement_timeout + 1.0
        self.breaker = breaker
        self.schema_ready = False
        self._probe_conn: Optional[psycopg.AsyncConnection] = None
        # A locked table or a runaway query gives its connection back instead of holding the pool. Set per transaction,
        # not as a startup option: PgBouncer refuses startup parameters it does not track, and in transaction pooling a
        # session setting would land on whichever server connection the next transaction gets.
        timeout_ms = int(statement_timeout * 1000)
        self._timeouts = f"SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms}"
        self._connect_kwargs = {
            "connect_timeout": max(1, int(timeout)),
            "application_name": "real-estate-api",
            # A peer that vanished (node lost, network partition) is noticed in seconds, not at the kernel's 2 hours.
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            "tcp_user_timeout": int(self._deadline * 1000),
        }
        self._in_use = 0
        self._pool_size = pool_size
        self._closing: set[asyncio.Task] = set()
        self.pool = self._new_pool()

    def _new_pool(self) -> AsyncConnectionPool:
        # Opened lazily and kept trying in the background: the service starts while PostgreSQL is down.
        # Connections are checked when taken: after a failover the old primary's are dead.
        return AsyncConnectionPool(self._url, min_size=1, max_size=self._pool_size, open=False, timeout=self._timeout,
                                   kwargs=self._connect_kwargs, check=AsyncConnectionPool.check_connection)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def renew_pool(self) -> None:
        """A fresh pool once PostgreSQL is back: the old one's reconnection backs off exponentially (a minute and more
        after a long outage) and gives up after five, while the probe has just seen the server answer."""
        old, self.pool = self.pool, self._new_pool()
        await self.pool.open(wait=False)
        # Requests still holding the old pool's connections finish; the rest close. (A reference is kept: the event
        # loop holds tasks only weakly.)
        closing = asyncio.get_running_loop().create_task(old.close(timeout=self._deadline))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        await self.pool.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._probe_conn is not None:
            await self._probe_conn.close()

    async def migrate(self) -> None:
        """The schema (schema.py), on a connection of its own; raises DependencyUnavailable while PostgreSQL is not there."""
        try:
            await schema.migrate(self._url, self._connect_kwargs)
        except (psycopg.OperationalError, OSError) as error:
            raise DependencyUnavailable(self.name, _reason(error)) from None
        self.schema_ready = True

    async def probe(self) -> None:
        """SELECT 1 on a connection of its own (one per pod, outside the pool): never waits behind requests."""
        try:
            if self._probe_conn is None or self._probe_conn.closed:
                self._probe_conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **self._connect_kwargs)
            await self._probe_conn.execute("SELECT 1")
        except (psycopg.Error, OSError) as error:
            await self._drop_probe_connection()
            raise DependencyUnavailable(self.name, _reason(error)) from None
        except asyncio.CancelledError:
            await self._drop_probe_connection()
            raise

    async def _drop_probe_connection(self) -> None:
        if self._probe_conn is not None:
            conn, self._probe_conn = self._probe_conn, None
            await conn.close()

    async def run(self, query: str, params: Any = (), fetch: str = "all") -> Any:
        if not self.schema_ready:
            raise DependencyUnavailable(self.name, "schema not migrated yet")

        async def execute():
            try:
                async with self.pool.connection() as conn:
                    self._in_use += 1
                    try:
                        async with conn.cursor(row_factory=dict_row) as cur:
                            await cur.execute(self._timeouts)
                            await cur.execute(query, params)
                            if fetch == "one":
                                return await cur.fetchone()
                            if fetch == "all":
                                return await cur.fetchall()
                            return None
                    finally:
                        self._in_use -= 1
            except psycopg.errors.QueryCanceled:
                # The statement timeout: this query waited too long (a lock, a slow plan); the server is up.
                raise _Busy("statement timeout") from None
            except PoolTimeout:
                # No connection free in time. Busy (other requests hold connections) is not an outage; nothing served at
                # all is (the pool counts its failing reconnection attempts as connections, so ask who holds one).
                if self._in_use > 0:
                    raise _Busy("connection pool exhausted") from None
                raise DependencyUnavailable(self.name, "timeout") from None
            except (psycopg.OperationalError, OSError) as error:
                raise DependencyUnavailable(self.name, _reason(error)) from None

        async def bounded():
            try:
                return await within(execute(), self._deadline)
            except asyncio.TimeoutError:
                raise DependencyUnavailable(self.name, "timeout") from None

        try:
            return await guarded(self, bounded)
        except _Busy as busy:
            raise DependencyUnavailable(self.name, busy.reason) from None

    async def add_listing(self, listing: dict, idempotency_key: Optional[str]) -> dict:
        """The row with `created` (False: an earlier request with this key wrote it) and `indexed`."""
        columns = "id, indexed_at IS NOT NULL AS indexed, city, district, area_sqm, bedrooms, price, latitude, longitude"
        row = await self.run(
            "INSERT INTO listings (city, district, area_sqm, bedrooms, price, latitude, longitude, idempotency_key) "
            "VALUES (%(city)s, %(district)s, %(area_sqm)s, %(bedrooms)s, %(price)s, %(latitude)s, %(longitude)s, %(key)s) "
            f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {columns}",
            {**listing, "key": idempotency_key},
            fetch="one",
        )
        if row is not None:
            return {**row, "created": True}
        # The key was used before (only a non-NULL key can conflict): the first row, written by an earlier request.
        row = await self.run(f"SELECT {columns} FROM listings WHERE idempotency_key = %s", (idempotency_key,), fetch="one")
        return {**row, "created": False}

    async def mark_indexed(self, ids: list[int]) -> None:
        await self.run("UPDATE listings SET indexed_at = now() WHERE id = ANY(%s)", (ids,), fetch="none")

    async def index_backlog(self) -> int:
        row = await self.run("SELECT count(*) AS n FROM listings WHERE indexed_at IS NULL", fetch="one")
        return row["n"]

    async def indexed_ids(self, after: int, limit: int, settle_seconds: float) -> list[int]:
        """Ids of listings marked indexed more than `settle_seconds` ago, above `after`, in order."""
        rows = await self.run(
            "SELECT id FROM listings WHERE id > %s AND indexed_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s",
            (after, settle_seconds, limit),
        )
        return [row["id"] for row in rows]

    async def mark_unindexed(self, ids: list[int]) -> None:
        """Back into the outbox: the reconciler writes them to Milvus again."""
        await self.run("UPDATE listings SET indexed_at = NULL WHERE id = ANY(%s)", (ids,), fetch="none")

    async def claim(self, name: str, every_seconds: float) -> bool:
        """True for the one caller that starts `name` now: none did within `every_seconds`. One statement, so it holds
        through PgBouncer's transaction pooling and across pods; when it is not due it matches no row and writes no
        WAL (every pod asks every reconcile round: an upsert would keep an idle database switching WAL segments at
        archive_timeout forever). The row is seeded by the migration (schema.py)."""
        row = await self.run(
            "UPDATE maintenance_runs SET started_at = now() "
            "WHERE name = %s AND started_at < now() - make_interval(secs => %s) RETURNING started_at",
            (name, every_seconds), fetch="one",
        )
        return row is not None

    async def unindexed(self, limit: int, settle_seconds: float) -> list[dict]:
        """Listings saved but not yet in Milvus, older than `settle_seconds` (a request still writing its own is left
        alone), oldest first."""
        return await self.run(
            "SELECT id, city, district, area_sqm, bedrooms, price, latitude, longitude FROM listings "
            "WHERE indexed_at IS NULL AND created_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s",
            (settle_seconds, limit),
        )

    async def price_per_sqm_quartiles(self, city: str, district: Optional[str]) -> Optional[dict]:
        """Count and quartiles of price per m² over the district when it has at least 3 listings, else the city:
        aggregated in PostgreSQL (an index-only scan), never fetched row by row."""
        query = (
            "SELECT count(*) AS n, percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY price / area_sqm) AS q "
            "FROM listings WHERE city = %s"
        )
        if district:
            row = await self.run(query + " AND district = %s", (city, district), fetch="one")
            if row["n"] >= 3:
                return {"n": row["n"], "quartiles": row["q"], "scope": "district"}
        row = await self.run(query, (city,), fetch="one")
        return {"n": row["n"], "quartiles": row["q"], "scope": "city"} if row["n"] else None

    async def save_valuation(self, valuation: dict) -> dict:
        return await self.run(
            "INSERT INTO valuations (city, district, area_sqm, bedrooms, estimate, confidence, model) "
            "VALUES (%(city)s, %(district)s, %(area_sqm)s, %(bedrooms)s, %(estimate)s, %(confidence)s, %(model)s) "
            "RETURNING id",
            valuation,
            fetch="one",
        )

    async def record_actual_price(self, valuation_id: uuid.UUID, actual_price: float) -> float:
        """Store the one actual price of a valuation; returns its estimate. Refuses a second report and a price more
        than FEEDBACK_MAX_FACTOR away from the estimate, so neither repeats nor typos skew the accuracy metric."""
        row = await self.run(
            "UPDATE valuations SET actual_price = %(price)s, feedback_at = now() "
            "WHERE id = %(id)s AND actual_price IS NULL AND %(price)s BETWEEN estimate / %(f)s AND estimate * %(f)s "
            "RETURNING estimate",
            {"id": valuation_id, "price": actual_price, "f": FEEDBACK_MAX_FACTOR},
            fetch="one",
        )
        if row is not None:
            return row["estimate"]
        existing = await self.run("SELECT estimate, actual_price FROM valuations WHERE id = %s", (valuation_id,), fetch="one")
        if existing is None:
            raise Refused(404, f"no valuation {valuation_id}")
        if existing["actual_price"] is not None:
            raise Refused(409, f"valuation {valuation_id} already has its actual price")
        raise Refused(
            422, f"actual_price must be within a factor of {FEEDBACK_MAX_FACTOR:g} of the estimate ({existing['estimate']:.2f})"
        )

    async def candidates(self, city: Optional[str], max_price: float, latitude: float, longitude: float, radius_km: float,
                         limit: int) -> list[dict]:
        """The rule engine's candidates: under budget, within `radius_km` (a bounding box), nearest first."""
        lat_span = radius_km / 111.0
        lon_span = radius_km / (111.0 * max(0.01, math.cos(math.radians(latitude))))
        where = ["price <= %(max_price)s", "latitude BETWEEN %(lat)s - %(dlat)s AND %(lat)s + %(dlat)s",
                 "longitude BETWEEN %(lon)s - %(dlon)s AND %(lon)s + %(dlon)s"]
        if city:
            where.insert(0, "city = %(city)s")
        return await self.run(
            "SELECT id AS listing_id, city, district, price, area_sqm, bedrooms, latitude, longitude FROM listings "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY (latitude - %(lat)s) ^ 2 + ((longitude - %(lon)s) * %(coslat)s) ^ 2, id LIMIT %(limit)s",
            {"city": city, "max_price": max_price, "lat": latitude, "lon": longitude, "dlat": lat_span, "dlon": lon_span,
             "coslat": math.cos(math.radians(latitude)), "limit": limit},
        )


class _Busy(Exception):
    """PostgreSQL answered but this call could not be served in time (statement timeout, pool exhausted): a 503
    for this request, not an outage, so it must not open the breaker for everyone."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Cache:
    """Redis as a cache: every failure is reported to the caller as None/False so it can degrade."""

    name = "redis"
    # Called with the seconds each call took (the API sets it to a histogram).
    observe: Callable[[float], None] = staticmethod(_ignore)

    def __init__(self, url: str, timeout: float, breaker: CircuitBreaker):
        self._timeout = timeout
        self.breaker = breaker
        # A pooled connection Redis closed (it restarted) fails its next command: that one command is sent again on a
        # fresh connection, so a restart is not an outage to the breaker. A timeout is not retried: it would double.
        self.client = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
                                        retry=Retry(NoBackoff(), 1, supported_errors=(aioredis.ConnectionError,)),
                                        retry_on_error=[aioredis.ConnectionError])
        # This process's marker in Redis: while it is there, Redis still holds what this pod cached. Expires so the
        # markers of pods long gone do not pile up; every probe renews it.
        self._marker = f"cache:built:{uuid.uuid4().hex}"

    async def close(self) -> None:
        await self.client.aclose()

    async def _unguarded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await within(call(), self._timeout)
        except (aioredis.RedisError, asyncio.TimeoutError, OSError) as error:
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def _op(self, call: Callable[[], Awaitable[Any]]) -> Any:
        return await guarded(self, lambda: self._unguarded(call))

    async def probe(self) -> bool:
        """True when Redis answers and still holds this pod's cache; False when it answers without it (restarted
        empty, flushed), and the marker is set again. Past the breaker: probing is how an open circuit learns."""
        kept = await self._unguarded(lambda: self.client.expire(self._marker, MARKER_TTL_SECONDS))
        if not kept:
            await self._unguarded(lambda: self.client.set(self._marker, "1", ex=MARKER_TTL_SECONDS))
        return bool(kept)

    async def refill(self, key: str, value: Any, ttl_seconds: int) -> None:
        """A write for the rebuild, after a probe found Redis up: past the breaker, failures raised."""
        await self._unguarded(lambda: self.client.set(key, json.dumps(value), ex=ttl_seconds))

    async def _degradable(self, call: Callable[[], Awaitable[Any]], what: str) -> tuple[bool, Any]:
        """(available, result): a failure is logged (unless the circuit refused it: nothing was tried) and reported
        to the caller, which goes on without the cache."""
        try:
            return True, await self._op(call)
        except DependencyUnavailable as error:
            if error.reason != CIRCUIT_OPEN:
                log.warning(f"cache {what} failed", extra={"dependency": self.name, "reason": error.reason})
            return False, None

    async def get(self, key: str) -> tuple[bool, Optional[Any]]:
        """(available, value)."""
        available, raw = await self._degradable(lambda: self.client.get(key), "read")
        return available, json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: Any, ttl_seconds: int) -> bool:
        available, _ = await self._degradable(lambda: self.client.set(key, json.dumps(value), ex=ttl_seconds), "write")
        return available

    async def record_activity(self, key: str, members: list[str], ttl_seconds: int,
                              windows: dict[str, list[str]]) -> Optional[dict[str, int]]:
        """Adds `members` to the HyperLogLog `key` (kept `ttl_seconds`) and counts the union of each window's keys, in
        one round trip; None when Redis does not answer."""

        async def call() -> list:
            pipe = self.client.pipeline(transaction=False)
            if members:
                pipe.pfadd(key, *members)
                pipe.expire(key, ttl_seconds)
            for keys in windows.values():
                pipe.pfcount(*keys)
            return await pipe.execute()

        available, results = await self._degradable(call, "activity count")
        if not available:
            return None
        return dict(zip(windows, results[-len(windows):]))


class VectorStore:
    """Milvus through pymilvus. The client blocks, so calls run in threads of this store's own (requests and
    the health probe apart), under a timeout that is also passed to gRPC so a hung server frees its thread."""

    name = "milvus"
    # Called with the seconds each call took (the API sets it to a histogram).
    observe: Callable[[float], None] = staticmethod(_ignore)
    # Milvus answers a search on a collection that is not loaded (after its restart) with this code.
    NOT_LOADED = 101
    COLLECTION_NOT_FOUND = 100

    def __init__(self, url: str, timeout: float, probe_timeout: float, breaker: CircuitBreaker, workers: int = 8):
        self._url = url
        self._timeout = timeout
        self._probe_timeout = probe_timeout
        self.breaker = breaker
        self._client: Optional[MilvusClient] = None
        self._collection_ready = False
        self._requests = ThreadPoolExecutor(workers, thread_name_prefix="milvus")
        self._writes = threading.Lock()
        self._probes = ThreadPoolExecutor(1, thread_name_prefix="milvus-probe")

    def _connect(self, timeout: float) -> MilvusClient:
        if self._client is None:
            self._client = MilvusClient(uri=self._url, timeout=timeout)
        return self._client

    async def _in_thread(self, executor: ThreadPoolExecutor, fn: Callable[[], Any], timeout: float) -> Any:
        def run():
            try:
                return fn()
            except MilvusException as error:
                if error.code == self.COLLECTION_NOT_FOUND:
                    self._collection_ready = False  # Milvus came back without it: create it again
                raise
            except Exception as error:
                # Connection trouble: drop the client here, in the worker (a fresh channel reconnects faster than a
                # broken one, and a gRPC channel torn down on the event loop's thread can block it). A slow answer
                # says nothing about the collection, so that flag stays.
                if _reason(error) != "DEADLINE_EXCEEDED":
                    self._client = None
                raise

        loop = asyncio.get_running_loop()
        # The request's context (its request id) goes with the call into the worker thread.
        call = functools.partial(contextvars.copy_context().run, run)
        try:
            return await asyncio.wait_for(loop.run_in_executor(executor, call), timeout)
        except Exception as error:  # pymilvus raises many types, grpc ones included
            raise DependencyUnavailable(self.name, _reason(error)) from None

    async def _call(self, fn: Callable[[MilvusClient], Any]) -> Any:
        def run():
            client = self._connect(self._timeout)
            self._ensure_collection(client)
            try:
                return fn(client)
            except MilvusException as error:
                if error.code != self.NOT_LOADED:
                    raise
                # Milvus restarted and released the collection: load it and answer this request too.
                client.load_collection(COLLECTION, timeout=self._timeout)
                log.warning("milvus collection was not loaded; loaded it", extra={"dependency": self.name})
                return fn(client)

        # One deadline for the whole call (connect, create, load, search): slower than that, the fallback answers.
        return await guarded(self, lambda: self._in_thread(self._requests, run, self._timeout))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)
        self._requests.shutdown(wait=False, cancel_futures=True)
        self._probes.shutdown(wait=False, cancel_futures=True)

    async def probe(self) -> None:
        """Server answers and, when the collection exists, it is loaded (loaded here if Milvus restarted)."""

        def run():
            client = self._connect(self._probe_timeout)
            client.get_server_version(timeout=self._probe_timeout)
            if client.has_collection(COLLECTION, timeout=self._probe_timeout):
                state = client.get_load_state(COLLECTION, timeout=self._probe_timeout)["state"]
                if state.name == "NotLoad":
                    client.load_collection(COLLECTION, timeout=self._timeout)
                    log.warning("milvus collection was not loaded; loaded it", extra={"dependency": self.name})

        await self._in_thread(self._probes, run, self._probe_timeout + self._timeout)

    def _ensure_collection(self, client: MilvusClient) -> None:
        if not self._collection_ready:
            if not client.has_collection(COLLECTION, timeout=self._timeout):
                client.create_collection(COLLECTION, dimension=VECTOR_DIMENSION, metric_type="L2", auto_id=False, timeout=self._timeout)
            self._collection_ready = True

    async def upsert(self, listings: list[dict]) -> None:
        """Listings (rows with id and VECTOR_FIELDS) into Milvus; by primary key, so a repeat changes nothing."""
        data = [
            {
                "id": row["id"],
                "vector": listing_vector(row["price"], row["area_sqm"], row["bedrooms"], row["latitude"], row["longitude"]),
                **{k: row[k] for k in VECTOR_FIELDS},
                "district": row["district"] or "",
            }
            for row in listings
        ]
        def upsert(client: MilvusClient):
            # One write at a time from this pod: milvus-lite corrupts its log under concurrent upserts (entries
            # acknowledged, then gone after its restart); a Milvus server takes them in order either way. Held in the
            # worker thread, inside the call's deadline: a caller that gives up frees itself, not the lock, so the
            # write still in flight keeps the next one waiting.
            if not self._writes.acquire(timeout=self._timeout):
                raise TimeoutError("another upsert holds the write lock")
            try:
                return client.upsert(COLLECTION, data, timeout=self._timeout)
            finally:
                self._writes.release()

        await self._call(upsert)

    async def present(self, ids: list[int]) -> set[int]:
        """Which of these listing ids Milvus holds, read with strong consistency (every acknowledged write seen)."""
        def query(client: MilvusClient):
            rows = client.query(COLLECTION, filter=f"id in [{', '.join(str(int(i)) for i in ids)}]", output_fields=["id"],
                                consistency_level="Strong", timeout=self._timeout)
            return {row["id"] for row in rows}

        return await self._call(query)

    async def search(self, vector: list[float], limit: int, city: Optional[str], max_price: float) -> list[dict]:
        conditions = [f"price <= {float(max_price)!r}"]
        if city:
            conditions.append(f"city == {string_literal(city)}")

        def search(client: MilvusClient):
            result = client.search(
                COLLECTION, data=[vector], limit=limit, filter=" and ".join(conditions), output_fields=list(VECTOR_FIELDS),
                timeout=self._timeout,
            )
            return [{"listing_id": hit["id"], "distance": float(hit["distance"]), **hit["entity"]} for hit in result[0]]

        return await self._call(search)


@dataclass
class Stores:
    postgres: Postgres
    cache: Cache
    vectors: VectorStore

    def all(self) -> list:
        return [self.postgres, self.cache, self.vectors]
