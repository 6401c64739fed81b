"""Alert expressions against what the exporters really expose, scraped by a real Prometheus with the repository's
rules. promtool's cases fix the thresholds and `for:`; these prove the expressions match the exporters' metric names
and labels, and that the exporters run as the platform configures them:

- PostgreSQL whose archive_command fails, Debian's postgres_exporter logged in as the `metrics` role with the
  cluster's init SQL and credentials from files (as the Deployment runs it);
- Redis with its password, Debian's redis_exporter with the sidecar's environment, then Redis stopped."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from components.postgres import INIT_SQL
from components.postgres_exporter import CREDENTIALS_DIR, ROLE
from tests.monitoring.rules import alerts
from tests.monitoring.stack import scraping, wait_until
from tests.harness import containers
from tests.services import PostgresServer, RedisServer, free_port, wait_for_port
from tools.render import render

pytestmark = pytest.mark.server

PASSWORD = "metrics-password-0123456789"


@pytest.fixture(scope="module")
def redis_exporter(tmp_path_factory):
    base = tmp_path_factory.mktemp("redis-exporter")
    redis = RedisServer().start()
    port = free_port()
    (sidecar,) = [c for c in containers(render("dev").find("StatefulSet", "redis")) if c["name"] == "exporter"]
    # The sidecar's variables, its address and listen port pointed at loopback.
    env = {**os.environ, "REDIS_ADDR": f"redis://127.0.0.1:{redis.port}", "REDIS_PASSWORD": redis.password,
           "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}"}
    assert {e["name"] for e in sidecar["env"]} == {"REDIS_ADDR", "REDIS_PASSWORD", "REDIS_EXPORTER_WEB_LISTEN_ADDRESS"}
    process = subprocess.Popen(["prometheus-redis-exporter"], env=env, stdout=subprocess.DEVNULL, stderr=open(base / "exporter.log", "w"))
    wait_for_port(port, 30)
    with scraping({"redis": port}) as stack:
        yield redis, stack
    process.terminate()
    process.wait(10)
    redis.cleanup()


def test_redis_down_matches_a_stopped_redis_and_only_then(redis_exporter):
    redis, stack = redis_exporter
    down = alerts()["RedisDown"]["expr"]
    wait_until(lambda: stack.query('redis_up{job="redis"} == 1'), 60, "Prometheus scraping redis_exporter logged in to Redis")
    assert stack.query(down) == []
    redis.stop()
    (series,) = wait_until(lambda: stack.query(down), 60, "the RedisDown expression matching a stopped Redis")
    assert series["metric"]["namespace"] == "real-estate"


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    base = tmp_path_factory.mktemp("pg-exporter")
    # Archiving on, and failing: the archiver retries and counts every failure.
    postgres = PostgresServer().init("archive_mode = on\narchive_command = 'false'\nwal_level = replica\n").start()
    postgres.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    postgres.psql(INIT_SQL)
    credentials = base / CREDENTIALS_DIR.strip("/")
    credentials.mkdir(parents=True)
    (credentials / "user").write_text(ROLE)
    (credentials / "password").write_text(PASSWORD)
    port = free_port()
    env = {
        **os.environ,
        # The Deployment's variables; sslmode=require there (the operator serves TLS), none here.
        "DATA_SOURCE_URI": f"127.0.0.1:{postgres.port}/postgres?sslmode=disable",
        "DATA_SOURCE_USER_FILE": str(credentials / "user"),
        "DATA_SOURCE_PASS_FILE": str(credentials / "password"),
    }
    process = subprocess.Popen(["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=open(base / "exporter.log", "w"))
    wait_for_port(port, 30)
    with scraping({"postgres-exporter": port}) as stack:
        yield postgres, port, stack
    process.terminate()
    process.wait(10)
    postgres.cleanup()


def test_the_exporter_logs_in_as_the_metrics_role_from_files(exporter):
    _, port, _ = exporter
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert any(line.startswith("pg_up") and line.endswith(" 1") for line in text.splitlines()), text[-2000:]
    assert "pg_stat_archiver_archived_count" in text and "pg_stat_archiver_failed_count" in text


def test_the_archiving_alert_expression_matches_a_failing_archiver_and_only_then(exporter):
    postgres, _, stack = exporter
    failing, missing = alerts()["PostgresWalArchivingFailing"]["expr"], alerts()["PostgresArchiverMetricsMissing"]["expr"]
    wait_until(lambda: stack.query('pg_stat_archiver_failed_count{job="postgres-exporter"}'), 60, "Prometheus scraping the exporter")
    assert stack.query(missing) == []
    assert stack.query(failing) == []  # nothing to archive yet, nothing failed
    postgres.psql("CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n; SELECT pg_switch_wal();")
    series = wait_until(lambda: stack.query(failing), 120, "the archiving expression matching a failing archive_command")
    assert series[0]["metric"]["namespace"] == "real-estate" and series[0]["metric"]["job"] == "postgres-exporter"
