"""A fault, end to end, nothing leaving the machine: the real API (uvicorn) against real PostgreSQL, Redis and
milvus-lite, scraped by Debian's Prometheus with the repository's rules; Debian's Alertmanager with the routing
generated for the stack (escalation shortened by its settings to 1 and 2 minutes). PostgreSQL is stopped;
the P0 `ApiDatabaseUnreachable` must reach on-call by e-mail and DingTalk with its severity and runbook link,
then escalate to the tech lead a minute later, then resolve when PostgreSQL is back."""

from __future__ import annotations

import json
import time

import pytest

from components.monitoring import dashboards
from tests.monitoring.rules import alerts
from tests.monitoring.stack import NAMESPACE, Mailbox, MonitoringStack, ProbedApi, Webhooks, alerting_settings, wait_until

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def platform():
    api = ProbedApi(probe_seconds=2)
    api.traffic()
    webhooks, mailbox = Webhooks(), Mailbox()
    stack = MonitoringStack(alerting_settings(webhooks, mailbox), api.port)
    yield api.postgres, stack, webhooks, mailbox
    stack.stop()
    webhooks.stop()
    mailbox.stop()
    api.stop()


def test_a_stopped_database_pages_on_call_then_escalates_then_resolves(platform):
    postgres, stack, webhooks, mailbox = platform
    wait_until(lambda: stack.query('dependency_up{job="api", dependency="postgres"} == 1'), 60, "Prometheus scraping the API")
    # Healthy: nothing fires, nobody is told; users' requests succeed.
    assert stack.firing("ApiDatabaseUnreachable") is None and not webhooks.received and not mailbox.messages
    error_rate = alerts()["ApiErrorRateHigh"]["expr"]
    wait_until(lambda: stack.query("namespace:api_user_requests:rate5m > 0.1"), 90, "user traffic recorded")
    assert stack.query(error_rate) == []

    postgres.stop("immediate")
    stopped = time.time()
    # for: 1m, scrape and evaluation every 5 s here, the API's health probe every 2 s, group_wait 0 for a P0.
    wait_until(lambda: any("/dingtalk/oncall/send" in path for path, _, _ in webhooks.received), 200, "the P0 reaching on-call on DingTalk")
    path, body, arrived = next(r for r in webhooks.received if r[0] == "/dingtalk/oncall/send")
    (alert,) = [a for a in body["alerts"] if a["labels"]["alertname"] == "ApiDatabaseUnreachable"]
    assert alert["status"] == "firing" and alert["labels"]["severity"] == "P0" and alert["labels"]["service"] == "api"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks/api-database-unreachable.md"
    assert 60 <= arrived - stopped <= 90, arrived - stopped
    wait_until(lambda: any("oncall@example.com" in to for to, _, _ in mailbox.messages), 60, "the P0 e-mail to on-call")
    to, message, _ = next(m for m in mailbox.messages if "oncall@example.com" in m[0])
    assert "ApiDatabaseUnreachable" in message["Subject"]
    # Valuations now fail (503) while recommendations still answer: the user-facing error rate rises past 1 %
    # (ApiErrorRateHigh waits 5 minutes before firing; its expression is what is checked here).
    (rate,) = wait_until(lambda: stack.query(error_rate), 90, "the error-rate expression matching")
    assert float(rate["value"][1]) > 0.01 and rate["metric"]["namespace"] == NAMESPACE
    # Nobody else yet: the tech lead hears only after a minute more of firing.
    assert not any("techlead@example.com" in to for to, _, _ in mailbox.messages)

    wait_until(lambda: any("/dingtalk/techlead/send" in path for path, _, _ in webhooks.received), 120, "the escalation to level 2")
    path, body, escalated_at = next(r for r in webhooks.received if r[0] == "/dingtalk/techlead/send")
    (alert,) = body["alerts"]
    assert alert["labels"]["alertname"] == "EscalationP0Level2" and alert["labels"]["escalated"] == "ApiDatabaseUnreachable"
    assert alert["labels"]["escalation"] == "2" and escalated_at - arrived >= 55
    wait_until(lambda: any("techlead@example.com" in to for to, _, _ in mailbox.messages), 60, "the escalation e-mail")

    postgres.start()
    # The API's connection pool backs off while PostgreSQL is away (up to a minute between attempts after minutes
    # of outage), and a P0 keeps firing 5 minutes after it clears (keep_firing_for: a flap is no new incident), so
    # the way back takes longer than the way down.
    wait_until(lambda: any(a["status"] == "resolved" and a["labels"]["alertname"] == "ApiDatabaseUnreachable"
                      for path, body, _ in webhooks.received if path == "/dingtalk/oncall/send" for a in body["alerts"]),
          480, "the resolution reaching on-call", webhooks)


def test_every_dashboard_query_runs_against_prometheus(platform):
    """Each panel's query, with the dashboard's namespace variable filled in, runs without error against the
    Prometheus scraping the real API (with the recording rules loaded); the API's own panels have data."""
    _, stack, _, _ = platform
    wait_until(lambda: stack.query('dependency_up{job="api"}'), 60, "Prometheus scraping the API")
    wait_until(lambda: stack.query("slo:objective:ratio"), 60, "Prometheus evaluating the SLO rules")
    queries = [(path.name, panel["title"], target["expr"].replace("$namespace", NAMESPACE))
               for path in dashboards() for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]
    assert len(queries) >= 20
    answered = {}
    for dashboard, title, expr in queries:
        answered[title] = stack.query(expr)  # raises on any error Prometheus reports
    wait_until(lambda: stack.query('active_users{job="api"}'), 60, "the API counting its users")
    for title in ("API pods answering", "Dependencies seen by the API (1 = up)", "Running version", "Objectives",
                  "Active users (rolling day and week)"):
        assert answered[title], f"{title}: no data"
