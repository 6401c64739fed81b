"""The product spec's fault plans (故障预案), injected against the real servers: each dependency stopped, hung
(SIGSTOP) and restarted (empty), asserting the fallback, the recovery without restarting the API, and the metrics."""

import json
import threading
import time
import uuid

import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from pymilvus import MilvusClient
from real_estate_api.breaker import TRIP_AFTER

from real_estate_api.app import create_app
from real_estate_api.config import load_settings
from real_estate_api.stores import DependencyUnavailable
from tests.app.helpers import AUTH, SHANGHAI, add_listings, metric, wait_for, wait_until_ready

pytestmark = pytest.mark.server


def wish_for(city, **overrides):
    return {"user_id": f"buyer-{uuid.uuid4().hex[:6]}", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3,
            **SHANGHAI, **overrides}


def recommend(client, wish):
    response = client.post("/v1/recommendations", json=wish, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


# --- Model service (Milvus): degrade to the rule engine, recover by itself ---------------------------------------

def test_milvus_down_answers_from_the_rule_engine_then_switches_back(client, milvus):
    city = f"Nanjing-{uuid.uuid4().hex[:6]}"
    near, far, over_budget = add_listings(client, city, SHANGHAI, [900_000, 950_000, 1_200_000])
    client.post("/v1/listings", json={"city": city, "area_sqm": 100, "bedrooms": 3, "price": 950_000,
                                      "latitude": SHANGHAI["latitude"] + 0.3, "longitude": SHANGHAI["longitude"]}, headers=AUTH)
    rules_before = metric(client, "recommendation_source_total", source="rules")
    milvus.stop()
    try:
        body = recommend(client, wish_for(city))
        assert body["source"] == "rules" and body["cache"] == "miss"
        ids = [item["listing_id"] for item in body["items"]]
        # Within budget, ranked by fit: the two listings at the wished place first, the one 33 km away after.
        assert ids[:2] == [near, far] and over_budget not in ids and len(ids) == 3
        assert all(item["price"] <= 1_000_000 and 0 < item["score"] <= 1 for item in body["items"])
        assert metric(client, "recommendation_source_total", source="rules") == rules_before + 1
        # Failures in a row open the circuit: the next searches go straight to the rule engine.
        for i in range(TRIP_AFTER - 1):
            assert recommend(client, wish_for(city, area_sqm=70 + i))["source"] == "rules"
        assert metric(client, "dependency_circuit_state", dependency="milvus") >= 1
        # The rule engine's answer is cached briefly: the same wish is a hit, still marked as rules.
        wish = wish_for(city, user_id="repeat")
        recommend(client, wish)
        assert recommend(client, wish)["source"] == "rules"
    finally:
        milvus.start()
    wait_until_ready(client)
    # Milvus answers its probe again: the next search is the trial, and its success closes the circuit.
    body = recommend(client, wish_for(city, area_sqm=99))
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]][:2] == [far, near]
    assert metric(client, "dependency_circuit_state", dependency="milvus") == 0


@pytest.fixture
def patient_client(env):
    """The app with a 30 s breaker reset: during a test, an open circuit stays open (no trial costs a timeout)."""
    with TestClient(create_app(load_settings({**env, "BREAKER_RESET_SECONDS": "30"}))) as client:
        wait_until_ready(client)
        yield client


def test_a_hung_milvus_costs_a_few_timeouts_not_one_per_request(patient_client, milvus):
    client = patient_client
    city = f"Suzhou-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    calls_before = metric(client, "dependency_request_duration_seconds_count", dependency="milvus")
    milvus.pause()
    try:
        started = time.monotonic()
        bodies = [recommend(client, wish_for(city, area_sqm=90 + i)) for i in range(10)]
        took = time.monotonic() - started
    finally:
        milvus.resume()
    assert all(body["source"] == "rules" for body in bodies)
    # Requests one by one: TRIP_AFTER (3) calls reached Milvus and waited out VECTOR_TIMEOUT_SECONDS (1 s here); the
    # circuit refused the seven after them.
    assert metric(client, "dependency_request_duration_seconds_count", dependency="milvus") == calls_before + TRIP_AFTER
    assert metric(client, "dependency_circuit_state", dependency="milvus") == 2
    assert took < TRIP_AFTER + 7 * 0.5, took  # without the breaker: ten seconds or more
    wait_until_ready(client)


def test_after_a_milvus_restart_the_collection_is_loaded_again(client, milvus):
    city = f"Xiamen-{uuid.uuid4().hex[:6]}"
    (listing,) = add_listings(client, city, SHANGHAI, [900_000])
    milvus.stop()
    milvus.start()  # a restarted Milvus has the collection, released (not loaded): the probe loads it
    wait_until_ready(client)
    body = recommend(client, wish_for(city))
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [listing]


def test_a_search_on_a_released_collection_loads_it_and_answers(env, milvus):
    # No probe in between (30 s interval): the request itself meets Milvus' "not loaded" and loads the collection.
    with TestClient(create_app(load_settings({**env, "HEALTH_PROBE_INTERVAL_SECONDS": "30"}))) as client:
        city = f"Haikou-{uuid.uuid4().hex[:6]}"
        (listing,) = add_listings(client, city, SHANGHAI, [900_000])
        MilvusClient(uri=milvus.url()).release_collection("listings")
        body = recommend(client, wish_for(city))
        assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [listing]


# --- Cache (Redis): degrade, read from source, rebuild ------------------------------------------------------------

def test_a_hung_redis_costs_a_few_timeouts_then_answers_from_source(patient_client, redis_server):
    client = patient_client
    city = f"Ningbo-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    calls_before = metric(client, "dependency_request_duration_seconds_count", dependency="redis")
    redis_server.pause()
    try:
        bodies = [recommend(client, wish_for(city, area_sqm=80 + i)) for i in range(10)]
        assert client.get("/ready").json()["status"] in ("ready", "degraded")
    finally:
        redis_server.resume()
    assert all(body["cache"] == "unavailable" and body["source"] == "vector" and len(body["items"]) == 1 for body in bodies)
    # TRIP_AFTER (3) calls waited out their 1 s (READINESS_TIMEOUT_SECONDS) and opened the circuit; nothing else went
    # to Redis.
    assert metric(client, "dependency_request_duration_seconds_count", dependency="redis") == calls_before + TRIP_AFTER
    wait_until_ready(client)
    # The probe sees Redis again: the next call is the trial, and it closes the circuit.
    wish = wish_for(city)
    recommend(client, wish)
    assert recommend(client, wish)["cache"] == "hit"
    assert metric(client, "dependency_circuit_state", dependency="redis") == 0


def test_a_redis_restart_is_no_outage_to_the_breaker(client, redis_server):
    cache = client.app.state.stores.cache
    # Connections in the pool, then Redis restarted under them: each one's next command meets a closed socket.
    for i in range(5):
        assert client.portal.call(cache.put, f"warm-{i}", i, 60)
    redis_server.restart_empty()
    for i in range(5):
        assert client.portal.call(cache.get, f"warm-{i}") == (True, None)
    assert metric(client, "dependency_circuit_state", dependency="redis") == 0


def test_redis_restarted_empty_is_rebuilt_from_recent_wishes(client, redis_server):
    city = f"Wuxi-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    wish = wish_for(city)
    assert recommend(client, wish)["cache"] == "miss"
    rebuilt_before = metric(client, "recommendation_cache_rebuilt_total")
    redis_server.restart_empty()
    assert wait_for(lambda: metric(client, "recommendation_cache_rebuilt_total") > rebuilt_before, 15)
    body = recommend(client, {**wish, "user_id": "someone-else"})
    assert body["cache"] == "hit" and body["source"] == "vector" and len(body["items"]) == 1
    # This pod's marker is back, with its expiry: the next probe will not rebuild again.
    (marker,) = redis.Redis.from_url(redis_server.url()).keys("cache:built:*")
    assert 0 < redis.Redis.from_url(redis_server.url()).ttl(marker) <= 600


# --- Database (PostgreSQL): what still answers ---------------------------------------------------------------------

def test_postgres_down_recommendations_still_answer_writes_and_valuations_are_503(client, postgres):
    city = f"Qingdao-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000] * 3)
    cached = wish_for(city)
    recommend(client, cached)
    postgres.stop()
    try:
        assert recommend(client, cached)["cache"] == "hit"
        assert recommend(client, wish_for(city, area_sqm=95))["source"] == "vector"
        for _ in range(TRIP_AFTER):
            valuation = client.post("/v1/valuations", json={"city": f"Other-{uuid.uuid4().hex[:4]}", "area_sqm": 50, "bedrooms": 1}, headers=AUTH)
        # Refused connections in a row opened the circuit: the next write fails at once, without waiting for the pool.
        circuit = metric(client, "dependency_circuit_state", dependency="postgres")
        started = time.monotonic()
        listing = client.post("/v1/listings", json={"city": city, "area_sqm": 60, "bedrooms": 1, "price": 500_000, **SHANGHAI}, headers=AUTH)
        listing_took = time.monotonic() - started
        assert client.get("/ready").status_code == 200
    finally:
        postgres.start()
    assert valuation.status_code == 503 and valuation.json()["dependency"] == "postgres"
    assert valuation.headers["Retry-After"] == "5" and valuation.json()["request_id"] == valuation.headers["X-Request-ID"]
    assert listing.status_code == 503 and circuit == 2 and listing_took < 0.5, (circuit, listing_took)
    wait_until_ready(client)
    # Ready, and valuations answer again within a breaker period or two: a call that lands while another call is the
    # half-open circuit's one trial (the reconciler's, every 0.5 s here) is refused at once (a CI run saw it).
    assert wait_for(lambda: client.post("/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 1},
                                        headers=AUTH).status_code == 200, 5)


def test_no_startup_parameter_that_pgbouncer_refuses(client):
    # PgBouncer (prod's path to PostgreSQL) drops a connection carrying startup options it does not track, such as
    # statement_timeout: the timeouts are set per transaction instead (the test below proves they hold).
    assert "options" not in client.app.state.stores.postgres._connect_kwargs


def test_a_locked_table_cannot_hold_the_pool(env, postgres):
    city = f"Dalian-{uuid.uuid4().hex[:6]}"
    settings = load_settings({**env, "DATABASE_STATEMENT_TIMEOUT_SECONDS": "1", "DATABASE_POOL_SIZE": "2"})
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        add_listings(client, city, SHANGHAI, [900_000])
        statuses = []

        def valuate(i):
            statuses.append(client.post("/v1/valuations", json={"city": city, "area_sqm": 50 + i, "bedrooms": 1}, headers=AUTH).status_code)

        with psycopg.connect(postgres.url("real_estate")) as blocker:
            blocker.execute("LOCK TABLE listings IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            # Six at once on a pool of two: two wait for the lock until the statement timeout, four for a connection.
            threads = [threading.Thread(target=valuate, args=(i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            took = time.monotonic() - started
            health = client.get("/health").status_code
            blocker.rollback()
        assert statuses == [503] * 6 and took < 6, (statuses, took)
        assert health == 200
        # Neither the statement timeout nor a busy pool is an outage: the circuit stays closed, the next request is served.
        assert metric(client, "dependency_circuit_state", dependency="postgres") == 0
        assert client.post("/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 1}, headers=AUTH).status_code == 200


def test_a_hung_postgres_costs_one_deadline_then_fails_fast(patient_client, postgres):
    client = patient_client
    city = f"Harbin-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000] * 3)
    postgres.pause()
    try:
        started = time.monotonic()
        first = client.post("/v1/valuations", json={"city": f"{city}-x", "area_sqm": 50, "bedrooms": 1}, headers=AUTH)
        first_took = time.monotonic() - started
        started = time.monotonic()
        rest = [client.post("/v1/valuations", json={"city": f"{city}-{i}", "area_sqm": 50, "bedrooms": 1}, headers=AUTH) for i in range(5)]
        rest_took = time.monotonic() - started
        ready = client.get("/ready")
    finally:
        postgres.resume()
    # The server's statement timeout cannot end a call to a hung server; the client's deadline (5 s + 1 s) does.
    assert first.status_code == 503 and first.json()["dependency"] == "postgres" and first_took < 8, first_took
    assert all(r.status_code == 503 for r in rest) and rest_took < 1, rest_took
    assert ready.status_code == 200 and ready.json()["dependencies"]["postgres"] == "unavailable"
    wait_until_ready(client)
    assert client.post("/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 1}, headers=AUTH).status_code == 200


def test_a_milvus_outage_during_reconcile_does_not_trip_postgres(client, milvus):
    city = f"Lhasa-{uuid.uuid4().hex[:6]}"
    milvus.stop()
    try:
        assert client.post("/v1/listings", json={"city": city, "area_sqm": 60, "bedrooms": 1, "price": 500_000, **SHANGHAI},
                           headers=AUTH).status_code == 202
        with pytest.raises(DependencyUnavailable, match="milvus"):
            client.portal.call(client.app.state.listings.reconcile, 0.0)
        assert metric(client, "dependency_circuit_state", dependency="postgres") == 0
        assert metric(client, "listing_index_backlog") >= 1  # reported during the outage it exists for
        assert client.post("/v1/valuations", json={"city": city, "area_sqm": 60, "bedrooms": 1}, headers=AUTH).status_code == 200
    finally:
        milvus.start()
    wait_until_ready(client)


# --- Readiness under load, logs under faults (the service as the image runs it) -----------------------------------

def test_ready_answers_at_once_while_searches_hang(server, milvus):
    process, base = server
    milvus.pause()
    results = []

    def search(i):
        body = wish_for(None, area_sqm=60 + i)
        body.pop("city")
        results.append(httpx.post(f"{base}/v1/recommendations", json=body, headers=AUTH, timeout=30).status_code)

    try:
        threads = [threading.Thread(target=search, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        ready = httpx.get(f"{base}/ready", timeout=5)
        took = time.monotonic() - started
        for thread in threads:
            thread.join(30)
    finally:
        milvus.resume()
    assert ready.status_code == 200 and took < 0.5, took
    assert results == [200] * 16


def test_every_log_line_is_json_with_a_request_id_under_faults(server, milvus, redis_server):
    process, base = server
    milvus.stop()
    redis_server.pause()
    try:
        for i in range(5):
            body = wish_for(None, area_sqm=60 + i)
            body.pop("city")
            httpx.post(f"{base}/v1/recommendations", json=body, headers={**AUTH, "X-Request-ID": f"fault-{i}"}, timeout=30)
    finally:
        redis_server.resume()
        milvus.start()
    process.terminate()
    output = process.communicate(timeout=30)[0]
    lines = output.splitlines()
    assert len(lines) > 10
    parsed = [json.loads(line) for line in lines]  # every line, stdout and stderr together, is JSON
    assert all({"time", "level", "logger", "message", "request_id"} <= set(entry) for entry in parsed)
    fault_lines = [entry for entry in parsed if entry["request_id"].startswith("fault-")]
    assert {entry["request_id"] for entry in fault_lines} == {f"fault-{i}" for i in range(5)}
    assert not any("Traceback" in line for line in lines)
