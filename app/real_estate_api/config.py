"""Settings from the environment and the mounted app.properties, validated once at start-up.

A missing or malformed setting raises SettingsError naming the setting; secret values are never
part of any message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

DEFAULT_PROPERTIES = "/etc/real-estate-ai/app.properties"
MIN_API_KEY_LENGTH = 16


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and never holds a secret value."""


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
    grey_release_enabled: bool
    grey_release_percent: int

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
    # Seconds each dependency gets to answer a readiness check.
    readiness_timeout: float = 1.0


RECOMMENDATION_MODELS = {"hybrid", "collaborative", "content"}
EVALUATION_MODELS = {"xgboost", "lightgbm", "linear"}


def _parse_properties(text: str, source: str) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        if "=" not in line:
            raise SettingsError(f"{source}:{number}: expected key=value")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def _bool(values: dict[str, str], key: str, source: str, default: bool | None = None) -> bool:
    if key not in values:
        if default is None:
            raise SettingsError(f"{source}: {key} is required")
        return default
    if values[key] not in ("true", "false"):
        raise SettingsError(f"{source}: {key} must be true or false, got '{values[key]}'")
    return values[key] == "true"


def _int(values: dict[str, str], key: str, source: str, low: int, high: int) -> int:
    try:
        number = int(values[key])
    except KeyError:
        raise SettingsError(f"{source}: {key} is required") from None
    except ValueError:
        raise SettingsError(f"{source}: {key} must be an integer, got '{values[key]}'") from None
    if not low <= number <= high:
        raise SettingsError(f"{source}: {key} must be between {low} and {high}, got {number}")
    return number


def _choice(values: dict[str, str], key: str, source: str, allowed: set[str]) -> str:
    if key not in values:
        raise SettingsError(f"{source}: {key} is required")
    if values[key] not in allowed:
        raise SettingsError(f"{source}: {key} must be one of {', '.join(sorted(allowed))}, got '{values[key]}'")
    return values[key]


def load_properties(path: Path) -> Properties:
    source = str(path)
    try:
        values = _parse_properties(path.read_text(), source)
    except FileNotFoundError:
        raise SettingsError(f"APP_PROPERTIES: {source} does not exist") from None
    try:
        threshold = float(values.get("evaluation.confidence_threshold", ""))
    except ValueError:
        raise SettingsError(f"{source}: evaluation.confidence_threshold must be a number in (0, 1]") from None
    if not 0 < threshold <= 1:
        raise SettingsError(f"{source}: evaluation.confidence_threshold must be a number in (0, 1], got {threshold}")
    features = {
        key[len("feature."):-len(".enabled")]: _bool(values, key, source)
        for key in values
        if key.startswith("feature.") and key.endswith(".enabled")
    }
    for key in ("app.name", "app.version"):
        if not values.get(key):
            raise SettingsError(f"{source}: {key} is required")
    return Properties(
        app_name=values["app.name"],
        app_version=values["app.version"],
        environment=values.get("app.environment", "dev"),
        recommendation_model=_choice(values, "recommendation.model", source, RECOMMENDATION_MODELS),
        recommendation_top_k=_int(values, "recommendation.top_k", source, 1, 100),
        evaluation_model=_choice(values, "evaluation.model", source, EVALUATION_MODELS),
        evaluation_confidence_threshold=threshold,
        features=features,
        grey_release_enabled=_bool(values, "grey_release.enabled", source, default=False),
        grey_release_percent=_int(values, "grey_release.percent", source, 0, 100) if "grey_release.percent" in values else 0,
    )


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(f"{name} is not set")
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.hostname:
        # The value may hold a password: name the variable and the expected form only.
        raise SettingsError(f"{name} must be a URL of the form {schemes[0]}://host:port/…")
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
        properties=load_properties(Path(env.get("APP_PROPERTIES", DEFAULT_PROPERTIES))),
        build_revision=env.get("BUILD_REVISION", "unknown"),
        readiness_timeout=_seconds(env, "READINESS_TIMEOUT_SECONDS", 1.0),
        database_pool_size=_count(env, "DATABASE_POOL_SIZE", 10),
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if not 0 < value <= 30:
        raise SettingsError(f"{name} must be between 0 and 30 seconds")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise SettingsError(f"{name} must be a whole number from 1 to 100")
    return int(raw)
