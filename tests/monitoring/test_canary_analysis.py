"""The canary analysis' queries (components/canary.py) against a real Prometheus scraping the real API, and the
pre-rollout smoke test (ops/release/smoke.sh) against the same API: what Flagger would conclude.

The API's pod is scraped with the labels a PodMonitor gives Flagger's canary pods (namespace, pod api-<rs>-<pod>).
Users' errors are made for real: with PostgreSQL stopped, valuations answer 503 while recommendations (cache and
vector search) still answer 200, so a fixed mix of the two is a known error rate."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from components.canary import CANARY_PODS, ERROR_RATE_QUERY, LATENCY_QUERY
from tests.app.conftest import API_KEY
from tests.monitoring.stack import NAMESPACE, MonitoringStack, ProbedApi, wait_until

pytestmark = pytest.mark.server

SMOKE = Path(__file__).resolve().parents[2] / "ops" / "release" / "smoke.sh"
# The window Flagger would put in {{ interval }}: short here, so each phase fits a test.
WINDOW = "30s"
CANARY_POD = "api-6d9f7c8b5d-x2x4z"
# Flagger's primary: the same API scraped a second time under the primary's pod name.
PRIMARY_POD = "api-primary-7f8d9c6b5d-k2j4m"
WHERE = {"latitude": 31.2, "longitude": 121.5}


def flagger_query(template: str, target: str = "api") -> str:
    """What Flagger renders (pkg/metrics/providers: {{ namespace }}, {{ target }}, {{ interval }})."""
    query = template.replace("{{ namespace }}", NAMESPACE).replace("{{ target }}", target).replace("{{ interval }}", WINDOW)
    assert "{{" not in query
    return query


@pytest.fixture(scope="module")
def api():
    probed = ProbedApi(probe_seconds=1)
    yield probed
    probed.stop()


def _smoke(url: str, version: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SMOKE), url, version], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "API_KEY": API_KEY})


def test_smoke_passes_a_healthy_api_of_the_expected_version(api):
    url = f"http://127.0.0.1:{api.port}"
    wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, 60, "the API ready")
    result = _smoke(url, "1.4.2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"smoke: {url} serves version 1.4.2"


def test_smoke_fails_another_version_or_no_api(api):
    url = f"http://127.0.0.1:{api.port}"
    wrong = _smoke(url, "1.4.3")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"smoke: {url}/version reports '1.4.2', expected '1.4.3'"
    gone = _smoke("http://127.0.0.1:9", "1.4.2")
    assert gone.returncode == 1 and "smoke: http://127.0.0.1:9/ready did not answer 200" in gone.stderr
    keyless = subprocess.run(["sh", str(SMOKE), url, "1.4.2"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert keyless.returncode == 1 and "API_KEY (or API_KEY_FILE) is not set" in keyless.stderr


def test_smoke_reads_the_key_from_a_file_as_the_load_tester_mounts_it(api, tmp_path):
    key = tmp_path / "api-key"
    key.write_text(API_KEY)
    url = f"http://127.0.0.1:{api.port}"
    result = subprocess.run(["sh", str(SMOKE), url, "1.4.2"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "API_KEY_FILE": str(key)})
    assert result.returncode == 0, result.stderr
    key.write_text("not-the-key")
    refused = subprocess.run(["sh", str(SMOKE), url, "1.4.2"], capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "API_KEY_FILE": str(key)})
    assert refused.returncode == 1 and refused.stderr.strip() == f"smoke: {url}/v1/recommendations answered 401"


def _send_mix(api: ProbedApi, errors_in_50: int, seconds: float) -> tuple[int, int]:
    """Users' requests for `seconds`: in every 50, `errors_in_50` valuations (503: the database is down) spread
    among recommendations (200). Returns (requests, server errors) as the API answered them."""
    failing = {round(i * 50 / errors_in_50) for i in range(errors_in_50)}
    sent = errors = n = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", headers={"X-API-Key": API_KEY}, timeout=10) as client:
        while time.monotonic() < deadline:
            if n % 50 in failing:
                answer = client.post("/v1/valuations", json={"city": "Canary", "area_sqm": 80, "bedrooms": 2})
            else:
                answer = client.post("/v1/recommendations", json={"user_id": f"u{n % 20}", "budget": 2_000_000,
                                                                    "area_sqm": 80, "bedrooms": 2, **WHERE})
            sent += 1
            errors += answer.status_code >= 500
            n += 1
            time.sleep(0.01)
    return sent, errors


def _value(stack: MonitoringStack, query: str) -> float:
    (sample,) = stack.query(query)
    return float(sample["value"][1])


def test_the_error_rate_check_passes_at_4_percent_and_fails_at_6(api, tmp_path):
    stack = MonitoringStack(settings=_quiet_alerting(), api_port=api.port, interval="1s", jobs={"primary": api.port},
                            target_labels={"api": {"pod": CANARY_POD}, "primary": {"pod": PRIMARY_POD}})
    try:
        api.postgres.stop()
        # The breaker has opened on the first failure: from here valuations answer 503 at once.
        wait_until(lambda: httpx.post(f"http://127.0.0.1:{api.port}/v1/valuations", headers={"X-API-Key": API_KEY},
                                      json={"city": "Canary", "area_sqm": 80, "bedrooms": 2}).status_code == 503,
                   30, "valuations failing with PostgreSQL down")
        wait_until(lambda: stack.query('up{job="api"} == 1'), 30, "Prometheus scraping the API")
        threshold = 5  # release.canary.maxErrorPercent in prod: Flagger fails the check above it.
        for errors_in_50, passes in ((2, True), (3, False)):
            sent, errors = _send_mix(api, errors_in_50, 40)
            assert sent > 300 and math.isclose(errors / sent, errors_in_50 / 50, abs_tol=0.004), (sent, errors)
            rate = _value(stack, flagger_query(ERROR_RATE_QUERY))
            assert abs(rate - errors_in_50 * 2) < 0.8, rate
            assert (rate <= threshold) is passes, rate
        latency = _value(stack, flagger_query(LATENCY_QUERY))
        assert 0 < latency < 500, latency
        # The canary's pods only: the primary's (api-primary-…) are not counted, though they serve the same requests.
        def pods(target: str) -> set[str]:
            selector = CANARY_PODS.replace("{{ target }}", target)
            return {s["metric"]["pod"] for s in stack.query(f'count by (pod) (http_requests_total{{pod=~"{selector}"}})')}

        assert pods("api") == {CANARY_POD}
        assert pods("api-primary") == {PRIMARY_POD}
    finally:
        stack.stop()


def _quiet_alerting():
    from settings.monitoring import AlertingSettings

    return AlertingSettings(notify=False)
