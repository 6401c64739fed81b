"""The vector index audited against PostgreSQL with real PostgreSQL and milvus-lite: entries Milvus lost behind the
app's back (deleted here, as a restore older than the newest listings or a damaged log loses them) are found,
queued again and searchable again, without a request touching them."""

import itertools
import time
import uuid

import pytest
from pymilvus import MilvusClient

from tests.app.helpers import AUTH, SHANGHAI, add_listings, metric, wait_for

pytestmark = pytest.mark.server

_calls = itertools.count()
BUYER = {"user_id": "buyer", "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}


def _recommended(client, city) -> tuple[str, list[int]]:
    # A budget of its own each time: an answer cached in Redis would hide what Milvus holds now.
    budget = BUYER["budget"] + next(_calls)
    body = client.post("/v1/recommendations", json={**BUYER, "city": city, "budget": budget}, headers=AUTH).json()
    return body["source"], sorted(item["listing_id"] for item in body["items"])


def _call(client, method, *args):
    return client.portal.call(method, *args)


def test_entries_milvus_lost_are_found_and_indexed_again(client, milvus):
    city = f"Audit-{uuid.uuid4().hex[:6]}"
    ids = sorted(add_listings(client, city, SHANGHAI, [800_000, 850_000, 900_000]))
    assert _recommended(client, city) == ("vector", ids)
    listings = client.app.state.listings
    before = metric(client, "listing_index_repairs_total")
    assert _call(client, listings.audit, 0.0) == 0  # nothing lost yet: nothing touched

    MilvusClient(uri=milvus.url()).delete("listings", ids=ids[:2])
    # PostgreSQL still says indexed and the backlog, a few reconciles later, says 0: only the audit sees the loss.
    time.sleep(1.5)
    assert wait_for(lambda: metric(client, "listing_index_backlog") == 0, 5)
    assert _recommended(client, city)[1] == ids[2:]

    assert _call(client, listings.audit, 0.0) == 2
    assert metric(client, "listing_index_repairs_total") == before + 2
    assert metric(client, "listing_index_audit_timestamp_seconds") > 0
    assert _call(client, listings.reconcile, 0.0) >= 2
    assert _recommended(client, city) == ("vector", ids)
    assert _call(client, listings.audit, 0.0) == 0


def test_one_pod_audits_per_interval_and_asking_early_writes_nothing(client):
    postgres = client.app.state.stores.postgres
    run = postgres.run
    _call(client, run, "UPDATE maintenance_runs SET started_at = '-infinity' WHERE name = %s", ("listing-index-audit",), "none")
    assert _call(client, postgres.claim, "listing-index-audit", 3600.0) is True
    wal = "SELECT pg_current_wal_insert_lsn()::text AS lsn"
    before = _call(client, run, wal, (), "one")["lsn"]
    assert _call(client, postgres.claim, "listing-index-audit", 3600.0) is False  # another pod, within the hour
    # Not due: no row locked, no transaction id, no commit record. Every pod asks every 10 s; an idle database
    # must stay idle, or archive_timeout switches a WAL segment every minute.
    assert _call(client, run, wal, (), "one")["lsn"] == before
    assert _call(client, postgres.claim, "listing-index-audit", 0.0) is True  # once the interval has passed
