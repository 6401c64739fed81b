"""A/B variants and the in-app grey release: sticky per user, shares from config, visible in answers and metrics."""

import uuid

import pytest
from fastapi.testclient import TestClient

from real_estate_api.app import create_app
from real_estate_api.assignment import assign, bucket, user_id
from real_estate_api.config import load_properties, load_settings
from tests.app.conftest import PROPERTIES, TESTER_KEY
from tests.app.helpers import AUTH, SHANGHAI, add_listings, metric

EXPERIMENT = PROPERTIES.replace("grey_release.enabled=false\ngrey_release.percent=0\n", "") + """\
ab_test.enabled=true
ab_test.variant_b_percent=30
ab_test.variant_b.recommendation_model=content
grey_release.enabled=true
grey_release.percent=20
grey_release.features=valuation
"""


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "app.properties"
    path.write_text(EXPERIMENT)
    return load_properties(path)


def test_the_bucket_is_a_documented_stable_hash():
    # sha256("ab_test:alice")[:8] as a big-endian integer, modulo 10 000: the same on every pod and every release.
    assert bucket("ab_test", "alice") == int.from_bytes(__import__("hashlib").sha256(b"ab_test:alice").digest()[:8], "big") % 10_000
    assert bucket("ab_test", "alice") == bucket("ab_test", "alice") != bucket("grey_release", "alice")


def test_shares_follow_the_configured_percentages(experiment):
    users = [f"user-{i}" for i in range(10_000)]
    assignments = [assign(experiment, user, {}) for user in users]
    share_b = sum(a.variant == "b" for a in assignments) / len(users)
    share_grey = sum(a.grey for a in assignments) / len(users)
    assert 0.28 < share_b < 0.32 and 0.18 < share_grey < 0.22
    assert all(a.recommendation_model == ("content" if a.variant == "b" else "hybrid") for a in assignments)
    # Independent experiments: variant B users are not all in (or out of) the grey cohort.
    in_both = sum(a.variant == "b" and a.grey for a in assignments) / len(users)
    assert abs(in_both - share_b * share_grey) < 0.02


def test_the_user_id_comes_from_the_header_then_the_cookie_then_the_body():
    assert user_id({"x-user-id": "h"}, {"uid": "c"}, "b") == "h"
    assert user_id({}, {"uid": "c"}, "b") == "c"
    assert user_id({"x-user-id": "bad value!"}, {}, "b") == "b"
    assert user_id({}, {}) is None


def test_anonymous_users_get_variant_a_outside_the_grey_cohort(experiment):
    anonymous = assign(experiment, None, {})
    assert anonymous.variant == "a" and anonymous.grey is False


def test_testers_opt_in_and_out_of_the_grey_release_by_header(experiment):
    inside = next(f"u{i}" for i in range(1000) if assign(experiment, f"u{i}", {}).grey)
    outside = next(f"u{i}" for i in range(1000) if not assign(experiment, f"u{i}", {}).grey)
    assert assign(experiment, outside, {"x-grey-release": "on"}, tester=True).grey is True
    assert assign(experiment, inside, {"x-grey-release": "off"}, tester=True).grey is False
    assert assign(experiment, None, {"x-grey-release": "on"}, tester=True).grey is True
    # Anyone else's header changes nothing: their hash decides.
    assert assign(experiment, outside, {"x-grey-release": "on"}).grey is False
    assert assign(experiment, inside, {"x-grey-release": "off"}).grey is True


def test_a_switched_off_feature_stays_off_for_the_grey_cohort(tmp_path):
    path = tmp_path / "app.properties"
    path.write_text(EXPERIMENT.replace("feature.valuation.enabled=true", "feature.valuation.enabled=false"))
    properties = load_properties(path)
    assert assign(properties, None, {"x-grey-release": "on"}, tester=True).feature_on(properties, "valuation") is False


@pytest.mark.server
def test_variants_and_cohorts_through_the_api(env, properties_file):
    properties_file.write_text(EXPERIMENT)
    with TestClient(create_app(load_settings(env))) as client:
        city = f"AB-{uuid.uuid4().hex[:6]}"
        add_listings(client, city, SHANGHAI, [900_000, 950_000])
        wish = {"city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
        seen = {}
        for i in range(40):
            user = f"ab-user-{i}"
            first = client.post("/v1/recommendations", json={**wish, "user_id": user}, headers=AUTH)
            again = client.post("/v1/recommendations", json={**wish, "user_id": "someone"}, headers={**AUTH, "X-User-ID": user})
            assert first.status_code == 200 and first.json()["variant"] == again.json()["variant"] == first.headers["X-Variant"]
            seen[user] = first.json()
        variants = {body["variant"] for body in seen.values()}
        assert variants == {"a", "b"}
        assert all(body["model"] == {"a": "hybrid", "b": "content"}[body["variant"]] for body in seen.values())
        b_users = sum(body["variant"] == "b" for body in seen.values())
        assert metric(client, "recommendation_requests_total", variant="b", model="content") == 2 * b_users
        assert metric(client, "recommendation_success_total", variant="a", model="hybrid") == 2 * (40 - b_users)

        # Valuation is in the grey release: 404 outside the cohort, served inside it, and testers can opt in.
        outside = next(u for u in (f"g{i}" for i in range(1000)) if bucket("grey_release", u) >= 2000)
        body = {"city": city, "area_sqm": 80, "bedrooms": 2}
        refused = client.post("/v1/valuations", json=body, headers={**AUTH, "X-User-ID": outside})
        assert refused.status_code == 404 and refused.headers["X-Grey-Cohort"] == "out"
        # The header alone (any API key holder) changes nothing; with the tester key it opts in.
        forced = client.post("/v1/valuations", json=body, headers={**AUTH, "X-User-ID": outside, "X-Grey-Release": "on"})
        assert forced.status_code == 404 and forced.headers["X-Grey-Cohort"] == "out"
        wrong = client.post("/v1/valuations", json=body, headers={**AUTH, "X-User-ID": outside, "X-Grey-Release": "on",
                                                                 "X-Tester-Key": "t" * 40})
        assert wrong.status_code == 404
        opted_in = client.post("/v1/valuations", json=body, headers={**AUTH, "X-User-ID": outside, "X-Grey-Release": "on",
                                                                    "X-Tester-Key": TESTER_KEY})
        assert opted_in.status_code == 200 and opted_in.headers["X-Grey-Cohort"] == "in"
        inside = next(u for u in (f"g{i}" for i in range(1000)) if bucket("grey_release", u) < 2000)
        assert client.post("/v1/valuations", json=body, headers=AUTH, cookies={"uid": inside}).status_code == 200
