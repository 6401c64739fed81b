"""Real PostgreSQL, Redis and Milvus (milvus-lite) for the API tests, started once per session."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

APP_DIR = Path(__file__).resolve().parents[2] / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from real_estate_api.app import create_app  # noqa: E402
from real_estate_api.config import load_settings  # noqa: E402
from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port  # noqa: E402

API_KEY = "test-api-key-0123456789abcdef"
TESTER_KEY = "test-tester-key-0123456789abcdef"
PROPERTIES = """\
app.name=real-estate-ai
app.version=1.4.2
app.environment=test
recommendation.model=hybrid
recommendation.top_k=3
evaluation.model=xgboost
evaluation.confidence_threshold=0.8
grey_release.enabled=false
grey_release.percent=0
feature.recommendation.enabled=true
feature.valuation.enabled=true
"""


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer().init().start()
    server.psql("CREATE DATABASE real_estate")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def milvus():
    server = MilvusLiteServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def properties_file(tmp_path):
    path = tmp_path / "app.properties"
    path.write_text(PROPERTIES)
    return path


@pytest.fixture
def env(postgres, redis_server, milvus, properties_file):
    return {
        "DATABASE_URL": postgres.url("real_estate"),
        "REDIS_URL": redis_server.url(),
        "MILVUS_URL": milvus.url(),
        "API_KEY": API_KEY,
        "TESTER_KEY": TESTER_KEY,
        "APP_PROPERTIES": str(properties_file),
        "BUILD_REVISION": "abc1234",
        # Faster than production's 2 s / 5 s / 10 s so fault tests see state changes quickly.
        "HEALTH_PROBE_INTERVAL_SECONDS": "0.2",
        "BREAKER_RESET_SECONDS": "1",
        "RECONCILE_INTERVAL_SECONDS": "0.5",
        "VECTOR_TIMEOUT_SECONDS": "1",
    }


@pytest.fixture
def client(env):
    """The app in-process (lifespan included) against the real servers, once it reports every dependency up
    (a test that restarted a server leaves pymilvus reconnecting for a second or two)."""
    with TestClient(create_app(load_settings(env))) as test_client:
        deadline = time.monotonic() + 30
        while test_client.get("/ready").json()["status"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
        yield test_client




@pytest.fixture
def server(env):
    """The server as the image runs it (`python -m real_estate_api.server`): (process, base URL); stdout and stderr
    together in process.stdout."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "real_estate_api.server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=APP_DIR, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wait_for_port(port, 60)
    yield process, f"http://127.0.0.1:{port}"
    if process.poll() is None:
        process.kill()
        process.wait()
