"""Seconds from an injected fault to the P0 notification, with production settings, over several runs.

The fault: PostgreSQL stops under the real API (uvicorn; its readiness probe every 5 s, as prod's
`api.readiness.periodSeconds`). Prometheus (Debian's) scrapes the API every 15 s (the ServiceMonitor) and evaluates
the P0 groups every 15 s (their `interval`); `ApiDatabaseUnreachable` has `for: 1m`; Alertmanager (Debian's) routes
P0 with `group_wait: 0s` to a local webhook standing in for the DingTalk bridge. Each run starts at a random moment
of the scrape cycle; PostgreSQL is started again and the alert resolved before the next run.

    .venv/bin/python -m bench.alert_latency [--runs 5]

Prints numbers and the arithmetic of the bound; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import httpx

from tests.app.conftest import API_KEY, APP_DIR, PROPERTIES
from tests.monitoring.stack import Mailbox, MonitoringStack, Webhooks, alerting_settings
from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port

SCRAPE = 15
EVALUATE = 15
FOR = 60
PROBE = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    postgres = PostgresServer().init().start()
    postgres.psql("CREATE DATABASE real_estate")
    redis, milvus = RedisServer().start(), MilvusLiteServer().start()
    webhooks, mailbox = Webhooks(), Mailbox()
    properties = postgres.base / "app.properties"
    properties.write_text(PROPERTIES)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": postgres.url("real_estate"), "REDIS_URL": redis.url(), "MILVUS_URL": milvus.url(),
           "API_KEY": API_KEY, "APP_PROPERTIES": str(properties), "BUILD_REVISION": "bench"}
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                           cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 60)
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            try:
                httpx.get(f"http://127.0.0.1:{port}/ready", timeout=3)
            except httpx.HTTPError:
                pass
            time.sleep(PROBE)

    threading.Thread(target=probe, daemon=True).start()
    stack = MonitoringStack(alerting_settings(webhooks, mailbox, level2_minutes=60, level3_minutes=120), port, interval=f"{SCRAPE}s")
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
        stop.set()
        stack.stop()
        webhooks.stop()
        mailbox.stop()
        api.kill()
        for server in (redis, milvus, postgres):
            server.cleanup()
    print(f"\nfault → P0 notification over {len(latencies)} runs: min {min(latencies):.1f} s, mean {statistics.mean(latencies):.1f} s, "
          f"max {max(latencies):.1f} s")
    print(f"bound: readiness probe {PROBE} s + scrape {SCRAPE} s + evaluation {EVALUATE} s + for {FOR} s + group_wait 0 s "
          f"= {PROBE + SCRAPE + EVALUATE + FOR} s worst case; expected mean ≈ {PROBE / 2 + SCRAPE / 2 + EVALUATE / 2 + FOR:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
