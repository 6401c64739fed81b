"""Rows earlier releases accepted outside a listing's bounds (bounds.py), on the real PostgreSQL and milvus-lite: the
migration moves them to listings_quarantine and makes the bounds a constraint; a valuation in their city is served
instead of a 500; a vector Milvus still holds for one is no answer."""

import uuid

import psycopg
import pytest
from pymilvus import MilvusClient

from real_estate_api import schema
from real_estate_api.bounds import LISTING, within
from real_estate_api.stores import COLLECTION, listing_vector
from tests.app.helpers import AUTH, SHANGHAI, add_listings

ABSURD = [{"area_sqm": 1e-300}, {"area_sqm": float("nan")}, {"price": float("inf")}, {"bedrooms": 400}, {"latitude": 91.0}]


def test_the_bounds_are_the_request_schemas():
    from real_estate_api.app import ListingIn

    schema_bounds = {name: (f.metadata[0].ge, f.metadata[1].le) for name, f in ListingIn.model_fields.items()
                     if name in LISTING}
    assert schema_bounds == {name: (low, high) for name, (low, high) in LISTING.items()}
    assert within({"area_sqm": 5, "price": 1_000, "bedrooms": 0, "latitude": -90, "longitude": 180})
    assert not within({"area_sqm": 4.99, "price": 1_000, "bedrooms": 0, "latitude": -90, "longitude": 180})
    assert not within({"area_sqm": float("nan"), "price": 1_000, "bedrooms": 0, "latitude": 0, "longitude": 0})
    assert not within({"price": 1_000, "bedrooms": 0, "latitude": 0, "longitude": 0})


def _sql(postgres, query, params=()):
    with psycopg.connect(postgres.url("real_estate"), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else None


@pytest.mark.server
def test_absurd_rows_are_quarantined_and_valuations_served(client, postgres):
    city = f"Hygiene-{uuid.uuid4().hex[:6]}"
    add_listings(client, city, SHANGHAI, [900_000, 950_000, 1_000_000])
    # As an earlier release left the table: no bounds, absurd rows in the city.
    _sql(postgres, "ALTER TABLE listings DROP CONSTRAINT listings_within_bounds")
    base = {"area_sqm": 100.0, "bedrooms": 3, "price": 900_000.0, **SHANGHAI}
    for absurd in ABSURD:
        row = {**base, **absurd}
        _sql(postgres, "INSERT INTO listings (city, area_sqm, bedrooms, price, latitude, longitude) VALUES (%s, %s, %s, %s, %s, %s)",
             (city, row["area_sqm"], row["bedrooms"], row["price"], row["latitude"], row["longitude"]))
    _sql(postgres, "UPDATE schema_version SET version = 3")
    settings = client.app.state.settings
    assert client.portal.call(schema.migrate, settings.database_url, {}) is True
    (moved,) = _sql(postgres, "SELECT count(*) FROM listings_quarantine WHERE city = %s", (city,))
    assert moved[0] == len(ABSURD)
    assert _sql(postgres, "SELECT count(*) FROM listings WHERE city = %s", (city,))[0][0] == 3
    with pytest.raises(psycopg.errors.CheckViolation):
        _sql(postgres, "INSERT INTO listings (city, area_sqm, bedrooms, price, latitude, longitude) VALUES (%s, 1e-300, 1, 1000, 0, 0)", (city,))
    valuation = client.post("/v1/valuations", json={"city": city, "area_sqm": 100, "bedrooms": 3}, headers=AUTH)
    assert valuation.status_code == 200 and valuation.json()["comparables"] == 3
    # Added NOT VALID (no scan under the exclusive lock), then validated in a transaction of its own.
    assert _sql(postgres, "SELECT convalidated FROM pg_constraint WHERE conname = 'listings_within_bounds'") == [(True,)]
    # Migrated already: a second run changes nothing.
    assert client.portal.call(schema.migrate, settings.database_url, {}) is False


@pytest.mark.server
def test_a_vector_outside_the_bounds_is_no_answer(client, milvus):
    city = f"Stale-{uuid.uuid4().hex[:6]}"
    (good,) = add_listings(client, city, SHANGHAI, [900_000])
    # What Milvus may still hold for a quarantined row: its vector and its absurd values.
    absurd = {"city": city, "district": None, "price": 900_000.0, "area_sqm": 1e-300, "bedrooms": 3, **SHANGHAI}
    MilvusClient(uri=milvus.url()).upsert(COLLECTION, [{"id": 10**15 + uuid.uuid4().int % 10**6, **absurd,
                                                       "vector": listing_vector(900_000.0, 100.0, 3, *SHANGHAI.values())}])
    wish = {"user_id": "buyer", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
    body = client.post("/v1/recommendations", json=wish, headers=AUTH)
    assert body.status_code == 200
    assert body.json()["source"] == "vector" and [item["listing_id"] for item in body.json()["items"]] == [good]
