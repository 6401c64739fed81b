"""Helpers shared by the API tests: authentication, reading metrics back, waiting for state, seeding listings."""

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.app.conftest import API_KEY

AUTH = {"X-API-Key": API_KEY}
SHANGHAI = {"latitude": 31.23, "longitude": 121.47}
BEIJING = {"latitude": 39.90, "longitude": 116.40}


def metric(client, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none yet)."""
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def wait_for(check, seconds=30, interval=0.1):
    """Poll until check() is truthy; return its last value."""
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def wait_until_ready(client, seconds=30):
    """After a dependency comes back, the health monitor sees it within its interval (0.2 s in these tests)."""
    assert wait_for(lambda: client.get("/ready").json()["status"] == "ready", seconds), client.get("/ready").text


def add_listings(client, city, coords, prices, area=100.0, district=None):
    ids = []
    for price in prices:
        body = {"city": city, "area_sqm": area, "bedrooms": 3, "price": price, **coords}
        if district:
            body["district"] = district
        response = client.post("/v1/listings", json=body, headers=AUTH)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids
