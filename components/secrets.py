"""Every credential of the platform: generated with pulumi-random unless overridden by a secret config value,
kept as Pulumi secrets and written only to Kubernetes Secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from urllib.parse import quote

import yaml

from settings import MIN_SECRET_LENGTH, SecretOverrides
from components import object_store
from components.workload import SecretKeyRef, labels, sha256
from components.component import Component

PASSWORD_LENGTH = 40
assert PASSWORD_LENGTH >= MIN_SECRET_LENGTH

REDIS_SECRET = "redis-credentials"
MILVUS_S3_SECRET = "milvus-s3-credentials"
MILVUS_CONFIG_SECRET = "milvus-user-config"
API_SECRET = "api-secrets"
BACKUP_S3_SECRET = "backup-s3-credentials"


def config_string(value: str) -> str:
    """`value` as one argument of a redis.conf line: double-quoted, with `\\`, `"` and every byte outside printable
    ASCII escaped (`\\xHH`), which Redis' own config tokenizer (sds.c sdssplitargs) reads back exactly. Unquoted, a
    password with a space or a quote stops Redis at start, and Redis prints the line, password included, to its log."""
    escaped = "".join(
        "\\\\" if byte == 0x5C else '\\"' if byte == 0x22 else chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}"
        for byte in value.encode()
    )
    return f'"{escaped}"'


def requirepass_conf(password: str) -> str:
    """The redis.conf fragment the Secret holds, included at start (never a command-line argument)."""
    return f"requirepass {config_string(password)}\n"


@dataclass(frozen=True)
class RedisCredentials:
    secret_name: pulumi.Input[str]
    password_key: str
    # A redis.conf fragment holding `requirepass`.
    config_key: str
    checksum: pulumi.Output[str]


@dataclass(frozen=True)
class S3Credentials:
    """One object store's access key pair, and the Secret holding its identities file (None: an external store)."""

    secret_name: Optional[pulumi.Input[str]]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    # Changes with the credentials: pods that read them restart.
    checksum: pulumi.Output[str]


def checksum(*values: pulumi.Input[str]) -> pulumi.Output[str]:
    """A digest of secret values for a pod annotation: it rolls the pods that read them when they change, and
    reveals nothing of 32+ random characters, so it is not itself a secret."""
    return pulumi.Output.unsecret(pulumi.Output.all(*values).apply(lambda parts: sha256("\0".join(parts))))


def milvus_user_yaml(store: object_store.S3Endpoint, access_key: str, secret_key: str) -> str:
    """Milvus' user.yaml: its object store (any S3 API with signature v4 is 'aws') and a local write-ahead log."""
    return yaml.safe_dump({
        "minio": {
            "address": store.host, "port": store.port, "accessKeyID": access_key, "secretAccessKey": secret_key,
            "useSSL": store.use_ssl, "bucketName": store.bucket, "rootPath": "files", "cloudProvider": "aws",
            "useVirtualHost": False, "region": store.region,
        },
        # Standalone keeps its message log on its own volume, not in the object store.
        "mq": {"type": "rocksmq"},
    }, sort_keys=False)


@dataclass
class SecretsArgs:
    namespace: pulumi.Input[str]
    stack: str
    overrides: SecretOverrides
    redis_host: str
    milvus_host: str
    # Milvus' object store: in the cluster (credentials generated here) or external (credentials from the stack).
    milvus_s3: object_store.S3Endpoint
    protect: bool
    milvus_s3_external: bool = False
    # The object store for Milvus backups; False when backups are off.
    backup_store: bool = False
    # PostgreSQL's off-site repository is on: its client-side encryption needs a passphrase.
    offsite_backups: bool = False


class PlatformSecrets(Component):
    """Secrets for Redis, the object stores, Milvus, the API and the off-site backups (PostgreSQL's are the
    operator's), with typed references for their consumers."""

    def __init__(self, name: str, args: SecretsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:secrets:PlatformSecrets", name, opts)
        self._args = args
        # Replacing a generated password would lock the databases out of their own data.
        self._password_opts = pulumi.ResourceOptions(parent=self, protect=args.protect)

        redis_password = self._credential("redis-password", "redisPassword")
        api_key = self._credential("api-key", "apiKey")
        # Lets a tester join or leave the grey release by header; the API key alone does not.
        tester_key = self._credential("api-tester-key", "apiTesterKey")
        self.redis = self._secret(
            REDIS_SECRET,
            "redis",
            # requirepass.conf is included by redis.conf, so the password is never a command-line argument.
            {"password": redis_password, "requirepass.conf": pulumi.Output.from_input(redis_password).apply(requirepass_conf)},
        )
        if args.milvus_s3_external:
            access, secret_key = args.overrides.get("milvusS3AccessKeyId"), args.overrides.get("milvusS3SecretAccessKey")
            self.milvus_s3 = S3Credentials(None, pulumi.Output.secret(access), secret_key, checksum(access, secret_key))
        else:
            self.milvus_s3 = self._s3_credentials("milvus-s3", MILVUS_S3_SECRET, "objectStorePassword")
        # Milvus reads its object-store credentials from user.yaml, so that file is a Secret, never a ConfigMap.
        user_yaml = pulumi.Output.all(self.milvus_s3.access_key, self.milvus_s3.secret_key).apply(
            lambda keys: milvus_user_yaml(args.milvus_s3, keys[0], keys[1])
        )
        self.milvus_user_config = self._secret(MILVUS_CONFIG_SECRET, "milvus", {"user.yaml": user_yaml})
        self.milvus_user_config_checksum = checksum(user_yaml)
        redis_url = pulumi.Output.all(redis_password).apply(
            # Escaped: an override may hold characters that mean something in a URL.
            lambda p: f"redis://:{quote(p[0], safe='')}@{args.redis_host}:6379/0"
        )
        self.api = self._secret(
            API_SECRET,
            "api",
            {
                "redis-url": redis_url,
                "milvus-url": pulumi.Output.from_input(f"http://{args.milvus_host}:19530"),
                "api-key": api_key,
                "tester-key": tester_key,
            },
        )
        self.api_checksum = checksum(redis_url, api_key, tester_key)

        self.backup_s3 = self._s3_credentials("backup-s3", BACKUP_S3_SECRET, None) if args.backup_store else None
        self.offsite_cipher_pass = None
        if args.offsite_backups:
            # Encrypts the off-site backups: losing it loses them, so it is protected whatever protectData says.
            self.offsite_cipher_pass = self._credential(
                "backup-offsite-cipher-pass", "backupOffsiteCipherPass", pulumi.ResourceOptions(parent=self, protect=True)
            )

        self.redis_credentials = RedisCredentials(
            secret_name=self.redis.metadata.name, password_key="password", config_key="requirepass.conf",
            checksum=checksum(redis_password),
        )
        self.api_redis_url = SecretKeyRef(self.api.metadata.name, "redis-url")
        self.api_milvus_url = SecretKeyRef(self.api.metadata.name, "milvus-url")
        self.api_key_ref = SecretKeyRef(self.api.metadata.name, "api-key")
        self.api_tester_key_ref = SecretKeyRef(self.api.metadata.name, "tester-key")
        self.milvus_user_config_name = self.milvus_user_config.metadata.name
        # Exported (as a secret) so operators can call the API right after `pulumi up`.
        self.api_key = pulumi.Output.secret(api_key)
        self.api_tester_key = pulumi.Output.secret(tester_key)
        self.register_outputs({"api_key": self.api_key, "api_tester_key": self.api_tester_key})

    def _s3_credentials(self, name: str, secret_name: str, override_key: Optional[str]) -> S3Credentials:
        # The access key is not secret material, but it is generated so no two stacks share it.
        access_key = random.RandomString(
            self.child_name(f"{name}-access-key"), length=16, special=False, upper=False,
            opts=pulumi.ResourceOptions(parent=self, protect=self._args.protect),
        ).result
        secret_key = self._credential(f"{name}-secret-key", override_key)
        identities = pulumi.Output.all(access_key, secret_key).apply(lambda keys: object_store.identities(keys[0], keys[1]))
        secret = self._secret(secret_name, name, {object_store.IDENTITIES_KEY: identities})
        return S3Credentials(secret.metadata.name, pulumi.Output.secret(access_key), secret_key, checksum(identities))

    def _credential(self, resource_name: str, override_key: Optional[str],
                    opts: Optional[pulumi.ResourceOptions] = None) -> pulumi.Output[str]:
        override = self._args.overrides.get(override_key) if override_key else None
        if override is not None:
            return override
        # Alphanumeric only: these values are embedded in connection URLs without escaping.
        generated = random.RandomPassword(
            self.child_name(resource_name), length=PASSWORD_LENGTH, special=False, min_lower=4, min_upper=4, min_numeric=4,
            opts=opts or self._password_opts,
        )
        return pulumi.Output.secret(generated.result)

    def _secret(self, name: str, component: str, values: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            self.child_name(name),
            metadata={
                "name": name,
                "namespace": self._args.namespace,
                "labels": labels(component, self._args.stack, "credentials"),
            },
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )
