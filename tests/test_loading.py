"""load_settings' report (settings/loading.py): how a bad key path is named, what is listed beside an unknown key,
each secret rule at its length limits, and which secrets a configuration needs — on a minimal dev stack, so each case
is fast."""

from __future__ import annotations

import json

import pytest

from settings.loading import (
    MIN_SECRET_LENGTH,
    PROJECT,
    SECRET_KEYS,
    StackConfigError,
    _allowed_keys,
    _decode,
    _describe,
    _key_path,
    load_settings,
    plain_values,
    required_secret_keys,
)
from settings.platform import ApiSettings, PlatformConfig
from tests.test_platform_settings import MINIMAL
from tools.render import run_program


def load(config: dict | None = None, secrets: dict | None = None, plain: dict | None = None, stack: str = "dev"):
    """load_settings as `pulumi up` runs it: structured values JSON-encoded, `secrets` marked secret."""
    values = {**(MINIMAL if config is None else config), **(secrets or {}), **(plain or {})}
    encoded = {f"{PROJECT}:{k}": json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in values.items()}
    _, settings = run_program(stack, load_settings, encoded, [f"{PROJECT}:{k}" for k in secrets or {}])
    return settings


def problems(config: dict | None = None, secrets: dict | None = None, plain: dict | None = None, stack: str = "dev") -> list[str]:
    with pytest.raises(StackConfigError) as error:
        load(config, secrets, plain, stack)
    first, *lines = str(error.value).splitlines()
    assert first == f"invalid configuration for stack '{stack}':"
    assert all(line.startswith("  - ") for line in lines)
    return [line[4:] for line in lines]


def test_key_paths():
    assert _key_path(("api", "replicas")) == "real-estate-ai:api.replicas"
    assert _key_path(("monitoring", "alerting", "onCall", "emails", 0)) == "real-estate-ai:monitoring.alerting.onCall.emails[0]"
    assert _key_path(("environment",)) == "real-estate-ai:environment"


def test_allowed_keys_beside_an_unknown_one():
    assert _allowed_keys(PlatformConfig, ("api", "replica")) == sorted(
        f.alias for f in ApiSettings.model_fields.values())
    # Through an optional model.
    assert _allowed_keys(PlatformConfig, ("api", "autoscaling", "x")) == [
        "maxReplicas", "minReplicas", "targetCpuUtilization"]
    assert _allowed_keys(PlatformConfig, ("environment", "x")) == []
    # Below a value that is not an object (a Literal, a plain type), there is nothing to list.
    assert _allowed_keys(PlatformConfig, ("environment", "x", "y")) == []
    assert _allowed_keys(PlatformConfig, ("protectData", "x", "y")) == []
    assert _allowed_keys(PlatformConfig, ("nothing", "x")) == []
    assert _allowed_keys(PlatformConfig, ("api", "loadBalancerSourceRanges", 0, "x")) == []
    # Snake-case names are found too.
    assert _allowed_keys(PlatformConfig, ("app_config", "x")) == _allowed_keys(PlatformConfig, ("appConfig", "x"))


def test_descriptions_of_each_kind_of_problem():
    assert _describe({"loc": ("api", "replica"), "type": "extra_forbidden", "msg": "Extra inputs are not permitted"}) == (
        "unknown key; allowed here: " + ", ".join(sorted(f.alias for f in ApiSettings.model_fields.values())))
    top = _describe({"loc": ("replicas",), "type": "extra_forbidden", "msg": ""})
    assert top == "unknown key; allowed here: " + ", ".join(sorted(
        [f.alias for f in PlatformConfig.model_fields.values()] + list(SECRET_KEYS)))
    assert _describe({"loc": ("api",), "type": "missing", "msg": "Field required"}) == "is required"
    assert _describe({"loc": ("api", "autoscaling"), "type": "model_type", "msg": "Input should be an object"}) == (
        "must be an object with the keys: maxReplicas, minReplicas, targetCpuUtilization")
    assert _describe({"loc": ("api",), "type": "value_error", "msg": "Value error, broken"}) == "broken"
    assert _describe({"loc": ("api",), "type": "int_parsing", "msg": "Input should be a valid integer"}) == (
        "Input should be a valid integer")


def test_structured_values_are_decoded_and_secrets_left_out():
    assert _decode('{"a": 1}') == {"a": 1} and _decode("[1]") == [1]
    assert _decode("3") == "3" and _decode("true") == "true" and _decode("not json") == "not json"
    assert _decode(3) == 3
    assert plain_values({"api": '{"replicas": 1}', "apiKey": "k" * 40, "environment": "dev"}) == {
        "api": {"replicas": 1}, "environment": "dev"}


def test_a_minimal_dev_stack_loads():
    settings = load()
    assert (settings.stack, settings.config.environment, settings.config.api.replicas) == ("dev", "dev", 1)
    assert settings.secrets.get("apiKey") is None


def test_every_problem_on_its_own_line_with_its_key_path():
    config = {**MINIMAL, "api": {"replicas": 0, "version": "1.0.0", "replica": 1}, "protectData": "sometimes"}
    del config["ingress"]
    found = problems(config)
    assert "real-estate-ai:api.replicas: Input should be greater than or equal to 1" in found
    assert any(p.startswith("real-estate-ai:api.replica: unknown key; allowed here: ") for p in found)
    assert "real-estate-ai:ingress: is required" in found
    assert "real-estate-ai:protectData: Input should be a valid boolean, unable to interpret input" in found


@pytest.mark.parametrize("key", ["apiKey", "redisPassword", "objectStorePassword"])
def test_generated_secret_overrides_are_at_least_32_characters(key):
    assert load(secrets={key: "k" * MIN_SECRET_LENGTH}).secrets.get(key) is not None
    assert problems(secrets={key: "k" * (MIN_SECRET_LENGTH - 1)}) == [
        f"real-estate-ai:{key}: must be a string of at least 32 characters"]
    assert MIN_SECRET_LENGTH == 32


def test_someone_elses_credentials_may_be_short():
    assert load(secrets={"alertWecomApiSecret": "w"}).secrets.get("alertWecomApiSecret") is not None
    assert problems(secrets={"alertWecomApiSecret": ""}) == [
        "real-estate-ai:alertWecomApiSecret: must be a string of at least 1 characters"]


def test_secrets_are_one_printable_line_of_at_most_1024():
    assert load(secrets={"apiKey": "k" * 1024}).secrets.get("apiKey") is not None
    too_long = "real-estate-ai:apiKey: must be one line of at most 1024 printable characters"
    assert problems(secrets={"apiKey": "k" * 1025}) == [too_long]
    assert problems(secrets={"apiKey": "k" * 40 + "\tx"}) == [too_long]


def test_a_plain_text_secret_is_refused_without_its_value():
    found = problems(plain={"apiKey": "p" * 40})
    assert found == ["real-estate-ai:apiKey: is stored in plain text; set it with `pulumi config set --secret apiKey` or remove it"]


def test_a_required_secret_is_asked_for_by_its_command():
    config = {**MINIMAL, "postgres": {"restoreFrom": {"path": "/pgbackrest/old"}},
              "backups": {"offsite": {"enabled": True, "endpoint": "s3.example.com", "bucket": "backups"}}}
    credentials = {"backupOffsiteAccessKeyId": "AKID", "backupOffsiteSecretAccessKey": "secret"}
    assert problems(config, credentials) == [
        "real-estate-ai:backupOffsiteCipherPass: is required with postgres.restoreFrom: the source stack's passphrase "
        "(`pulumi stack output offsiteBackupCipherPass --show-secrets` there); "
        "set it with `pulumi config set --secret backupOffsiteCipherPass`"]
    assert load(config, {**credentials, "backupOffsiteCipherPass": "c" * 32}).config.postgres.restore_from is not None


def _config(**changes) -> PlatformConfig:
    return PlatformConfig.model_validate({**MINIMAL, **changes})


def test_required_secrets_follow_what_is_switched_on():
    assert required_secret_keys(None) == {}
    assert required_secret_keys(_config()) == {}
    offsite = {"offsite": {"enabled": True, "endpoint": "s3.example.com", "bucket": "backups"}}
    assert required_secret_keys(_config(backups=offsite)) == {
        "backupOffsiteAccessKeyId": "is required while backups.offsite.enabled is true",
        "backupOffsiteSecretAccessKey": "is required while backups.offsite.enabled is true"}
    # Backups off: the off-site repository is not written, its credentials are not needed.
    assert required_secret_keys(_config(backups={**offsite, "enabled": False})) == {}
    assert required_secret_keys(_config(milvus={"externalS3": {"endpoint": "s3.example.com", "bucket": "milvus"}})) == {
        "milvusS3AccessKeyId": "is required while milvus.externalS3 is set",
        "milvusS3SecretAccessKey": "is required while milvus.externalS3 is set"}


def test_required_alert_secrets():
    everything = {"smtp": {"smarthost": "smtp.example.com:587", "sender": "a@example.com", "username": "alerts"},
                  "wecom": {"corpId": "corp", "agentId": "7"}, "dingtalk": {"deploy": True}, "smsGateway": True,
                  "onCall": {"dingtalk": True}, "techLead": {"dingtalk": True}, "management": {"dingtalk": True}}
    assert required_secret_keys(_config(monitoring={"alerting": everything})) == {
        "alertSmtpPassword": "is required while monitoring.alerting.smtp.username is set",
        "alertWecomApiSecret": "is required while monitoring.alerting.wecom is set (the WeCom app's secret)",
        "alertSmsWebhookUrl": "is required while monitoring.alerting.smsGateway is true (the gateway's webhook URL)",
        "alertDingtalkRobotUrl": "is required while monitoring.alerting.dingtalk.deploy is true (the robot's webhook URL)",
        "alertDingtalkRobotSecret": "is required while monitoring.alerting.dingtalk.deploy is true (the robot's signing secret)",
    }
    # Nobody notified: no channel is used, none of its secrets is needed.
    assert required_secret_keys(_config(monitoring={"alerting": {**everything, "notify": False}})) == {}
    # A mail server without login, a bridge run elsewhere.
    modest = {**everything, "smtp": {**everything["smtp"], "username": None}, "wecom": None, "smsGateway": False,
              "dingtalk": {"bridgeUrl": "http://bridge:8060"}}
    assert required_secret_keys(_config(monitoring={"alerting": modest})) == {}


ALL_SECRET_KEYS = ["redisPassword", "apiKey", "apiTesterKey", "objectStorePassword", "backupOffsiteAccessKeyId",
                   "backupOffsiteSecretAccessKey", "backupOffsiteCipherPass", "milvusS3AccessKeyId", "milvusS3SecretAccessKey",
                   "alertSmtpPassword", "alertWecomApiSecret", "alertSmsWebhookUrl", "alertDingtalkRobotUrl",
                   "alertDingtalkRobotSecret", "alertHeartbeatUrl"]
# Someone else's credentials, as short as their service makes them (a valid URL where a shape is checked).
SHORT = {"backupOffsiteAccessKeyId": "AKID", "backupOffsiteSecretAccessKey": "s", "milvusS3AccessKeyId": "AKID",
         "milvusS3SecretAccessKey": "s", "alertSmtpPassword": "p", "alertWecomApiSecret": "w",
         "alertSmsWebhookUrl": "https://s.io", "alertDingtalkRobotUrl": "https://r.io/send?access_token=t",
         "alertDingtalkRobotSecret": "s", "alertHeartbeatUrl": "https://h.io"}


@pytest.mark.parametrize("key", ALL_SECRET_KEYS)
def test_every_secret_key_is_read_only_as_a_secret(key):
    assert problems(plain={key: SHORT.get(key, "p" * 40)}) == [
        f"real-estate-ai:{key}: is stored in plain text; set it with `pulumi config set --secret {key}` or remove it"]


@pytest.mark.parametrize("key", ALL_SECRET_KEYS)
def test_only_someone_elses_credentials_may_be_short(key):
    if key in SHORT:
        assert load(secrets={key: SHORT[key]}).secrets.get(key) is not None
    else:
        assert problems(secrets={key: "k" * 31}) == [f"real-estate-ai:{key}: must be a string of at least 32 characters"]


@pytest.mark.parametrize("key,what", [
    ("alertSmsWebhookUrl", "an https URL without query or fragment"),
    ("alertHeartbeatUrl", "an https URL without query or fragment"),
    ("alertDingtalkRobotUrl", "the robot's https webhook URL with its access_token query"),
])
def test_a_secret_url_of_the_wrong_shape_is_named_without_its_value(key, what):
    for wrong in ("http://hook.example.com/x?token=t0k3n", "https://010.0.0.1/t0k3n", "https://hook.example.com:0/t0k3n"):
        found = problems(secrets={key: wrong})
        assert found == [f"real-estate-ai:{key}: must be {what} (the value is not shown: it may carry a token)"]
        assert "t0k3n" not in "".join(found)


def test_a_robot_url_with_its_query_and_no_path_is_taken():
    for url in ("https://robot.example.com?access_token=a.123", "https://robot.example.com:8443?access_token=abc"):
        assert load(secrets={"alertDingtalkRobotUrl": url}).secrets.get("alertDingtalkRobotUrl") is not None


def test_a_section_that_is_no_object_lists_its_keys():
    assert problems({**MINIMAL, "namespace": "real-estate"}) == [
        "real-estate-ai:namespace: must be an object with the keys: name, podSecurity"]
