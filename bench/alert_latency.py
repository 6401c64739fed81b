"""Seconds from an injected fault to the P0 page on on-call's DingTalk, with prod's rules, routing and timings, over
several runs per fault, reported as a distribution.

Everything the page goes through is what prod runs: the real API (uvicorn; its background health probe every 2 s,
the default HEALTH_PROBE_INTERVAL_SECONDS) against real PostgreSQL, Redis and milvus-lite; Prometheus 3.13.2 scraping it
every 15 s (the PodMonitor) with the stack's rules (P0 groups evaluated every 15 s); Alertmanager 0.33.1 with
kube-prometheus-stack's routing and the stack's AlertmanagerConfig merged in by prometheus-operator's code, prod's
timings (group wait 30 s but 0 s for P0, group interval 300 s but 30 s for P0, keep_firing_for 5 m); a local webhook
stands in for the DingTalk bridge. Faults, each started at a random moment of the scrape cycle:

- database: PostgreSQL stops under the API (`ApiDatabaseUnreachable`);
- api: the API process is killed (`ApiDown`, by its failed scrapes);
- database again: PostgreSQL stops once more just after the previous `ApiDatabaseUnreachable` resolved (a P0 firing
  again into a group whose resolution Alertmanager may not have sent yet).

`PostgresDown` (kube-state-metrics' pod readiness) has no stand-in here: its bound is the same arithmetic with the
kube-state-metrics scrape interval in place of the probe and the scrape.

    .venv/bin/python -m bench.alert_latency [--runs 3]

Prints numbers and the arithmetic of the bound; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Callable

from tests.gotools import versions
from tests.monitoring.stack import Mailbox, MonitoringStack, ProbedApi, Webhooks, alerting_settings

SCRAPE = 15
EVALUATE = 15
FOR = 60
PROBE = 2
# prod's P0 route (components/alerting.py URGENT_GROUP_INTERVAL).
P0_GROUP_INTERVAL = 30


def _pages(webhooks: Webhooks, since: int, alertname: str) -> list[float]:
    return [t for p, body, t in webhooks.received[since:] if p == "/dingtalk/oncall/send"
            and any(a["status"] == "firing" and a["labels"]["alertname"] == alertname for a in body["alerts"])]


def _until(condition: Callable[[], bool], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench's stack did not reach the expected state")
        time.sleep(0.5)


def _summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (f"{name}: n={len(values)} min {ordered[0]:.1f} s, median {statistics.median(ordered):.1f} s, "
            f"max {ordered[-1]:.1f} s  [{', '.join(f'{v:.1f}' for v in values)}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"tools: {versions()}", flush=True)
    api = ProbedApi(probe_seconds=PROBE)
    postgres = api.postgres
    webhooks, mailbox = Webhooks(), Mailbox()
    # Escalation far away: only level 1 is timed.
    settings = alerting_settings(webhooks, mailbox, level2_minutes=600, level3_minutes=1200, prod_timing=True)
    stack = MonitoringStack(settings, api.port, interval=f"{SCRAPE}s")
    results: dict[str, list[float]] = {"database": [], "api": [], "database again": []}

    def healthy() -> bool:
        return (not stack.firing("ApiDatabaseUnreachable") and not stack.firing("ApiDown")
                and bool(stack.query('dependency_up{dependency="postgres"} == 1')))

    def fault(kind: str, alertname: str, cause: Callable[[], None], cure: Callable[[], None], settle: bool = True) -> None:
        if settle:
            _until(healthy)
            time.sleep(random.uniform(0, SCRAPE))
        before = len(webhooks.received)
        cause()
        started = time.time()
        _until(lambda: bool(_pages(webhooks, before, alertname)))
        results[kind].append(_pages(webhooks, before, alertname)[0] - started)
        print(f"{kind}: fault → {alertname} page {results[kind][-1]:.1f} s", flush=True)
        cure()

    try:
        _until(lambda: bool(stack.query('dependency_up{dependency="postgres"} == 1')), 120)
        for _ in range(args.runs):
            fault("database", "ApiDatabaseUnreachable", lambda: postgres.stop("immediate"), postgres.start)
            fault("api", "ApiDown", api.halt, api.resume)
            # Straight after the resolution (keep_firing_for holds it 5 min after the cure), the same fault again.
            _until(lambda: stack.firing("ApiDatabaseUnreachable") is None and bool(stack.query('dependency_up{dependency="postgres"} == 1')))
            fault("database again", "ApiDatabaseUnreachable", lambda: postgres.stop("immediate"), postgres.start, settle=False)
    finally:
        stack.stop()
        webhooks.stop()
        mailbox.stop()
        api.stop()
    print()
    for kind, values in results.items():
        if values:
            print(_summary(kind, values))
    probe_bound = PROBE + SCRAPE + EVALUATE + FOR
    print(f"bound, database: probe {PROBE} + scrape {SCRAPE} + evaluation {EVALUATE} + for {FOR} + group_wait 0 = {probe_bound} s")
    print(f"bound, api: scrape {SCRAPE} + evaluation {EVALUATE} + for {FOR} + group_wait 0 = {SCRAPE + EVALUATE + FOR} s")
    print(f"bound, database again: {probe_bound} s, + the P0 group interval {P0_GROUP_INTERVAL} s if its resolution was "
          f"not yet sent = {probe_bound + P0_GROUP_INTERVAL} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
