import json
from urllib.parse import unquote, urlparse

import yaml
from components.object_store import S3Endpoint
from components.secrets import PlatformSecrets, SecretsArgs
from settings import SecretOverrides
import pulumi
from tests.harness import is_secret, run_component, value


def _secrets(overrides=None, protect=True, offsite=False):
    return PlatformSecrets(
        "secrets",
        SecretsArgs(
            namespace="estate",
            stack="test",
            overrides=SecretOverrides(overrides or {}),
            offsite_backups=offsite,
            redis_host="redis.estate.svc.cluster.local",
            milvus_host="milvus.estate.svc.cluster.local",
            milvus_s3=S3Endpoint("milvus-s3.estate.svc.cluster.local", 8333, False, "milvus", "us-east-1"),
            protect=protect,
        ),
    )


def test_passwords_are_generated_long_and_url_safe():
    rendered, _ = run_component(_secrets)
    passwords = [r for r in rendered.registrations if r.type == "random:index/randomPassword:RandomPassword"]
    # PostgreSQL's passwords are the operator's: generated in the cluster, never in Pulumi state.
    assert sorted(r.name for r in passwords) == ["secrets-api-key", "secrets-api-tester-key", "secrets-milvus-s3-secret-key",
                                                 "secrets-redis-password"]
    for r in passwords:
        assert r.inputs["length"] >= 32 and r.inputs["special"] is False
        assert r.protect is True


def test_api_secret_carries_the_spec_keys_built_from_the_credentials():
    rendered, secrets = run_component(_secrets)
    api = rendered.find("Secret", "api-secrets")["stringData"]
    assert set(api) == {"redis-url", "milvus-url", "api-key", "tester-key"}
    assert api["tester-key"] != api["api-key"]
    redis = urlparse(api["redis-url"])
    assert redis.password == rendered.find("Secret", "redis-credentials")["stringData"]["password"]
    assert redis.hostname == "redis.estate.svc.cluster.local" and redis.port == 6379
    assert api["milvus-url"] == "http://milvus.estate.svc.cluster.local:19530"
    assert is_secret(secrets.api_key) and value(secrets.api_key) == api["api-key"]


def test_redis_and_milvus_files_hold_the_same_credentials():
    rendered, _ = run_component(_secrets)
    redis = rendered.find("Secret", "redis-credentials")["stringData"]
    # Quoted for Redis' config tokenizer (tests/test_redis.py runs a real Redis on hostile passwords).
    assert redis["requirepass.conf"] == f'requirepass "{redis["password"]}"\n'
    assert redis["password"].isalnum()
    store = json.loads(rendered.find("Secret", "milvus-s3-credentials")["stringData"]["s3.json"])
    (credential,) = store["identities"][0]["credentials"]
    user_yaml = yaml.safe_load(rendered.find("Secret", "milvus-user-config")["stringData"]["user.yaml"])
    assert user_yaml["minio"]["accessKeyID"] == credential["accessKey"]
    assert user_yaml["minio"]["secretAccessKey"] == credential["secretKey"]
    assert "minioadmin" not in (credential["accessKey"], credential["secretKey"])


def test_passwords_given_as_overrides_are_escaped_in_urls():
    chosen = "p@ss:w/rd#" + "x" * 30
    rendered, _ = run_component(lambda: _secrets({"redisPassword": pulumi.Output.secret(chosen)}))
    url = urlparse(rendered.find("Secret", "api-secrets")["stringData"]["redis-url"])
    assert (url.hostname, url.port) == ("redis.estate.svc.cluster.local", 6379)
    assert unquote(url.password) == chosen


def test_checksums_follow_the_secret_values_without_being_secrets():
    _, first = run_component(_secrets)
    _, second = run_component(lambda: _secrets({"redisPassword": pulumi.Output.secret("r" * 40)}))
    assert value(first.api_checksum) != value(second.api_checksum)
    assert value(first.redis_credentials.checksum) != value(second.redis_credentials.checksum)
    assert not is_secret(first.api_checksum) and len(value(first.api_checksum)) == 64


def test_override_replaces_generation():
    chosen = "x" * 40
    rendered, _ = run_component(lambda: _secrets({"redisPassword": pulumi.Output.secret(chosen)}))
    assert "secrets-redis-password" not in [r.name for r in rendered.registrations]
    assert rendered.find("Secret", "redis-credentials")["stringData"]["password"] == chosen
    assert f":{chosen}@" in rendered.find("Secret", "api-secrets")["stringData"]["redis-url"]


def test_offsite_cipher_passphrase_is_generated_protected_and_secret():
    rendered, secrets = run_component(lambda: _secrets(protect=False, offsite=True))
    cipher = next(r for r in rendered.registrations if r.name == "secrets-backup-offsite-cipher-pass")
    # Losing it loses every off-site backup: protected even where protectData is off.
    assert cipher.protect is True and cipher.inputs["length"] >= 32
    assert is_secret(secrets.offsite_cipher_pass)
    _, without = run_component(_secrets)
    assert without.offsite_cipher_pass is None


def test_offsite_cipher_passphrase_override_is_used_for_disaster_recovery():
    chosen = "c" * 48
    rendered, secrets = run_component(lambda: _secrets({"backupOffsiteCipherPass": pulumi.Output.secret(chosen)}, offsite=True))
    assert "secrets-backup-offsite-cipher-pass" not in [r.name for r in rendered.registrations]
    assert value(secrets.offsite_cipher_pass) == chosen
