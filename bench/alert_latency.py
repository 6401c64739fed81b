"""Seconds from an injected fault to the P0 notification, with production settings, over several runs.

The fault: PostgreSQL stops under the real API (uvicorn; its background health probe every 2 s, the default
HEALTH_PROBE_INTERVAL_SECONDS). Prometheus (Debian's) scrapes the API every 15 s (the ServiceMonitor) and evaluates
the P0 groups every 15 s (their `interval`); `ApiDatabaseUnreachable` has `for: 1m`; Alertmanager (Debian's) routes
P0 with `group_wait: 0s` to a local webhook standing in for the DingTalk bridge. Each run starts at a random moment
of the scrape cycle; PostgreSQL is started again and the alert resolved before the next run.

    .venv/bin/python -m bench.alert_latency [--runs 5]

Prints numbers and the arithmetic of the bound; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from tests.monitoring.stack import Mailbox, MonitoringStack, ProbedApi, Webhooks, alerting_settings

SCRAPE = 15
EVALUATE = 15
FOR = 60
PROBE = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    api = ProbedApi(probe_seconds=PROBE)
    postgres = api.postgres
    webhooks, mailbox = Webhooks(), Mailbox()
    stack = MonitoringStack(alerting_settings(webhooks, mailbox, level2_minutes=60, level3_minutes=120), api.port, interval=f"{SCRAPE}s")
    latencies = []
    try:
        while not stack.query('dependency_up{dependency="postgres"} == 1'):
            time.sleep(1)
        for run in range(args.runs):
            time.sleep(random.uniform(0, SCRAPE))
            before = len(webhooks.received)
            postgres.stop("immediate")
            stopped = time.time()
            while not any(p == "/dingtalk/oncall/send" and any(a["status"] == "firing" for a in b["alerts"])
                          for p, b, _ in webhooks.received[before:]):
                time.sleep(0.2)
            arrived = next(t for p, b, t in webhooks.received[before:] if p == "/dingtalk/oncall/send")
            latencies.append(arrived - stopped)
            print(f"run {run + 1}: fault → P0 notification {arrived - stopped:.1f} s", flush=True)
            postgres.start()
            while stack.firing("ApiDatabaseUnreachable") or not stack.query('dependency_up{dependency="postgres"} == 1'):
                time.sleep(1)
            time.sleep(SCRAPE)
    finally:
        stack.stop()
        webhooks.stop()
        mailbox.stop()
        api.stop()
    print(f"\nfault → P0 notification over {len(latencies)} runs: min {min(latencies):.1f} s, mean {statistics.mean(latencies):.1f} s, "
          f"max {max(latencies):.1f} s")
    print(f"bound: health probe {PROBE} s + scrape {SCRAPE} s + evaluation {EVALUATE} s + for {FOR} s + group_wait 0 s "
          f"= {PROBE + SCRAPE + EVALUATE + FOR} s worst case; expected mean ≈ {PROBE / 2 + SCRAPE / 2 + EVALUATE / 2 + FOR:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
