"""Start-up settings: every missing or malformed one is named, and no secret is ever echoed."""

import subprocess
import sys

import pytest

from real_estate_api.config import SettingsError, load_settings
from tests.app.conftest import API_KEY, APP_DIR, PROPERTIES

SECRET_PASSWORD = "hunter2-very-secret-password"


@pytest.fixture
def base_env(properties_file):
    return {
        "DATABASE_URL": f"postgresql://app:{SECRET_PASSWORD}@db:5432/real_estate",
        "REDIS_URL": f"redis://:{SECRET_PASSWORD}@cache:6379/0",
        "MILVUS_URL": "http://milvus:19530",
        "API_KEY": API_KEY,
        "APP_PROPERTIES": str(properties_file),
    }


def test_valid_settings(base_env):
    settings = load_settings(base_env)
    assert settings.properties.recommendation_top_k == 3
    assert settings.properties.evaluation_confidence_threshold == 0.8
    assert settings.properties.feature_enabled("valuation") and settings.properties.feature_enabled("market_analysis")


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("DATABASE_URL", None, "DATABASE_URL is not set"),
        ("DATABASE_URL", f"mysql://app:{SECRET_PASSWORD}@db/x", "DATABASE_URL must be a URL"),
        ("REDIS_URL", f"{SECRET_PASSWORD}@cache:6379", "REDIS_URL must be a URL"),
        ("MILVUS_URL", "milvus:19530", "MILVUS_URL must be a URL"),
        ("API_KEY", None, "API_KEY must be set"),
        ("API_KEY", "short", "API_KEY must be set to at least 16"),
        ("APP_PROPERTIES", "/nonexistent/app.properties", "/nonexistent/app.properties does not exist"),
        ("READINESS_TIMEOUT_SECONDS", "soon", "READINESS_TIMEOUT_SECONDS must be a number"),
        ("REDIS_URL", f"redis://:{SECRET_PASSWORD}@cache:port/0", "REDIS_URL must be a URL"),
        ("DATABASE_URL", f"postgresql://app:{SECRET_PASSWORD}@db:99999/x", "DATABASE_URL must be a URL"),
        ("DATABASE_URL", f"postgresql://app:{SECRET_PASSWORD}@[db/x", "DATABASE_URL must be a URL"),
        ("APP_PROPERTIES", "/tmp", "APP_PROPERTIES: /tmp is a directory, not a properties file"),
        ("MAX_BODY_BYTES", "0", "MAX_BODY_BYTES must be a whole number from 1 to 10485760"),
        ("DATABASE_STATEMENT_TIMEOUT_SECONDS", "nan", "DATABASE_STATEMENT_TIMEOUT_SECONDS must be between 0 and 30"),
        ("TESTER_KEY", "short", "TESTER_KEY must be empty or at least 16"),
        ("MAX_IN_FLIGHT_REQUESTS", "0", "MAX_IN_FLIGHT_REQUESTS must be a whole number from 1 to 10000"),
        ("BODY_READ_TIMEOUT_SECONDS", "61", "BODY_READ_TIMEOUT_SECONDS must be between 0 and 60"),
        ("ACTIVE_USERS_FLUSH_SECONDS", "0", "ACTIVE_USERS_FLUSH_SECONDS must be between 0 and 300"),
    ],
)
def test_bad_environment_is_named(base_env, name, value, expected):
    env = dict(base_env)
    if value is None:
        env.pop(name)
    else:
        env[name] = value
    with pytest.raises(SettingsError, match=expected) as error:
        load_settings(env)
    assert SECRET_PASSWORD not in str(error.value)


@pytest.mark.parametrize(
    "line,replacement,expected",
    [
        ("recommendation.top_k=3", "recommendation.top_k=ten", "recommendation.top_k must be an integer"),
        ("recommendation.top_k=3", "recommendation.top_k=0", "recommendation.top_k must be between 1 and 100"),
        ("recommendation.model=hybrid", "recommendation.model=magic", "recommendation.model must be one of"),
        ("evaluation.confidence_threshold=0.8", "evaluation.confidence_threshold=1.8", "evaluation.confidence_threshold must be"),
        ("evaluation.model=xgboost", "", "evaluation.model is required"),
        ("feature.valuation.enabled=true", "feature.valuation.enabled=yes", "feature.valuation.enabled must be true or false"),
        ("app.version=1.4.2", "app.version", "expected key=value"),
        # A typo must not silently do nothing.
        ("feature.valuation.enabled=true", "feature.valuaton.enabled=false", ":11: unknown key 'feature.valuaton.enabled'"),
        ("recommendation.top_k=3", "recommendation.topk=3", ":5: unknown key 'recommendation.topk'"),
        ("app.name=real-estate-ai", "app.name=real-estate-ai\napp.name=other", ":2: app.name is set twice"),
        ("grey_release.percent=0", "grey_release.percent=0\ngrey_release.features=valuation,pricing",
         "grey_release.features names unknown features: pricing"),
        ("grey_release.percent=0", "grey_release.percent=0\ngrey_release.header=X Bad", "grey_release.header must be an HTTP header name"),
        ("grey_release.percent=0", "grey_release.percent=0\nab_test.enabled=true\nab_test.variant_b.recommendation_model=hybrid",
         "ab_test.variant_b.recommendation_model must differ from recommendation.model \\(hybrid\\)"),
        ("grey_release.percent=0", "grey_release.percent=101", "grey_release.percent must be between 0 and 100, got 101"),
    ],
)
def test_bad_properties_are_named(base_env, properties_file, line, replacement, expected):
    properties_file.write_text(PROPERTIES.replace(line, replacement))
    with pytest.raises(SettingsError, match=expected):
        load_settings(base_env)


def test_startup_stops_with_one_clear_message(base_env):
    env = {**base_env, "PATH": "/usr/bin:/bin"}
    env.pop("REDIS_URL")
    env["DATABASE_URL"] = f"mysql://app:{SECRET_PASSWORD}@db/x"
    result = subprocess.run(
        [sys.executable, "-m", "real_estate_api.server", "--port", "0"], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "invalid settings: DATABASE_URL must be a URL" in output
    assert SECRET_PASSWORD not in output and API_KEY not in output
    assert '"level": "critical"' in result.stdout
