"""The PostgreSQL cluster's alert expressions against what a real cluster exposes: Debian's Patroni and etcd, two
members with the prod stack's Patroni settings (synchronous), each member's REST API /metrics scraped as the
`patroni` PodMonitor does, Debian's postgres_exporter on the primary logged in as the `metrics` role with the
cluster's init SQL; a real Prometheus with the repository's rules. promtool's cases fix the thresholds and `for:`;
these prove the metric names, labels and meanings the rules rely on, in the states that raise them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import psycopg
import pytest

from components.postgres import INIT_SQL
from components.postgres_exporter import ROLE
from tests.failover.patroni_cluster import SUPERUSER_PASSWORD, PatroniCluster, prod_dcs
from tests.monitoring.rules import alerts
from tests.monitoring.stack import scraping, wait_until
from tests.services import free_port, wait_for_port

pytestmark = [pytest.mark.server, pytest.mark.skipif(
    not os.environ.get("CI") and not (shutil.which("patroni") and shutil.which("etcd")),
    reason="needs Debian's patroni and etcd-server",
)]
PASSWORD = "metrics-password-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("patroni-signals")
    cluster = PatroniCluster(prod_dcs(), members=2, scope="signals").start()
    leader = cluster.leader()
    with psycopg.connect(cluster.conninfo(), autocommit=True) as db:
        db.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        db.execute(INIT_SQL)
    port = free_port()
    env = {**os.environ, "DATA_SOURCE_NAME": f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{leader.pg_port}/postgres?sslmode=disable"}
    exporter = subprocess.Popen(["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(base / "exporter.log", "w"))
    wait_for_port(port, 30)
    # One target per member, as the PodMonitor gives: job "patroni", the member's pod.
    members = {m.api_port: {"pod": f"postgres-instance1-{m.name}-0"} for m in cluster.members}
    try:
        with scraping({"patroni": members, "postgres-exporter": port}) as stack:
            yield cluster, stack
    finally:
        exporter.terminate()
        exporter.wait(10)
        cluster.cleanup()


def _replica(cluster: PatroniCluster):
    (replica,) = [m for m in cluster.members if m is not cluster.leader()]
    return replica


def test_a_healthy_synchronous_cluster_raises_nothing(cluster):
    cluster, stack = cluster
    wait_until(lambda: stack.query('count(patroni_primary{job="patroni"}) == 2'), 60, "Prometheus scraping both members")
    wait_until(lambda: stack.query('pg_stat_replication_pg_wal_lsn_diff{job="postgres-exporter", state="streaming"}'), 60,
               "the exporter reporting the streaming replica")
    # What the rules assume the metrics mean: one leader, one synchronous standby, the standby named as Patroni names it.
    assert stack.query('sum(patroni_primary{job="patroni"})')[0]["value"][1] == "1"
    assert stack.query('sum(patroni_sync_standby{job="patroni"})')[0]["value"][1] == "1"
    (lag,) = stack.query('pg_stat_replication_pg_wal_lsn_diff{job="postgres-exporter"}')
    assert lag["metric"]["application_name"] == _replica(cluster).name
    for alert in ("PostgresNoLeader", "PostgresSynchronousStandbyMissing", "PostgresReplicaLagging"):
        assert stack.query(alerts()[alert]["expr"]) == [], alert
    # Every Patroni metric a rule reads is one Patroni really serves (a misspelt name would keep its alert silent).
    read = {name for rule in alerts().values() for name in re.findall(r"\b(patroni_[a-z_]+)\{", rule["expr"])}
    assert read == {"patroni_primary", "patroni_standby_leader", "patroni_sync_standby"}
    for name in read:
        assert stack.query(f'count({name}{{job="patroni"}}) == 2'), name


def test_a_replica_whose_replay_stops_is_seen_lagging(cluster):
    cluster, stack = cluster
    replica = _replica(cluster)
    standby_url = f"host=127.0.0.1 port={replica.pg_port} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as db:
        db.execute("CREATE TABLE hold (n int)")
        # Replay holds behind a standby query for as long as it runs (Patroni resumes a paused replay by itself).
        with psycopg.connect(standby_url, autocommit=True) as standby:
            standby.execute("ALTER SYSTEM SET max_standby_streaming_delay = -1")
            standby.execute("SELECT pg_reload_conf()")
            wait_until(lambda: standby.execute("SELECT to_regclass('hold')").fetchone()[0], 30, "the table on the replica")
        reader = psycopg.connect(standby_url)
        try:
            reader.execute("SELECT * FROM hold")  # a transaction holding the table: the DROP cannot be replayed
            # The DROP, then 3 MiB and more of WAL the replica receives (commits wait for its flush) but cannot replay.
            db.execute("DROP TABLE hold")
            db.execute("CREATE TABLE filler AS SELECT generate_series(1, 100000) AS n")
            (series,) = wait_until(lambda: stack.query(alerts()["PostgresReplicaLagging"]["expr"]), 60,
                                   "the lag expression matching a replica whose replay is held")
            assert series["metric"]["application_name"] == replica.name and series["metric"]["namespace"] == "real-estate"
            assert float(series["value"][1]) > 2**20
        finally:
            reader.rollback()
            reader.close()
    wait_until(lambda: stack.query(alerts()["PostgresReplicaLagging"]["expr"]) == [], 60, "the replica catching up")


def test_the_only_replica_stopped_leaves_no_synchronous_standby_and_a_leader(cluster):
    cluster, stack = cluster
    _replica(cluster).stop()
    (series,) = wait_until(lambda: stack.query(alerts()["PostgresSynchronousStandbyMissing"]["expr"]), 90,
                           "the synchronous-standby expression matching a leader alone")
    assert series["metric"]["namespace"] == "real-estate"
    assert stack.query(alerts()["PostgresNoLeader"]["expr"]) == []

