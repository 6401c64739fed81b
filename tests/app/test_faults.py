"""The product spec's fault plans (故障预案), injected against the real servers: each dependency stopped, hung
(SIGSTOP) and restarted (empty), asserting the fallback, the recovery without restarting the API, and the metrics."""

import json
import threading
import time
import uuid

import httpx
import psycopg
import redis
from fastapi.testclient import TestClient

from real_estate_api.app import create_app
from real_estate_api.config import load_settings

from tests.app.helpers import AUTH, SHANGHAI, add_listings, metric, wait_for, wait_until_ready


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
        assert metric(client, "dependency_circuit_state", dependency="milvus") >= 1
        # The rule engine's answer is cached briefly: the same wish is a hit, still marked as rules.
        wish = wish_for(city, user_id="repeat")
        recommend(client, wish)
        assert recommend(client, wish)["source"] == "rules"
    finally:
        milvus.start()
    wait_until_ready(client)
    assert metric(client, "dependency_circuit_state", dependency="milvus") == 0
    body = recommend(client, wish_for(city, area_sqm=99))
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]][:2] == [far, near]


def test_a_hung_milvus_costs_one_timeout_not_one_per_request(client, milvus):
    city = f"Suzhou-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    milvus.pause()
    try:
        started = time.monotonic()
        first = recommend(client, wish_for(city))
        first_took = time.monotonic() - started
        started = time.monotonic()
        rest = [recommend(client, wish_for(city, area_sqm=90 + i)) for i in range(10)]
        rest_took = time.monotonic() - started
    finally:
        milvus.resume()
    assert first["source"] == "rules" and all(body["source"] == "rules" for body in rest)
    # VECTOR_TIMEOUT_SECONDS is 1 here: the first request waits it out (twice for the connect and the call at most),
    # the ten after it find the circuit open. Without the breaker they would take ten seconds or more.
    assert first_took < 3.5 and rest_took < 3.0, (first_took, rest_took)
    wait_until_ready(client)


def test_after_a_milvus_restart_the_collection_is_loaded_again(client, milvus):
    city = f"Xiamen-{uuid.uuid4().hex[:6]}"
    (listing,) = add_listings(client, city, SHANGHAI, [900_000])
    milvus.stop()
    milvus.start()  # a restarted Milvus has the collection, released (not loaded)
    wait_until_ready(client)
    body = recommend(client, wish_for(city))
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [listing]


# --- Cache (Redis): degrade, read from source, rebuild ------------------------------------------------------------

def test_a_hung_redis_costs_one_timeout_then_answers_from_source(client, redis_server):
    city = f"Ningbo-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    redis_server.pause()
    try:
        started = time.monotonic()
        bodies = [recommend(client, wish_for(city, area_sqm=80 + i)) for i in range(10)]
        took = time.monotonic() - started
        assert client.get("/ready").json()["status"] in ("ready", "degraded")
    finally:
        redis_server.resume()
    assert all(body["cache"] == "unavailable" and body["source"] == "vector" and len(body["items"]) == 1 for body in bodies)
    # One 1 s timeout (READINESS_TIMEOUT_SECONDS) opens the circuit; the others skip the cache.
    assert took < 3.0, took
    wait_until_ready(client)
    wish = wish_for(city)
    recommend(client, wish)
    assert recommend(client, wish)["cache"] == "hit"


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
    assert redis.Redis.from_url(redis_server.url()).exists("cache:built") == 1


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
        valuation = client.post("/v1/valuations", json={"city": f"Other-{uuid.uuid4().hex[:4]}", "area_sqm": 50, "bedrooms": 1}, headers=AUTH)
        listing = client.post("/v1/listings", json={"city": city, "area_sqm": 60, "bedrooms": 1, "price": 500_000, **SHANGHAI}, headers=AUTH)
        assert client.get("/ready").status_code == 200
    finally:
        postgres.start()
    assert valuation.status_code == 503 and valuation.json()["dependency"] == "postgres"
    assert valuation.headers["Retry-After"] == "5" and valuation.json()["request_id"] == valuation.headers["X-Request-ID"]
    assert listing.status_code == 503
    wait_until_ready(client)
    assert client.post("/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 1}, headers=AUTH).status_code == 200


def test_a_locked_table_cannot_hold_the_pool(env, postgres):
    city = f"Dalian-{uuid.uuid4().hex[:6]}"
    settings = load_settings({**env, "DATABASE_STATEMENT_TIMEOUT_SECONDS": "1", "DATABASE_POOL_SIZE": "2"})
    with TestClient(create_app(settings)) as client:
        add_listings(client, city, SHANGHAI, [900_000])
        with psycopg.connect(postgres.url("real_estate")) as blocker:
            blocker.execute("LOCK TABLE listings IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            responses = [client.post("/v1/valuations", json={"city": city, "area_sqm": 50 + i, "bedrooms": 1}, headers=AUTH)
                         for i in range(3)]
            took = time.monotonic() - started
            health = client.get("/health").status_code
            blocker.rollback()
        assert [r.status_code for r in responses] == [503] * 3 and took < 6, took
        assert health == 200
        # The statement timeout is not an outage: the circuit stays closed and the next request is served.
        assert metric(client, "dependency_circuit_state", dependency="postgres") == 0
        assert client.post("/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 1}, headers=AUTH).status_code == 200


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
