"""Reading a stack's configuration: once, at the edge, into typed settings — or one StackConfigError naming the
stack and every bad key path with what is allowed there, before any resource is registered. Secret overrides are
read only as Pulumi secrets and never echoed."""

from __future__ import annotations

import json
import re
from typing import Any, Optional

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BaseModel, ValidationError

from settings import rules
from settings.monitoring import HTTPS_URL_RE
from settings.platform import PlatformConfig
from settings.values import check_url_authority

PROJECT = "real-estate-ai"

# Secret overrides: optional, read only as Pulumi secrets. A generated value is used otherwise.
SECRET_KEYS = (
    "redisPassword",
    "apiKey",
    "apiTesterKey",
    "objectStorePassword",
    "backupOffsiteAccessKeyId",
    "backupOffsiteSecretAccessKey",
    "backupOffsiteCipherPass",
    "milvusS3AccessKeyId",
    "milvusS3SecretAccessKey",
    "alertSmtpPassword",
    "alertWecomApiSecret",
    "alertSmsWebhookUrl",
    "alertDingtalkRobotUrl",
    "alertDingtalkRobotSecret",
    "alertHeartbeatUrl",
)
# Credentials of the off-site backup repository: needed, as secrets, whenever it is enabled.
OFFSITE_SECRET_KEYS = ("backupOffsiteAccessKeyId", "backupOffsiteSecretAccessKey")
# These identify an account at someone else's service; they are as long as that service makes them.
MILVUS_S3_SECRET_KEYS = ("milvusS3AccessKeyId", "milvusS3SecretAccessKey")
# Credentials of the alert channels (mail server, WeCom app, SMS gateway).
ALERT_SECRET_KEYS = ("alertSmtpPassword", "alertWecomApiSecret", "alertSmsWebhookUrl", "alertDingtalkRobotUrl", "alertDingtalkRobotSecret",
                     "alertHeartbeatUrl")
EXTERNAL_SECRET_KEYS = set(OFFSITE_SECRET_KEYS) | set(MILVUS_S3_SECRET_KEYS) | set(ALERT_SECRET_KEYS)
MIN_SECRET_LENGTH = 32


class StackConfigError(pulumi.RunError):
    """A stack's configuration is invalid; Pulumi prints the message without a traceback."""


class SecretOverrides:
    """User-supplied secret values (Pulumi secrets), or None where a value is generated."""

    def __init__(self, values: dict[str, pulumi.Output[str]]):
        self._values = values

    def get(self, key: str) -> Optional[pulumi.Output[str]]:
        return self._values.get(key)


class PlatformSettings:
    """Validated settings handed to the components."""

    def __init__(self, stack: str, config: PlatformConfig, secrets: SecretOverrides):
        self.stack = stack
        self.config = config
        self.secrets = secrets


def _project_config() -> dict[str, Any]:
    """Every `real-estate-ai:*` config value the engine passed, keyed without the namespace."""
    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: value for key, value in raw.items() if key.startswith(prefix)}


def _decode(value: Any) -> Any:
    """Structured config arrives JSON-encoded; scalars arrive as strings that pydantic coerces."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, (dict, list)):
            return decoded
    return value


def plain_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A stack's non-secret config (keys without the project prefix) with its structured values decoded."""
    return {key: _decode(value) for key, value in raw.items() if key not in SECRET_KEYS}


def one_line(message: str) -> str:
    """`message` with every character that is not printable escaped (a line break as \\n, an ANSI escape as \\x1b):
    whatever a value holds, its problem is one line, and no value can print a line of its own (a forged success
    line) or drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def _key_path(loc: tuple[Any, ...]) -> str:
    path = f"{PROJECT}:"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += part if path.endswith(":") else f".{part}"
    return path


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed next to an unknown key at `loc`, for the error message."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        current = field.annotation
        args = getattr(current, "__args__", ())
        if args and not (isinstance(current, type) and issubclass(current, BaseModel)):
            current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _describe(error: dict[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(PlatformConfig, loc)
        if len(loc) == 1:
            allowed = sorted(allowed + list(SECRET_KEYS))
        return f"unknown key; allowed here: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "model_type":
        allowed = _allowed_keys(PlatformConfig, (*loc, "?"))
        return f"must be an object with the keys: {', '.join(allowed)}"
    return message


# Secrets whose shape a consumer needs, checked here, where their values are still plain and before any resource is
# registered (the value is never shown: these URLs carry tokens).
_ROBOT_URL_RE = re.compile(HTTPS_URL_RE.pattern + r"\?[A-Za-z0-9._~%=&-]+")
# Each with a value of its shape that reaches nobody (the offline render's stand-in).
SECRET_SHAPES: dict[str, tuple[re.Pattern, str, str]] = {
    # The recipients are added as its query (components/alerting.py).
    "alertSmsWebhookUrl": (HTTPS_URL_RE, "an https URL without query or fragment", "https://sms.invalid/hook"),
    "alertHeartbeatUrl": (re.compile(HTTPS_URL_RE.pattern + "/?"), "an https URL without query or fragment",
                          "https://heartbeat.invalid/ping"),
    "alertDingtalkRobotUrl": (_ROBOT_URL_RE, "the robot's https webhook URL with its access_token query",
                              "https://robot.invalid/robot/send?access_token=stand-in"),
}


def _dialable(url: str) -> bool:
    """The URL's host and port are ones a client can dial (its problem would name the host: a secret's is not shown)."""
    try:
        check_url_authority(url)
    except ValueError:
        return False
    return True


def required_secret_keys(config: Optional[PlatformConfig]) -> dict[str, str]:
    """Secret config keys this configuration cannot deploy without, each with why."""
    required: dict[str, str] = {}
    if config is not None and config.backups.enabled and config.backups.offsite.enabled:
        required.update({key: "is required while backups.offsite.enabled is true" for key in OFFSITE_SECRET_KEYS})
    if config is not None and config.milvus.external_s3 is not None:
        required.update({key: "is required while milvus.externalS3 is set" for key in MILVUS_S3_SECRET_KEYS})
    alerting = config.monitoring.alerting if config is not None else None
    if alerting is not None and alerting.notify:
        if alerting.smtp is not None and alerting.smtp.username:
            required["alertSmtpPassword"] = "is required while monitoring.alerting.smtp.username is set"
        if alerting.wecom is not None:
            required["alertWecomApiSecret"] = "is required while monitoring.alerting.wecom is set (the WeCom app's secret)"
        if alerting.sms_gateway:
            required["alertSmsWebhookUrl"] = "is required while monitoring.alerting.smsGateway is true (the gateway's webhook URL)"
        if alerting.heartbeat:
            required["alertHeartbeatUrl"] = "is required while monitoring.alerting.heartbeat is true (the heartbeat service's URL)"
        if alerting.dingtalk is not None and alerting.dingtalk.deploy:
            required["alertDingtalkRobotUrl"] = "is required while monitoring.alerting.dingtalk.deploy is true (the robot's webhook URL)"
            required["alertDingtalkRobotSecret"] = "is required while monitoring.alerting.dingtalk.deploy is true (the robot's signing secret)"
    if config is not None and config.postgres.standby is not None:
        required["backupOffsiteCipherPass"] = (
            "is required with postgres.standby: the primary stack's passphrase "
            "(`pulumi stack output offsiteBackupCipherPass --show-secrets` there)"
        )
    if config is not None and config.postgres.restore_from is not None:
        required["backupOffsiteCipherPass"] = (
            "is required with postgres.restoreFrom: the source stack's passphrase "
            "(`pulumi stack output offsiteBackupCipherPass --show-secrets` there)"
        )
    return required


def load_settings(stack: Optional[str] = None, raw: Optional[dict[str, Any]] = None) -> PlatformSettings:
    """Validate the stack's config. Raises StackConfigError naming every bad key path."""
    stack = stack or pulumi.get_stack()
    raw = _project_config() if raw is None else raw
    problems: list[str] = []

    try:
        config = PlatformConfig.model_validate(plain_values(raw))
    except ValidationError as exc:
        config = None
        for error in exc.errors():
            path = _key_path(error["loc"]) if error["loc"] else f"{PROJECT}:"
            problems.append(f"{path}: {_describe(error)}")

    secrets: dict[str, pulumi.Output[str]] = {}
    for key, why in required_secret_keys(config).items():
        if key not in raw:
            problems.append(f"{PROJECT}:{key}: {why}; set it with `pulumi config set --secret {key}`")
    for key in SECRET_KEYS:
        if key not in raw:
            continue
        full_key = f"{PROJECT}:{key}"
        value = raw[key]
        if not runtime_config.is_config_secret(full_key):
            problems.append(
                f"{full_key}: is stored in plain text; set it with `pulumi config set --secret {key}` or remove it"
            )
        elif not isinstance(value, str) or len(value) < (1 if key in EXTERNAL_SECRET_KEYS else MIN_SECRET_LENGTH):
            # The value itself is never echoed.
            minimum = 1 if key in EXTERNAL_SECRET_KEYS else MIN_SECRET_LENGTH
            problems.append(f"{full_key}: must be a string of at least {minimum} characters")
        elif not value.isprintable() or len(value) > 1024:
            # Secrets are written into configuration files: a line break would add a line of its own.
            problems.append(f"{full_key}: must be one line of at most 1024 printable characters")
        elif value != value.strip():
            # pgBackRest trims a value in its files (tests/backup/test_offsite_credentials.py): a passphrase read
            # back from `pulumi stack output` would then not open the repository it encrypted.
            problems.append(f"{full_key}: must not begin or end with a space (configuration files drop it)")
        elif key in SECRET_SHAPES and not (SECRET_SHAPES[key][0].fullmatch(value) and _dialable(value)):
            problems.append(f"{full_key}: must be {SECRET_SHAPES[key][1]} (the value is not shown: it may carry a token)")
        else:
            secrets[key] = pulumi.Output.secret(value)

    if config is not None:
        problems.extend(rules.problems(config, stack))
    if problems:
        raise StackConfigError(
            f"invalid configuration for stack '{stack}':\n" + "\n".join(f"  - {one_line(p)}" for p in problems)
        )
    assert config is not None
    return PlatformSettings(stack=stack, config=config, secrets=SecretOverrides(secrets))
