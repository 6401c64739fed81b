"""A standby cluster in a second region for real (Debian's Patroni, etcd and PostgreSQL on loopback): it follows the
primary region by streaming, the primary region is lost whole, and the standby is promoted the way the operator
promotes one (spec.standby.enabled: false → Patroni's dynamic configuration without standby_cluster)."""

import os
import shutil

import pytest

from tests.failover.patroni_cluster import PatroniCluster, prod_dcs
from tests.failover.standby_cluster import StandbyCluster, region_loss_once

pytestmark = [pytest.mark.server, pytest.mark.skipif(
    not os.environ.get("CI") and not (shutil.which("patroni") and shutil.which("etcd")),
    reason="needs Debian's patroni and etcd-server",
)]


@pytest.fixture
def regions():
    primary = PatroniCluster(prod_dcs(), members=2, scope="region-a").start()
    standby = None
    try:
        standby = StandbyCluster(primary).start()
        yield primary, standby
    finally:
        primary.cleanup()
        if standby is not None:
            standby.cleanup()


def test_the_standby_region_is_promoted_with_seconds_of_loss_at_most(regions):
    primary, standby = regions
    result = region_loss_once(primary, standby)
    assert result.acknowledged > 100, result
    # Asynchronous streaming between regions: what was in flight when the region went, never more than 5 s of it.
    assert result.rpo_seconds <= 5, result
    # The spec's RTO is 4 h; the goal is minutes. Patroni promotes within a loop or two.
    assert result.promotion_seconds <= 60, result
    # It is a primary of its own now: its replica follows it.
    assert standby.leader() is not None and standby.streaming_replicas()
