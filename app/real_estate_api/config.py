"""Settings from the environment and the mounted app.properties, validated once at start-up.

A missing or malformed setting raises SettingsError naming the setting; secret values are never
part of any message. Unknown property keys are refused: a typo must not silently do nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

DEFAULT_PROPERTIES = "/etc/real-estate-ai/app.properties"
MIN_API_KEY_LENGTH = 16

RECOMMENDATION_MODELS = frozenset({"hybrid", "collaborative", "content"})
EVALUATION_MODELS = frozenset({"xgboost", "lightgbm", "linear"})
# The switches this service knows; the platform's settings refuse any other name (tests keep the lists equal).
# market_analysis is reserved for the market-analysis endpoint: switchable, nothing behind it yet.
FEATURES = frozenset({"recommendation", "valuation", "market_analysis"})

_KEYS = frozenset({
    "app.name", "app.version", "app.environment",
    "recommendation.model", "recommendation.top_k",
    "evaluation.model", "evaluation.confidence_threshold",
    "ab_test.enabled", "ab_test.variant_b_percent", "ab_test.variant_b.recommendation_model",
    "grey_release.enabled", "grey_release.percent", "grey_release.header", "grey_release.features",
}) | {f"feature.{name}.enabled" for name in FEATURES}
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and never holds a secret value."""


@dataclass(frozen=True)
class AbTest:
    """Users split sticky into variant A (the configured model) and B (another model) by a hash of their id."""

    enabled: bool
    variant_b_percent: int
    variant_b_model: str


@dataclass(frozen=True)
class GreyRelease:
    """Features in the grey release are on for `percent` % of users (sticky); testers opt in or out with `header`."""

    enabled: bool
    percent: int
    header: str
    features: frozenset[str]


@dataclass(frozen=True)
class Properties:
    app_name: str
    app_version: str
    environment: str
    recommendation_model: str
    recommendation_top_k: int
    evaluation_model: str
    evaluation_confidence_threshold: float
    features: dict[str, bool]
    ab_test: AbTest
    grey_release: GreyRelease

    def feature_enabled(self, name: str) -> bool:
        # A switch that is not listed is on: flags turn features off, they do not gate new ones.
        return self.features.get(name, True)


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    milvus_url: str
    # Most PostgreSQL connections this process holds (the platform fits pods × pool into the connection budget).
    database_pool_size: int
    api_key: str
    properties: Properties
    build_revision: str
    # Required with the grey-release header: only its holders choose their cohort. Empty: nobody can.
    tester_key: str = ""
    # Seconds each dependency gets to answer a health probe; also the cache's per-operation budget.
    readiness_timeout: float = 1.0
    # Seconds a vector search or insert may take before the rule engine answers instead.
    vector_timeout: float = 2.0
    # PostgreSQL cancels a statement after this long: a locked table cannot hold the pool.
    statement_timeout: float = 5.0
    # How often the background probe checks each dependency; /ready reports its last result.
    probe_interval: float = 2.0
    # An open circuit breaker lets one trial call through after this long.
    breaker_reset: float = 5.0
    # How often each pod indexes listings saved while Milvus was unavailable.
    reconcile_interval: float = 10.0
    # How often one pod (any) compares every indexed listing with Milvus and re-queues what Milvus lost.
    audit_interval: float = 900.0
    # How often each pod adds the users it saw to Redis' activity counts and reads them back.
    activity_interval: float = 15.0
    # Largest request body read; larger ones are refused with 413 before parsing.
    max_body_bytes: int = 65536
    # Seconds a whole request body may take to arrive (408 after): a slow or stalled client frees its slot.
    body_timeout: float = 10.0
    # /v1/ requests one pod serves at once; beyond, 503 with Retry-After at once (probes and metrics still answer).
    max_in_flight: int = 256


def _parse_properties(text: str, source: str) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        if "=" not in line:
            raise SettingsError(f"{source}:{number}: expected key=value")
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in _KEYS:
            raise SettingsError(f"{source}:{number}: unknown key '{key}'")
        if key in values:
            raise SettingsError(f"{source}:{number}: {key} is set twice")
        values[key] = value
    return values


def _bool(values: dict[str, str], key: str, source: str, default: bool | None = None) -> bool:
    if key not in values:
        if default is None:
            raise SettingsError(f"{source}: {key} is required")
        return default
    if values[key] not in ("true", "false"):
        raise SettingsError(f"{source}: {key} must be true or false, got '{values[key]}'")
    return values[key] == "true"


def _int(values: dict[str, str], key: str, source: str, low: int, high: int, default: int | None = None) -> int:
    if key not in values and default is not None:
        return default
    try:
        number = int(values[key])
    except KeyError:
        raise SettingsError(f"{source}: {key} is required") from None
    except ValueError:
        raise SettingsError(f"{source}: {key} must be an integer, got '{values[key]}'") from None
    if not low <= number <= high:
        raise SettingsError(f"{source}: {key} must be between {low} and {high}, got {number}")
    return number


def _choice(values: dict[str, str], key: str, source: str, allowed: frozenset[str], default: str | None = None) -> str:
    if key not in values:
        if default is None:
            raise SettingsError(f"{source}: {key} is required")
        return default
    if values[key] not in allowed:
        raise SettingsError(f"{source}: {key} must be one of {', '.join(sorted(allowed))}, got '{values[key]}'")
    return values[key]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"APP_PROPERTIES: {path} does not exist") from None
    except IsADirectoryError:
        raise SettingsError(f"APP_PROPERTIES: {path} is a directory, not a properties file") from None
    except PermissionError:
        raise SettingsError(f"APP_PROPERTIES: {path} is not readable by this user") from None
    except UnicodeDecodeError:
        raise SettingsError(f"APP_PROPERTIES: {path} is not UTF-8 text") from None


def _ab_test(values: dict[str, str], source: str, model_a: str) -> AbTest:
    enabled = _bool(values, "ab_test.enabled", source, default=False)
    percent = _int(values, "ab_test.variant_b_percent", source, 0, 100, default=0)
    model_b = _choice(values, "ab_test.variant_b.recommendation_model", source, RECOMMENDATION_MODELS, default=model_a)
    if enabled and model_b == model_a:
        raise SettingsError(f"{source}: ab_test.variant_b.recommendation_model must differ from recommendation.model ({model_a})")
    return AbTest(enabled, percent, model_b)


def _grey_release(values: dict[str, str], source: str) -> GreyRelease:
    header = values.get("grey_release.header", "X-Grey-Release")
    if not _HEADER.match(header):
        raise SettingsError(f"{source}: grey_release.header must be an HTTP header name, got '{header}'")
    names = [name.strip() for name in values.get("grey_release.features", "").split(",") if name.strip()]
    unknown = sorted(set(names) - FEATURES)
    if unknown:
        raise SettingsError(f"{source}: grey_release.features names unknown features: {', '.join(unknown)}")
    return GreyRelease(
        enabled=_bool(values, "grey_release.enabled", source, default=False),
        percent=_int(values, "grey_release.percent", source, 0, 100, default=0),
        header=header,
        features=frozenset(names),
    )


def load_properties(path: Path) -> Properties:
    source = str(path)
    values = _parse_properties(_read(path), source)
    try:
        threshold = float(values.get("evaluation.confidence_threshold", ""))
    except ValueError:
        raise SettingsError(f"{source}: evaluation.confidence_threshold must be a number in (0, 1]") from None
    if not 0 < threshold <= 1:
        raise SettingsError(f"{source}: evaluation.confidence_threshold must be a number in (0, 1], got {threshold}")
    features = {name: _bool(values, f"feature.{name}.enabled", source) for name in FEATURES if f"feature.{name}.enabled" in values}
    for key in ("app.name", "app.version"):
        if not values.get(key):
            raise SettingsError(f"{source}: {key} is required")
    model = _choice(values, "recommendation.model", source, RECOMMENDATION_MODELS)
    return Properties(
        app_name=values["app.name"],
        app_version=values["app.version"],
        environment=values.get("app.environment", "dev"),
        recommendation_model=model,
        recommendation_top_k=_int(values, "recommendation.top_k", source, 1, 100),
        evaluation_model=_choice(values, "evaluation.model", source, EVALUATION_MODELS),
        evaluation_confidence_threshold=threshold,
        features=features,
        ab_test=_ab_test(values, source, model),
        grey_release=_grey_release(values, source),
    )


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(f"{name} is not set")
    # The value may hold a password: name the variable and the expected form only.
    problem = SettingsError(f"{name} must be a URL of the form {schemes[0]}://host:port/…")
    try:
        parsed = urlparse(value)
        parsed.port  # raises on a port that is not a number in range
    except ValueError:
        raise problem from None
    if parsed.scheme not in schemes or not parsed.hostname or not value.isprintable():
        raise problem
    return value


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    api_key = env.get("API_KEY", "")
    if len(api_key) < MIN_API_KEY_LENGTH:
        raise SettingsError(f"API_KEY must be set to at least {MIN_API_KEY_LENGTH} characters")
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss")),
        milvus_url=_url(env, "MILVUS_URL", ("http", "https")),
        api_key=api_key,
        tester_key=_tester_key(env),
        properties=load_properties(Path(env.get("APP_PROPERTIES", DEFAULT_PROPERTIES))),
        build_revision=env.get("BUILD_REVISION", "unknown"),
        readiness_timeout=env_seconds(env, "READINESS_TIMEOUT_SECONDS", 1.0),
        vector_timeout=env_seconds(env, "VECTOR_TIMEOUT_SECONDS", 2.0),
        statement_timeout=env_seconds(env, "DATABASE_STATEMENT_TIMEOUT_SECONDS", 5.0),
        probe_interval=env_seconds(env, "HEALTH_PROBE_INTERVAL_SECONDS", 2.0),
        breaker_reset=env_seconds(env, "BREAKER_RESET_SECONDS", 5.0),
        reconcile_interval=env_seconds(env, "RECONCILE_INTERVAL_SECONDS", 10.0),
        audit_interval=env_seconds(env, "LISTING_AUDIT_INTERVAL_SECONDS", 900.0, high=86400),
        activity_interval=env_seconds(env, "ACTIVE_USERS_FLUSH_SECONDS", 15.0, high=300),
        database_pool_size=_count(env, "DATABASE_POOL_SIZE", 10, 100),
        max_body_bytes=_count(env, "MAX_BODY_BYTES", 65536, 10 * 1024 * 1024),
        body_timeout=env_seconds(env, "BODY_READ_TIMEOUT_SECONDS", 10.0, high=60),
        max_in_flight=_count(env, "MAX_IN_FLIGHT_REQUESTS", 256, 10_000),
    )


def _tester_key(env: Mapping[str, str]) -> str:
    key = env.get("TESTER_KEY", "")
    if key and len(key) < MIN_API_KEY_LENGTH:
        raise SettingsError(f"TESTER_KEY must be empty or at least {MIN_API_KEY_LENGTH} characters")
    return key


def env_seconds(env: Mapping[str, str], name: str, default: float, high: float = 30) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if not 0 < value <= high:
        raise SettingsError(f"{name} must be between 0 and {high:g} seconds")
    return value


def _count(env: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise SettingsError(f"{name} must be a whole number from 1 to {high}")
    return int(raw)
