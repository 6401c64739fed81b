"""Active users against a real Redis: the users the business requests name are counted once each over the rolling day
and week, the hours add up as a union, nothing but HyperLogLogs with an expiry is stored, and a Redis that does not
answer loses no user (they are counted at the next flush) and delays no request."""

import time
import uuid

import pytest
import redis
from prometheus_client import CollectorRegistry, Gauge

from real_estate_api.activity import KEEP_SECONDS, ActiveUsers, hour_key
from real_estate_api.breaker import CircuitBreaker
from real_estate_api.stores import Cache
from tests.app.helpers import AUTH, SHANGHAI, metric
from tests.services import free_port

pytestmark = pytest.mark.server

BUYER = {"budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
HOUR = 3600


def _gauge() -> Gauge:
    return Gauge("active_users", "test", ["window"], registry=CollectorRegistry())


def _value(gauge: Gauge, window: str) -> float:
    return gauge.labels(window)._value.get()


def test_the_users_of_business_requests_are_counted_once_each(client):
    tag = uuid.uuid4().hex[:6]
    for user in ("a", "b", "a", "c"):
        assert client.post("/v1/recommendations", json={**BUYER, "user_id": f"{tag}-{user}"}, headers=AUTH).status_code == 200
    # The A/B header counts too; probes and listings name no user.
    client.post("/v1/valuations", json={"city": "Nowhere", "area_sqm": 80, "bedrooms": 2}, headers={**AUTH, "X-User-ID": f"{tag}-d"})
    client.get("/ready")
    activity = client.app.state.activity
    before = metric(client, "active_users", window="1d")
    counts = client.portal.call(activity.flush)
    assert counts["1d"] - before == 4 and counts["7d"] >= counts["1d"]
    assert metric(client, "active_users", window="1d") == counts["1d"]
    assert client.portal.call(activity.flush)["1d"] == counts["1d"]  # nothing new: the same count


def test_hours_add_up_as_a_union_and_a_day_slides(client, redis_server):
    cache = client.app.state.stores.cache
    start = 1_900_000_000.0 + HOUR * (uuid.uuid4().int % 10_000)  # an hour no other test used
    now = [start]
    gauge = _gauge()
    activity = ActiveUsers(cache, gauge, 15.0, clock=lambda: now[0])
    for user in ("u1", "u2", "u3"):
        activity.seen(user)
    assert client.portal.call(activity.flush) == {"1d": 3, "7d": 3}
    now[0] = start + 2 * HOUR
    for user in ("u2", "u4"):
        activity.seen(user)
    assert client.portal.call(activity.flush) == {"1d": 4, "7d": 4}
    # A day after the first hour it leaves the day (u1, u3 with it); the week keeps everyone.
    now[0] = start + 24 * HOUR
    assert client.portal.call(activity.flush) == {"1d": 2, "7d": 4}
    assert _value(gauge, "1d") == 2 and _value(gauge, "7d") == 4
    # Stored: a HyperLogLog per hour, expiring; no user id in the clear.
    raw = redis.Redis.from_url(redis_server.url())
    key = hour_key(start)
    assert raw.get(key).startswith(b"HYLL") and b"u1" not in raw.get(key)
    assert 0 < raw.ttl(key) <= KEEP_SECONDS


def test_an_unanswering_redis_keeps_the_users_for_the_next_flush(client):
    down = Cache(f"redis://127.0.0.1:{free_port()}/0", 0.5, CircuitBreaker("redis", 1.0, lambda *_: None))
    start = 1_950_000_000.0 + HOUR * (uuid.uuid4().int % 10_000)
    gauge = _gauge()
    activity = ActiveUsers(down, gauge, 15.0, clock=lambda: start)
    activity.seen("x1")
    activity.seen("x2")
    began = time.monotonic()
    assert client.portal.call(activity.flush) is None
    assert time.monotonic() - began < 2
    activity._cache = client.app.state.stores.cache
    assert client.portal.call(activity.flush) == {"1d": 2, "7d": 2}
    client.portal.call(down.close)
