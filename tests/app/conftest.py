"""Real PostgreSQL, Redis and Milvus (milvus-lite) for the API tests, started once per session."""

import sys
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from tests.services import MilvusLiteServer, PostgresServer, RedisServer  # noqa: E402

API_KEY = "test-api-key-0123456789abcdef"
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
        "APP_PROPERTIES": str(properties_file),
        "BUILD_REVISION": "abc1234",
    }
