"""The service run as the image runs it: `python -m real_estate_api.server`, JSON logs, graceful shutdown on SIGTERM."""

import json
import signal
import threading
import time
import uuid

import httpx
import psycopg
import pytest

from tests.app.conftest import API_KEY

pytestmark = pytest.mark.server

AUTH = {"X-API-Key": API_KEY}


def test_sigterm_finishes_in_flight_requests_then_exits(server, postgres):
    process, base = server
    city = f"Wuhan-{uuid.uuid4().hex[:6]}"
    for price in (1_000_000, 1_100_000, 1_200_000):
        body = {"city": city, "area_sqm": 100, "bedrooms": 3, "price": price, "latitude": 30.6, "longitude": 114.3}
        assert httpx.post(f"{base}/v1/listings", json=body, headers=AUTH, timeout=10).status_code == 201

    result = {}
    with psycopg.connect(postgres.url("real_estate")) as blocker:
        # Hold the table so the valuation below is in flight when SIGTERM arrives.
        blocker.execute("LOCK TABLE listings IN ACCESS EXCLUSIVE MODE")

        def valuate():
            result["response"] = httpx.post(
                f"{base}/v1/valuations", json={"city": city, "area_sqm": 50, "bedrooms": 2},
                headers={**AUTH, "X-Request-ID": "in-flight-1"}, timeout=30,
            )

        thread = threading.Thread(target=valuate)
        thread.start()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert process.poll() is None, "the server exited with a request in flight"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health", timeout=2)
        blocker.commit()  # releases the lock

    thread.join(30)
    assert result["response"].status_code == 200, result["response"].text
    assert result["response"].json()["estimate"] == pytest.approx(11_000 * 50)
    # uvicorn re-raises the captured SIGTERM once shutdown is complete, so the exit status says why it ended.
    assert process.wait(30) == -signal.SIGTERM

    lines = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
    request = next(l for l in lines if l.get("request_id") == "in-flight-1" and l["message"] == "request")
    assert request["route"] == "/v1/valuations" and request["status"] == 200 and request["duration_ms"] > 900
    assert any(l["message"] == "stopped" for l in lines)
    assert all({"time", "level", "logger", "message", "request_id"} <= set(l) for l in lines)
