"""The outside-in probes against their real consumers: the blackbox exporter the stack deploys (v0.28.0, built from its
Go module) with the rendered blackbox.yml and the API key as a file, probing the real API (uvicorn, real PostgreSQL,
Redis, milvus-lite); Prometheus scraping it as prometheus-operator renders a Probe (pkg/prometheus/promcfg.go: the
module as a parameter, the target as `instance`, the Probe's namespace and labels), with the repository's rules.
promtool's cases fix the thresholds; these prove the modules, the authentication and the rules' selectors."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from components.probes import JOB, blackbox_config, probes
from tests.app.conftest import API_KEY
from tests.gotools import binary
from tests.monitoring.rules import NAMESPACE, alerts
from tests.monitoring.stack import Mailbox, MonitoringStack, ProbedApi, Webhooks, alerting_settings, wait_until
from tests.services import free_port, wait_for_port


def probe_scrape_configs(prober: str, base_url: str) -> list[dict]:
    """What prometheus-operator v0.93.0 generates for each of the stack's Probe objects (jobName, staticConfig)."""
    return [{
        "job_name": f"probe/{NAMESPACE}/{name}",
        "metrics_path": "/probe",
        "scrape_interval": "5s",
        "params": {"module": [module]},
        "static_configs": [{"targets": targets, "labels": {"probe": module, "namespace": NAMESPACE}}],
        "relabel_configs": [
            {"target_label": "job", "replacement": JOB},
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": prober},
        ],
    } for name, (module, targets) in probes(base_url).items()]


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    base = tmp_path_factory.mktemp("probes")
    key = base / "api-key"
    key.write_text(API_KEY)
    config = base / "blackbox.yml"
    config.write_text(json.dumps(blackbox_config(https=False, key_file=str(key))))
    api = ProbedApi(probe_seconds=2)
    # One listing under the probe's budget: the recommendation probe needs an item in its answer.
    listing = {"city": "Probed", "area_sqm": 90, "bedrooms": 2, "price": 1_000_000, "latitude": 31.2, "longitude": 121.5}
    assert httpx.post(f"http://127.0.0.1:{api.port}/v1/listings", json=listing, headers={"X-API-Key": API_KEY}).status_code in (201, 202)
    port = free_port()
    exporter = subprocess.Popen([binary("blackbox_exporter"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(base / "blackbox.log", "w"))
    wait_for_port(port, 30)
    webhooks, mailbox = Webhooks(), Mailbox()
    url = f"http://127.0.0.1:{api.port}"
    stack = MonitoringStack(alerting_settings(webhooks, mailbox), scrape_configs=probe_scrape_configs(f"127.0.0.1:{port}", url))
    yield api, stack, port, key
    stack.stop()
    webhooks.stop()
    mailbox.stop()
    exporter.terminate()
    exporter.wait(10)
    api.stop()


def _success(stack: MonitoringStack, probe: str) -> dict[str, str]:
    return {s["metric"]["instance"]: s["value"][1] for s in stack.query(f'probe_success{{job="blackbox", probe="{probe}"}}')}


def test_the_https_configuration_loads(tmp_path):
    (tmp_path / "blackbox.yml").write_text(json.dumps(blackbox_config(https=True)))
    done = subprocess.run([binary("blackbox_exporter"), "--config.check", f"--config.file={tmp_path / 'blackbox.yml'}"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.server
def test_every_probe_succeeds_against_a_healthy_api(probed):
    api, stack, _, _ = probed
    url = f"http://127.0.0.1:{api.port}"
    wait_until(lambda: len(_success(stack, "ready")) == 2 and _success(stack, "recommendation"), 60, "Prometheus probing the API")
    assert _success(stack, "ready") == {f"{url}/ready": "1", f"{url}/version": "1"}
    # Authenticated through the key file, schema-valid, answered with its items.
    assert _success(stack, "recommendation") == {f"{url}/v1/recommendations": "1"}
    for alert in ("PublicEndpointDown", "PublicRecommendationFailing"):
        assert stack.query(alerts()[alert]["expr"]) == [], alert


@pytest.mark.server
def test_the_exporters_config_page_shows_no_key(probed):
    _, _, port, key = probed
    page = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).text
    assert str(key) in page and API_KEY not in page


@pytest.mark.server
def test_a_wrong_key_fails_the_recommendation_probe_alone(probed):
    api, stack, _, key = probed
    key.write_text("not-the-key-" + "x" * 32)
    try:
        (series,) = wait_until(lambda: stack.query(alerts()["PublicRecommendationFailing"]["expr"]), 60,
                               "the recommendation probe failing with a wrong key")
        assert series["metric"]["namespace"] == NAMESPACE and series["metric"]["instance"].endswith("/v1/recommendations")
        (status,) = stack.query('probe_http_status_code{job="blackbox", probe="recommendation"}')
        assert status["value"][1] == "401"
        assert stack.query(alerts()["PublicEndpointDown"]["expr"]) == []
    finally:
        key.write_text(API_KEY)
    wait_until(lambda: _success(stack, "recommendation") == {f"http://127.0.0.1:{api.port}/v1/recommendations": "1"}, 60,
               "the probe passing again with the right key")


@pytest.mark.server
def test_the_api_gone_fails_the_public_endpoint(probed):
    api, stack, _, _ = probed
    api.halt()
    try:
        found = wait_until(lambda: len(stack.query(alerts()["PublicEndpointDown"]["expr"])) == 2 and
                           stack.query(alerts()["PublicEndpointDown"]["expr"]), 60, "both endpoint probes failing")
        assert {s["metric"]["instance"].rsplit("/", 1)[1] for s in found} == {"ready", "version"}
    finally:
        api.resume()
