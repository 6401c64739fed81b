"""The WAL archiving alerts against what the exporter really exposes: a real PostgreSQL whose archive_command fails,
Debian's postgres_exporter logged in as the `metrics` role with the cluster's init SQL and credentials from files (as
the Deployment runs it), scraped by a real Prometheus with the repository's rules. promtool's cases fix the
thresholds and `for:`; this proves the expressions match the exporter's metric names and labels."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest
import yaml

from components.postgres import INIT_SQL
from components.postgres_exporter import CREDENTIALS_DIR, ROLE
from tests.monitoring.rules import RULE_FILES
from tests.monitoring.stack import MonitoringStack, Mailbox, Webhooks, alerting_settings
from tests.services import PostgresServer, free_port, wait_for_port

PASSWORD = "metrics-password-0123456789"


def _expr(alert: str) -> str:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    return rule["expr"]
    raise KeyError(alert)


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


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
    webhooks, mailbox = Webhooks(), Mailbox()
    stack = MonitoringStack(alerting_settings(webhooks, mailbox), jobs={"postgres-exporter": port})
    yield postgres, port, stack
    stack.stop()
    webhooks.stop()
    mailbox.stop()
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
    failing, missing = _expr("PostgresWalArchivingFailing"), _expr("PostgresArchiverMetricsMissing")
    _wait(lambda: stack.query('pg_stat_archiver_failed_count{job="postgres-exporter"}'), 60, "Prometheus scraping the exporter")
    assert stack.query(missing) == []
    assert stack.query(failing) == []  # nothing to archive yet, nothing failed
    postgres.psql("CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n; SELECT pg_switch_wal();")
    series = _wait(lambda: stack.query(failing), 120, "the archiving expression matching a failing archive_command")
    assert series[0]["metric"]["namespace"] == "real-estate" and series[0]["metric"]["job"] == "postgres-exporter"
