"""Correctness and abuse: hostile and absurd input, oversized bodies, Unicode filters, idempotent writes that
converge with Milvus, budgets, robust confidence, one feedback per valuation, errors that carry the request id."""

import socket
import time
import uuid
from urllib.parse import urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from pymilvus import MilvusClient

from real_estate_api.app import create_app
from real_estate_api.config import load_settings
from real_estate_api.stores import string_literal
from tests.app.helpers import AUTH, SHANGHAI, add_listings, metric, wait_for

pytestmark = pytest.mark.server

LISTING = {"area_sqm": 100, "bedrooms": 3, "price": 900_000, **SHANGHAI}


def recommend(client, city, **overrides):
    body = {"user_id": "buyer", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI, **overrides}
    response = client.post("/v1/recommendations", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", ["上海", "München", "O'Brien Town", "São Paulo"])
def test_non_ascii_and_quoted_cities_are_found(client, name):
    city = f"{name} {uuid.uuid4().hex[:4]}"
    (listing,) = add_listings(client, city, SHANGHAI, [900_000])
    body = recommend(client, city)
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [listing]
    assert body["items"][0]["city"] == city


def test_filter_literals_cannot_break_out_of_the_string(milvus):
    # The API's city pattern refuses quotes and backslashes; the literal builder must hold on its own too.
    assert string_literal('a"b\\c') == '"a\\"b\\\\c"' and string_literal("上海") == '"上海"'
    with pytest.raises(ValueError):
        string_literal("line\nbreak")
    client = MilvusClient(uri=milvus.url())
    name = f"literal_{uuid.uuid4().hex[:6]}"
    client.create_collection(name, dimension=2, metric_type="L2", auto_id=False)
    hostile = 'x" or city != "'
    client.insert(name, [{"id": 1, "vector": [0, 0], "city": hostile}, {"id": 2, "vector": [0, 0], "city": "y"}])
    hits = client.search(name, data=[[0, 0]], limit=5, filter="city == " + string_literal(hostile))[0]
    assert [hit["id"] for hit in hits] == [1]


@pytest.mark.parametrize("field,value", [("area_sqm", 1e-300), ("area_sqm", 4.9), ("area_sqm", 100_001), ("price", 999),
                                         ("price", 1.1e11), ("bedrooms", 51), ("latitude", 90.5)])
def test_numbers_outside_physical_sense_are_refused(client, field, value):
    response = client.post("/v1/listings", json={"city": "Bounds", **LISTING, field: value}, headers=AUTH)
    assert response.status_code == 422 and [d["field"] for d in response.json()["details"]] == [f"body.{field}"]


@pytest.mark.parametrize("field,value", [("area_sqm", 5), ("area_sqm", 100_000), ("price", 1_000), ("price", 1e11)])
def test_numbers_at_the_bounds_are_accepted(client, field, value):
    response = client.post("/v1/listings", json={"city": f"Bounds-{uuid.uuid4().hex[:4]}", **LISTING, field: value}, headers=AUTH)
    assert response.status_code == 201, response.text


def test_nan_and_infinity_are_refused(client):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"city": "X", "area_sqm": ' + literal + b', "bedrooms": 1}'
        response = client.post("/v1/valuations", content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 422, literal


def test_an_unexpected_error_is_a_500_carrying_the_request_id(client, monkeypatch):
    async def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app.state.stores.postgres, "price_per_sqm_quartiles", broken)
    response = client.post("/v1/valuations", json={"city": "Bug", "area_sqm": 50, "bedrooms": 1},
                           headers={**AUTH, "X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "request_id": "bug-1"} and response.headers["X-Request-ID"] == "bug-1"
    assert metric(client, "http_requests_total", route="/v1/valuations", status="500") >= 1


def _raw(base, request: bytes, body: bytes = b"") -> tuple[str, float]:
    """Send headers (and maybe part of a body) on a raw socket; the status line and how long it took to come."""
    address = urlparse(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request + body)
        status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        return status, time.monotonic() - started


def test_the_key_is_checked_and_the_size_refused_before_the_body_is_read(server):
    _, base = server
    huge = 16 * 1024 * 1024
    # No body is ever sent: the answers come from the headers alone.
    status, _ = _raw(base, f"POST /v1/listings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {huge}\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 401")
    status, _ = _raw(base, (f"POST /v1/listings HTTP/1.1\r\nHost: x\r\nX-API-Key: {AUTH['X-API-Key']}\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {huge}\r\n\r\n").encode())
    assert status.startswith("HTTP/1.1 413")
    # Chunked, with no length to check first: refused once past the limit (64 KiB), not after 16 MB.
    chunk = b"a" * 65536
    status, _ = _raw(base, (f"POST /v1/listings HTTP/1.1\r\nHost: x\r\nX-API-Key: {AUTH['X-API-Key']}\r\n"
                            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode(),
                     b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2)
    assert status.startswith("HTTP/1.1 413")
    assert httpx.get(f"{base}/health", timeout=2).status_code == 200


def test_budget_is_a_hard_limit_for_every_model_and_the_fallback(env, properties_file, milvus):
    city = f"Budget-{uuid.uuid4().hex[:6]}"
    for model in ("hybrid", "content", "collaborative"):
        properties_file.write_text(properties_file.read_text().replace("recommendation.model=hybrid", f"recommendation.model={model}")
                                   .replace("recommendation.model=content", f"recommendation.model={model}")
                                   .replace("recommendation.model=collaborative", f"recommendation.model={model}"))
        with TestClient(create_app(load_settings(env))) as client:
            if model == "hybrid":
                within, _ = add_listings(client, city, SHANGHAI, [1_000_000, 1_050_000])
            body = recommend(client, city, area_sqm=101)
            assert body["model"] == model and [item["listing_id"] for item in body["items"]] == [within], model
    milvus.stop()
    try:
        with TestClient(create_app(load_settings(env))) as client:
            body = recommend(client, city, area_sqm=102)
    finally:
        milvus.start()
    assert body["source"] == "rules" and [item["listing_id"] for item in body["items"]] == [within]


def test_one_outlier_does_not_collapse_the_confidence(client):
    city = f"Outlier-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [1_000_000 + 10_000 * i for i in range(10)] + [90_000_000])
    body = client.post("/v1/valuations", json={"city": city, "area_sqm": 100, "bedrooms": 3}, headers=AUTH).json()
    # pstdev / mean over these is 2.9: the old formula gave confidence 0. The quartiles barely notice the outlier.
    assert body["confidence"] >= 0.95 and body["low_confidence"] is False
    assert body["estimate"] == pytest.approx(1_050_000, rel=0.01)


def test_feedback_once_per_valuation_and_within_reason(client):
    city = f"Feedback-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [1_000_000] * 3)
    valuation = client.post("/v1/valuations", json={"city": city, "area_sqm": 100, "bedrooms": 3}, headers=AUTH).json()
    url = f"/v1/valuations/{valuation['valuation_id']}/feedback"
    absurd = client.post(url, json={"actual_price": 100_000_001}, headers=AUTH)
    assert absurd.status_code == 422 and "within a factor of 10 of the estimate (1000000.00)" in absurd.json()["error"]
    assert client.post(url, json={"actual_price": 100_000}, headers=AUTH).status_code == 200  # exactly a tenth
    again = client.post(url, json={"actual_price": 1_000_000}, headers=AUTH)
    assert again.status_code == 409 and again.json()["error"].endswith("already has its actual price")


def test_a_listing_write_is_idempotent_and_converges_when_milvus_fails_mid_write(client, milvus):
    city = f"Converge-{uuid.uuid4().hex[:6]}"
    headers = {**AUTH, "Idempotency-Key": f"listing-{uuid.uuid4().hex}"}
    deferred_before = metric(client, "listing_writes_total", result="deferred")
    milvus.stop()
    try:
        first = client.post("/v1/listings", json={"city": city, **LISTING}, headers=headers)
        # The client retries (it saw a 202, or a timeout): the same row, not a second one.
        retry = client.post("/v1/listings", json={"city": city, **LISTING}, headers=headers)
        backlog = wait_for(lambda: metric(client, "listing_index_backlog") >= 1, 10)
    finally:
        milvus.start()
    assert first.status_code == 202 and first.json()["indexed"] is False and first.json()["replayed"] is False
    assert retry.status_code == 202 and retry.json()["id"] == first.json()["id"] and retry.json()["replayed"] is True
    assert backlog and metric(client, "listing_writes_total", result="deferred") == deferred_before + 2
    # The reconciler (every 0.5 s here, rows older than 5 s) indexes it without another request.
    assert wait_for(lambda: metric(client, "listing_index_backlog") == 0, 30)
    body = recommend(client, city)
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [first.json()["id"]]
    replay = client.post("/v1/listings", json={"city": city, **LISTING}, headers=headers)
    assert replay.status_code == 200 and replay.json() == {"id": first.json()["id"], "indexed": True, "replayed": True}
    count = client.portal.call(client.app.state.stores.postgres.run, "SELECT count(*) AS n FROM listings WHERE city = %s", (city,), "one")
    assert count["n"] == 1


def test_a_bad_idempotency_key_is_refused(client):
    response = client.post("/v1/listings", json={"city": "X", **LISTING}, headers={**AUTH, "Idempotency-Key": "no spaces"})
    assert response.status_code == 422 and response.json()["details"][0]["field"] == "header.idempotency-key"


def test_an_idempotency_key_reused_for_another_listing_is_refused(client):
    headers = {**AUTH, "Idempotency-Key": f"reuse-{uuid.uuid4().hex}"}
    first = client.post("/v1/listings", json={"city": "Reuse", **LISTING}, headers=headers)
    other = client.post("/v1/listings", json={"city": "Reuse", **LISTING, "price": 950_000}, headers=headers)
    assert first.status_code == 201
    assert other.status_code == 409 and other.json() == {"error": "this Idempotency-Key was used for a different listing",
                                                         "id": first.json()["id"]}
