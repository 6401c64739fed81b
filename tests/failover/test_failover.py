"""Failover for real: Debian's Patroni, etcd and PostgreSQL, three members with the prod stack's Patroni settings.

The primary is killed (SIGKILL to Patroni and every PostgreSQL process: a node lost) under a steady write load.
Synchronous mode must lose no acknowledged commit; writes must resume within the lease; the old primary must
come back as a replica. A planned switchover must lose nothing either.
"""

import os
import shutil

import pytest

from tests.failover.patroni_cluster import PatroniCluster, failover_once, prod_dcs, switchover_once

# CI installs both (.ci/run); only a developer machine without them may skip.
pytestmark = [pytest.mark.server, pytest.mark.skipif(
    not os.environ.get("CI") and not (shutil.which("patroni") and shutil.which("etcd")),
    reason="needs Debian's patroni and etcd-server",
)]


@pytest.fixture(scope="module")
def cluster():
    instance = PatroniCluster(prod_dcs()).start()
    yield instance
    instance.cleanup()


def test_members_run_the_prod_stack_settings(cluster):
    dcs = prod_dcs()
    assert dcs["synchronous_mode"] is True and dcs["ttl"] == 15 and dcs["loop_wait"] == 5
    assert cluster.sync_standby() is not None


def test_killing_the_primary_loses_no_commit_and_the_old_primary_rejoins(cluster):
    dcs = prod_dcs()
    result = failover_once(cluster)
    assert result.lost == 0, result
    assert result.acknowledged > 100, result
    # The lease must run out before a replica may take over; it must not take much longer than that.
    assert result.write_outage_seconds <= dcs["ttl"] + dcs["loop_wait"] + 5, result
    assert result.new_primary != result.old_primary
    assert result.rejoin_seconds < 120, result


def test_a_switchover_loses_no_commit(cluster):
    result = switchover_once(cluster)
    assert result.lost == 0, result
    assert result.new_primary != result.old_primary
    # A planned switchover does not wait for a lease: writes pause for seconds, not a lease period.
    assert result.write_outage_seconds < prod_dcs()["ttl"], result
