"""A monitoring stack on loopback, nothing leaving the machine: Prometheus of the chart's version with the stack's
rules rendered for the tests' namespace, Alertmanager of the chart's version with the chart's routing and the stack's
AlertmanagerConfig merged in by prometheus-operator's code (tests/monitoring/routing.py), a webhook receiver standing
in for the DingTalk bridge, and an SMTP sink (aiosmtpd) for e-mail. Shared by the end-to-end tests and
bench/alert_latency.py."""

from __future__ import annotations

import contextlib
import email
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import httpx
import yaml
from aiosmtpd.controller import Controller

from settings.monitoring import AlertingSettings
from tests.app.conftest import API_KEY, APP_DIR, PROPERTIES
from tests.gotools import binary
from tests.monitoring.routing import alertmanager_yaml
from tests.monitoring.rules import NAMESPACE, rendered, write
from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port


def wait_until(condition, timeout: float, what: str, seen: Optional["Webhooks"] = None):
    """Poll `condition` every second until it returns something truthy, which is returned; fail naming `what` (and
    what the webhooks received, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    shown = "" if seen is None else "; received: " + "; ".join(
        f"{path} {[(a['labels']['alertname'], a['status']) for a in body['alerts']]}" for path, body, _ in seen.received)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s{shown}")


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class ProbedApi:
    """The API under uvicorn against its own PostgreSQL, Redis and milvus-lite. Its background health probe (every
    `probe_seconds`, HEALTH_PROBE_INTERVAL_SECONDS) is what refreshes `dependency_up`. `traffic()` sends users'
    requests (a valuation and a recommendation every 0.2 s) so the user-facing error rate has something to judge."""

    def __init__(self, probe_seconds: float):
        self.postgres = PostgresServer().init().start()
        self.postgres.psql("CREATE DATABASE real_estate")
        self.redis, self.milvus = RedisServer().start(), MilvusLiteServer().start()
        properties = self.postgres.base / "app.properties"
        properties.write_text(PROPERTIES)
        self.port = free_port()
        self._env = {**os.environ, "DATABASE_URL": self.postgres.url("real_estate"), "REDIS_URL": self.redis.url(),
                     "MILVUS_URL": self.milvus.url(), "API_KEY": API_KEY, "APP_PROPERTIES": str(properties),
                     "BUILD_REVISION": "monitoring", "HEALTH_PROBE_INTERVAL_SECONDS": str(probe_seconds),
                     "ACTIVE_USERS_FLUSH_SECONDS": "2"}
        self.resume()
        self._stop = threading.Event()

    def resume(self) -> None:
        """(Re)start the API process on its port."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "real_estate_api.server", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=APP_DIR, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 60)

    def halt(self) -> None:
        """The API process gone, as a crashed pod: nothing answers its port."""
        self.process.kill()
        self.process.wait()

    def traffic(self) -> None:
        place = {"city": "Traffic", "area_sqm": 80, "bedrooms": 2}
        where = {"latitude": 31.2, "longitude": 121.5}

        def send() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"X-API-Key": API_KEY}, timeout=10) as client:
                client.post("/v1/listings", json={**place, "price": 1_000_000, **where})
                n = 0
                while not self._stop.is_set():
                    n += 1
                    try:
                        client.post("/v1/valuations", json={**place, "area_sqm": 60 + n % 40})
                        client.post("/v1/recommendations", json={"user_id": f"u{n % 50}", "budget": 2_000_000, "area_sqm": 80,
                                                                 "bedrooms": 2, **where})
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)

        threading.Thread(target=send, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.process.kill()
        self.process.wait()
        for server in (self.redis, self.milvus, self.postgres):
            server.cleanup()


class Webhooks:
    """Records every POST (path, JSON body, arrival time)."""

    def __init__(self):
        self.received: list[tuple[str, dict, float]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.received.append((self.path, json.loads(body or b"{}"), time.time()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class Mailbox:
    """An SMTP sink: every message with its recipients and arrival time."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.Message, float]] = []
        owner = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                owner.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content), time.time()))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def alerting_settings(webhooks: Webhooks, mailbox: Mailbox, level2_minutes: int = 1, level3_minutes: int = 2,
                      prod_timing: bool = False) -> AlertingSettings:
    """Routing as prod's shape, channels on loopback: e-mail and DingTalk (the bridge stood in for by `webhooks`).
    Batching shortened to a 10 s group interval, or prod's own (`prod_timing`: the settings' defaults)."""
    timing = {} if prod_timing else {"groupWaitSeconds": 0, "groupIntervalSeconds": 10}
    return AlertingSettings.model_validate({
        "notify": True,
        "smtp": {"smarthost": f"127.0.0.1:{mailbox.port}", "sender": "alerts@example.com", "requireTls": False},
        "dingtalk": {"bridgeUrl": f"http://127.0.0.1:{webhooks.port}"},
        "onCall": {"emails": ["oncall@example.com"], "dingtalk": True},
        "techLead": {"emails": ["techlead@example.com"], "dingtalk": True},
        "management": {"emails": ["management@example.com"]},
        "escalation": {"p0Level2Minutes": level2_minutes, "p0Level3Minutes": level3_minutes},
        "timing": timing,
    })


class MonitoringStack:
    def __init__(self, settings: AlertingSettings, api_port: Optional[int] = None, interval: str = "5s",
                 jobs: Optional[dict[str, int | dict[int, dict[str, str]]]] = None,
                 target_labels: Optional[dict[str, dict[str, str]]] = None, scrape_configs: Optional[list[dict]] = None):
        """Scrapes job "api" at api_port and any other `jobs` (job name → port on loopback, or → {port: its own
        labels} for a job of several pods), each target labelled with the namespace and its `target_labels[job]` (a
        PodMonitor's pod label, say), and `scrape_configs` as they are (what prometheus-operator renders for a Probe)."""
        targets = {job: ports if isinstance(ports, dict) else {ports: {}}
                   for job, ports in {**({"api": api_port} if api_port else {}), **(jobs or {})}.items()}
        self.base = Path(tempfile.mkdtemp(prefix="re-mon-"))
        self.am_port, self.prom_port = free_port(), free_port()
        routing = alertmanager_yaml(settings, {}, NAMESPACE, self.base / "routing")
        rules = write(rendered(settings), self.base / "rules")
        prometheus = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [*map(str, rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            # What a ServiceMonitor gives in the cluster: job = the Service's name, the namespace label.
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics",
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                     "labels": {"namespace": NAMESPACE, **(target_labels or {}).get(job, {}), **own}}
                                    for port, own in ports.items()]}
                for job, ports in targets.items()
            ] + (scrape_configs or []),
        }
        (self.base / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
        self.processes = [
            subprocess.Popen(
                [binary("alertmanager"), f"--config.file={routing}",
                 f"--storage.path={self.base / 'am'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
                 "--cluster.listen-address=", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=open(self.base / "alertmanager.log", "w")),
            subprocess.Popen(
                [binary("prometheus"), f"--config.file={self.base / 'prometheus.yml'}", f"--storage.tsdb.path={self.base / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.prom_port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=open(self.base / "prometheus.log", "w")),
        ]
        # Both open their port before they serve: Prometheus answers 503 until its TSDB is loaded.
        for port in (self.am_port, self.prom_port):
            wait_for_port(port, 30)
            wait_until(lambda: _ready(port), 30, f"/-/ready on 127.0.0.1:{port}")

    def query(self, expr: str) -> list:
        answer = httpx.get(f"http://127.0.0.1:{self.prom_port}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def firing(self, alertname: str) -> Optional[dict]:
        for alert in httpx.get(f"http://127.0.0.1:{self.prom_port}/api/v1/alerts", timeout=10).json()["data"]["alerts"]:
            if alert["labels"]["alertname"] == alertname and alert["state"] == "firing":
                return alert
        return None

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def scraping(jobs: dict[str, int | dict[int, dict[str, str]]]) -> Iterator[MonitoringStack]:
    """Prometheus with the repository's rules scraping `jobs` (job name → port on loopback), with its Alertmanager and
    stand-in receivers; all stopped on exit."""
    webhooks, mailbox = Webhooks(), Mailbox()
    stack = MonitoringStack(alerting_settings(webhooks, mailbox), jobs=jobs)
    try:
        yield stack
    finally:
        stack.stop()
        webhooks.stop()
        mailbox.stop()
