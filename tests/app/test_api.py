"""The API against real PostgreSQL, Redis and milvus-lite servers."""

import logging
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from real_estate_api.app import create_app
from real_estate_api.config import load_settings
from tests.app.conftest import API_KEY
from tests.app.helpers import AUTH, BEIJING, SHANGHAI, add_listings, metric, wait_for, wait_until_ready
from tests.services import free_port

pytestmark = pytest.mark.server


def test_health_version_and_request_id(client):
    response = client.get("/health", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"] == "trace-42"
    assert client.get("/version").json() == {"name": "real-estate-ai", "version": "1.4.2", "revision": "abc1234"}
    assert len(client.get("/health").headers["X-Request-ID"]) == 32


def test_ready_when_all_dependencies_answer(client):
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["dependencies"] == {"postgres": "ok", "redis": "ok", "milvus": "ok"}
    assert "failed" not in body and body["checked_at"] > time.time() - 5
    assert metric(client, "dependency_up", dependency="milvus") == 1.0


@pytest.mark.parametrize("dependency", ["postgres", "redis", "milvus"])
def test_a_dependency_outage_keeps_the_pod_in_service_and_names_it(client, dependency, postgres, redis_server, milvus):
    # Every pod shares the outage: failing readiness would take them all out at once (app/real_estate_api/health.py).
    server = {"postgres": postgres, "redis": redis_server, "milvus": milvus}[dependency]
    wait_until_ready(client)
    server.stop()
    try:
        body = wait_for(lambda: (r := client.get("/ready")).json()["status"] == "degraded" and r.json(), 15)
        assert body, client.get("/ready").text
        assert client.get("/ready").status_code == 200
        assert list(body["failed"]) == [dependency] and body["dependencies"][dependency] == "unavailable"
        assert metric(client, "dependency_up", dependency=dependency) == 0.0
        assert client.get("/health").status_code == 200
    finally:
        server.start()
    wait_until_ready(client)
    assert metric(client, "dependency_up", dependency=dependency) == 1.0


def test_not_ready_until_postgres_has_answered_once(env):
    # A wrong address (or password, or network policy) must keep a new pod out of service.
    settings = load_settings({**env, "DATABASE_URL": f"postgresql://app:x@127.0.0.1:{free_port()}/real_estate"})
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "not ready" and response.json()["failed"] == {"postgres": "OperationalError"}


def test_business_endpoints_need_the_api_key(client):
    wish = {"user_id": "u1", "budget": 1e6, "area_sqm": 90, "bedrooms": 2, **SHANGHAI}
    assert client.post("/v1/recommendations", json=wish).status_code == 401
    assert client.post("/v1/recommendations", json=wish, headers={"X-API-Key": "wrong" * 5}).status_code == 401
    assert client.post("/v1/valuations", json={"city": "X", "area_sqm": 50, "bedrooms": 1}).status_code == 401
    assert "X-API-Key" in client.post("/v1/listings", json={}).json()["error"]


def test_recommendations_rank_by_similarity_within_budget_and_use_the_cache(client):
    city = f"Shanghai-{uuid.uuid4().hex[:6]}"
    cheap, mid, expensive = add_listings(client, city, SHANGHAI, [800_000, 1_000_000, 5_000_000])
    add_listings(client, f"Beijing-{uuid.uuid4().hex[:6]}", BEIJING, [1_000_000])
    wish = {"user_id": "buyer-1", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
    requests_before = metric(client, "recommendation_requests_total", model="hybrid")
    success_before = metric(client, "recommendation_success_total", model="hybrid")

    first = client.post("/v1/recommendations", json=wish, headers=AUTH)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["model"] == "hybrid" and body["top_k"] == 3 and body["cache"] == "miss"
    assert [item["listing_id"] for item in body["items"]] == [mid, cheap]  # 5M is over budget
    assert all(item["city"] == city for item in body["items"])

    assert metric(client, "dependency_request_duration_seconds_count", dependency="milvus") >= 1
    second = client.post("/v1/recommendations", json=wish, headers=AUTH).json()
    assert second["cache"] == "hit" and second["items"] == body["items"]
    assert metric(client, "recommendation_requests_total", model="hybrid") == requests_before + 2
    assert metric(client, "recommendation_success_total", model="hybrid") == success_before + 2
    assert metric(client, "recommendation_cache_total", result="hit") >= 1

    nothing = client.post("/v1/recommendations", json={**wish, "city": "Nowhere", "user_id": "b2"}, headers=AUTH).json()
    assert nothing["items"] == []
    assert metric(client, "recommendation_success_total", model="hybrid") == success_before + 2
    assert metric(client, "recommendation_requests_total", model="hybrid") == requests_before + 3


def test_cache_outage_degrades_instead_of_failing(client, redis_server):
    city = f"Hangzhou-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000])
    wish = {"user_id": "buyer-2", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
    redis_server.stop()
    try:
        response = client.post("/v1/recommendations", json=wish, headers=AUTH)
    finally:
        redis_server.start()
        wait_until_ready(client)
    assert response.status_code == 200, response.text
    assert response.json()["cache"] == "unavailable" and len(response.json()["items"]) == 1
    assert metric(client, "recommendation_cache_total", result="unavailable") >= 1


def test_valuation_from_comparables_and_accuracy_feedback(client):
    city = f"Shenzhen-{uuid.uuid4().hex[:6]}"
    # Price per square metre 10k, 10.5k, 11k, ... over 10 listings: median 12.25k.
    add_listings(client, city, SHANGHAI, [100 * (10_000 + 500 * i) for i in range(10)], district="Nanshan")
    success_before = metric(client, "valuation_success_total", model="xgboost")
    response = client.post("/v1/valuations", json={"city": city, "district": "Nanshan", "area_sqm": 80, "bedrooms": 2}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["estimate"] == pytest.approx(12_250 * 80)
    assert body["comparables"] == 10 and body["comparables_scope"] == "district"
    assert body["model"] == "xgboost" and body["method"] == "comparable-median"
    # Quartiles 11 125 and 13 375: dispersion 2250 / 24 500, confidence 1 × (1 − 0.0918).
    assert body["confidence"] == 0.908 and body["low_confidence"] is False
    assert metric(client, "valuation_success_total", model="xgboost") == success_before + 1

    accurate_before = metric(client, "valuation_feedback_total", outcome="accurate")
    feedback = client.post(f"/v1/valuations/{body['valuation_id']}/feedback", json={"actual_price": 1_000_000}, headers=AUTH)
    assert feedback.status_code == 200
    assert feedback.json()["absolute_percentage_error"] == pytest.approx(0.02)
    assert metric(client, "valuation_feedback_total", outcome="accurate") == accurate_before + 1
    assert metric(client, "valuation_absolute_percentage_error_count") >= 1

    missing = client.post(f"/v1/valuations/{uuid.uuid4()}/feedback", json={"actual_price": 1_000_000}, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"].startswith("no valuation ")


def test_few_comparables_give_a_low_confidence_valuation(client):
    city = f"Chengdu-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [1_000_000, 2_000_000])
    requests_before = metric(client, "valuation_requests_total", model="xgboost")
    success_before = metric(client, "valuation_success_total", model="xgboost")
    body = client.post("/v1/valuations", json={"city": city, "area_sqm": 100, "bedrooms": 3}, headers=AUTH).json()
    # Two comparables (0.2) with quartiles 12 500 and 17 500 (dispersion 5000 / 30 000): 0.2 × 0.833.
    assert body["low_confidence"] is True and body["confidence"] == 0.167
    assert metric(client, "valuation_requests_total", model="xgboost") == requests_before + 1
    assert metric(client, "valuation_success_total", model="xgboost") == success_before


def test_valuation_without_comparables_is_a_clear_4xx(client):
    response = client.post("/v1/valuations", json={"city": "Atlantis", "area_sqm": 100, "bedrooms": 3}, headers=AUTH)
    assert response.status_code == 422
    assert "no comparable listings in Atlantis" in response.json()["error"]


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/valuations", {"city": "Shanghai", "area_sqm": -5, "bedrooms": 3}, "body.area_sqm"),
        ("/v1/valuations", {"city": "Shanghai", "area_sqm": 50}, "body.bedrooms"),
        ("/v1/valuations", {"city": "'; DROP TABLE listings; --", "area_sqm": 50, "bedrooms": 1}, "body.city"),
        ("/v1/valuations", {"city": "Shanghai", "area_sqm": "big", "bedrooms": 1}, "body.area_sqm"),
        ("/v1/recommendations", {"user_id": "u", "budget": 1, "area_sqm": 1, "bedrooms": 1, "latitude": 91, "longitude": 0}, "body.latitude"),
        ("/v1/recommendations", {"user_id": "u", "budget": 1, "area_sqm": 1, "bedrooms": 1, "latitude": 0, "longitude": 0, "top_k": 500}, "body.top_k"),
        ("/v1/recommendations", {"user_id": "u", "budget": 1, "area_sqm": 1, "bedrooms": 1, "latitude": 0, "longitude": 0, "extra": 1}, "body.extra"),
        ("/v1/listings", {"city": "X", "area_sqm": 1, "bedrooms": 1, "price": 0, "latitude": 0, "longitude": 0}, "body.price"),
        ("/v1/valuations/not-a-uuid/feedback", {"actual_price": 10}, "path.valuation_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, path, body, field):
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["details"]]


def test_malformed_json_is_a_4xx(client):
    response = client.post("/v1/valuations", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422


def test_database_outage_is_a_503_for_valuations(client, postgres):
    postgres.stop()
    try:
        response = client.post("/v1/valuations", json={"city": "Shanghai", "area_sqm": 100, "bedrooms": 3}, headers=AUTH)
    finally:
        postgres.start()
        wait_until_ready(client)
    assert response.status_code == 503 and response.json()["dependency"] == "postgres"


def test_disabled_feature_is_refused(env, properties_file):
    properties_file.write_text(properties_file.read_text().replace("feature.valuation.enabled=true", "feature.valuation.enabled=false"))
    with TestClient(create_app(load_settings(env))) as client:
        response = client.post("/v1/valuations", json={"city": "Shanghai", "area_sqm": 100, "bedrooms": 3}, headers=AUTH)
        assert response.status_code == 404 and response.json()["error"] == "feature 'valuation' is disabled"
        assert client.post("/v1/recommendations", json={"user_id": "u"}, headers=AUTH).status_code == 422


def test_request_metrics_by_route_and_status(client):
    before = metric(client, "http_requests_total", method="GET", route="/health", status="200")
    client.get("/health")
    client.get("/health")
    assert metric(client, "http_requests_total", method="GET", route="/health", status="200") == before + 2
    client.get("/no-such-page")
    assert metric(client, "http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert metric(client, "http_request_duration_seconds_count", method="GET", route="/health") >= 2
    assert 'app_build_info{revision="abc1234",version="1.4.2"} 1.0' in client.get("/metrics").text


def test_requests_refused_before_routing_count_under_their_route(client):
    route = "/v1/valuations/{valuation_id}/feedback"
    refused = {"401": metric(client, "http_requests_total", method="POST", route=route, status="401"),
               "413": metric(client, "http_requests_total", method="POST", route="/v1/listings", status="413")}
    assert client.post("/v1/valuations/7f1c3c2e-0000-4000-8000-000000000000/feedback", json={}).status_code == 401
    big = client.post("/v1/listings", content=b"{" + b" " * 70_000 + b"}", headers={**AUTH, "Content-Type": "application/json"})
    assert big.status_code == 413
    assert metric(client, "http_requests_total", method="POST", route=route, status="401") == refused["401"] + 1
    assert metric(client, "http_requests_total", method="POST", route="/v1/listings", status="413") == refused["413"] + 1
    # A path no route matches stays "unmatched", whatever it is: the label's values are the routes'.
    assert client.post("/v1/anything-else", json={}).status_code == 401
    assert metric(client, "http_requests_total", method="POST", route="unmatched", status="401") >= 1


def test_the_grey_cohort_is_a_label_of_the_business_metrics(client):
    wish = {"user_id": "cohort-user", "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, "latitude": 31.2, "longitude": 121.5}
    response = client.post("/v1/recommendations", json=wish, headers=AUTH)
    cohort = response.headers["X-Grey-Cohort"]
    assert cohort in ("in", "out")
    assert metric(client, "recommendation_requests_total", cohort=cohort, variant=response.headers["X-Variant"]) >= 1


def test_secrets_never_reach_logs_or_error_bodies(client, env, postgres, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = [client.post("/v1/valuations", json={}, headers={"X-API-Key": "x" * 20}).text]
    postgres.stop()
    try:
        bodies.append(client.post("/v1/valuations", json={"city": "Shanghai", "area_sqm": 10, "bedrooms": 1}, headers=AUTH).text)
        bodies.append(client.get("/ready").text)
    finally:
        postgres.start()
        wait_until_ready(client)
    text = caplog.text + "".join(bodies) + "".join(str(r.__dict__) for r in caplog.records)
    assert "dependency unavailable" in text
    for secret in (API_KEY, postgres.password, env["REDIS_URL"].split("@")[0].split(":")[-1]):
        assert secret not in text


# What each business route can answer besides success, as the code produces it: GuardRequests (401, 408, 413, 503
# in flight), validation (422), a switched-off feature (404), the stores (404, 409, 503).
ROUTE_STATUSES = {
    ("post", "/v1/listings"): {200, 201, 202, 401, 408, 409, 413, 422, 503},
    ("post", "/v1/recommendations"): {200, 401, 404, 408, 413, 422, 503},
    ("post", "/v1/valuations"): {200, 401, 404, 408, 413, 422, 503},
    ("post", "/v1/valuations/{valuation_id}/feedback"): {200, 401, 404, 408, 409, 413, 422, 503},
}


def test_the_openapi_document_declares_every_answer(client):
    document = client.get("/openapi.json").json()
    for (method, path), statuses in ROUTE_STATUSES.items():
        declared = {int(code) for code in document["paths"][path][method]["responses"]}
        assert declared == statuses, (path, declared ^ statuses)
        errors = document["paths"][path][method]["responses"]["401"]["content"]["application/json"]["schema"]
        assert errors == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "request_id"}


def test_synthetic_requests_are_served_but_not_counted_as_users(client):
    wish = {"user_id": f"synthetic-{uuid.uuid4().hex[:6]}", "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3,
            "latitude": 31.2, "longitude": 121.5}
    before = metric(client, "recommendation_requests_total")
    response = client.post("/v1/recommendations", json=wish, headers={**AUTH, "X-Synthetic": "blackbox"})
    assert response.status_code == 200
    assert metric(client, "recommendation_requests_total") == before
    assert wish["user_id"] not in client.app.state.activity._pending
    client.post("/v1/recommendations", json=wish, headers=AUTH)
    assert metric(client, "recommendation_requests_total") == before + 1
    assert wish["user_id"] in client.app.state.activity._pending
