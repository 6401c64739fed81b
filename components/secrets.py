"""Every credential of the platform: generated with pulumi-random unless overridden by a secret config value,
kept as Pulumi secrets and written only to Kubernetes Secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from settings import MIN_SECRET_LENGTH, SecretOverrides
from components.workload import SecretKeyRef, labels

PASSWORD_LENGTH = 40
assert PASSWORD_LENGTH >= MIN_SECRET_LENGTH

REDIS_SECRET = "redis-credentials"
MINIO_SECRET = "minio-credentials"
MILVUS_CONFIG_SECRET = "milvus-user-config"
API_SECRET = "api-secrets"
BACKUP_STORAGE_SECRET = "backup-storage-credentials"


@dataclass(frozen=True)
class RedisCredentials:
    secret_name: pulumi.Input[str]
    password_key: str
    # A redis.conf fragment holding `requirepass`.
    config_key: str


@dataclass(frozen=True)
class MinioCredentials:
    secret_name: pulumi.Input[str]
    user_key: str
    password_key: str


@dataclass
class SecretsArgs:
    namespace: pulumi.Input[str]
    stack: str
    overrides: SecretOverrides
    redis_host: str
    milvus_host: str
    minio_host: str
    protect: bool
    # In-cluster backup object store (Milvus backups); None when backups are off.
    backup_storage_host: Optional[str] = None
    # PostgreSQL's off-site repository is on: its client-side encryption needs a passphrase.
    offsite_backups: bool = False


class PlatformSecrets(pulumi.ComponentResource):
    """Secrets for Redis, MinIO, Milvus, the API and the off-site backups (PostgreSQL's are the operator's), with typed references for their consumers."""

    def __init__(self, name: str, args: SecretsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:secrets:PlatformSecrets", name, None, opts)
        self._args = args
        # Replacing a generated password would lock the databases out of their own data.
        self._password_opts = pulumi.ResourceOptions(parent=self, protect=args.protect)

        redis_password = self._credential("redis-password", "redisPassword")
        api_key = self._credential("api-key", "apiKey")
        minio_password = self._credential("minio-root-password", "minioRootPassword")
        # The MinIO user name is not secret material, but it is generated so no two stacks share it.
        minio_user = random.RandomString(
            "minio-root-user",
            length=16,
            special=False,
            upper=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        ).result

        self.redis = self._secret(
            REDIS_SECRET,
            "redis",
            # requirepass.conf is included by redis.conf, so the password is never a command-line argument.
            {"password": redis_password, "requirepass.conf": pulumi.Output.format("requirepass {0}\n", redis_password)},
        )
        self.minio = self._secret(MINIO_SECRET, "minio", {"root-user": minio_user, "root-password": minio_password})
        # Milvus reads its object-store credentials from user.yaml, so that file is a Secret, never a ConfigMap.
        self.milvus_user_config = self._secret(
            MILVUS_CONFIG_SECRET,
            "milvus",
            {
                "user.yaml": pulumi.Output.format(
                    "minio:\n  address: {0}\n  port: 9000\n  accessKeyID: {1}\n  secretAccessKey: {2}\n"
                    "  useSSL: false\n  bucketName: milvus\n",
                    args.minio_host,
                    minio_user,
                    minio_password,
                )
            },
        )
        self.api = self._secret(
            API_SECRET,
            "api",
            {
                "redis-url": pulumi.Output.format("redis://:{0}@{1}:6379/0", redis_password, args.redis_host),
                "milvus-url": pulumi.Output.from_input(f"http://{args.milvus_host}:19530"),
                "api-key": api_key,
            },
        )

        self.backup_storage = None
        if args.backup_storage_host:
            self.backup_storage_user = random.RandomString(
                "backup-storage-user", length=16, special=False, upper=False,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            ).result
            self.backup_storage_password = self._credential("backup-storage-password", None)
            self.backup_storage = self._secret(
                BACKUP_STORAGE_SECRET,
                "backup-minio",
                {
                    "root-user": self.backup_storage_user,
                    "root-password": self.backup_storage_password,
                    # mc reads a whole alias from MC_HOST_<alias>: the bucket-init job's only credential.
                    "mc-host": pulumi.Output.format(
                        "https://{0}:{1}@{2}:9000", self.backup_storage_user, self.backup_storage_password, args.backup_storage_host
                    ),
                },
            )
        self.offsite_cipher_pass = None
        if args.offsite_backups:
            # Encrypts the off-site backups: losing it loses them, so it is protected whatever protectData says.
            self.offsite_cipher_pass = self._credential(
                "backup-offsite-cipher-pass", "backupOffsiteCipherPass", pulumi.ResourceOptions(parent=self, protect=True)
            )
        self.minio_user = pulumi.Output.secret(minio_user)
        self.minio_password = minio_password

        self.redis_credentials = RedisCredentials(
            secret_name=self.redis.metadata.name, password_key="password", config_key="requirepass.conf"
        )
        self.minio_credentials = MinioCredentials(
            secret_name=self.minio.metadata.name, user_key="root-user", password_key="root-password"
        )
        self.api_redis_url = SecretKeyRef(self.api.metadata.name, "redis-url")
        self.api_milvus_url = SecretKeyRef(self.api.metadata.name, "milvus-url")
        self.api_key_ref = SecretKeyRef(self.api.metadata.name, "api-key")
        self.milvus_user_config_name = self.milvus_user_config.metadata.name
        # Exported (as a secret) so operators can call the API right after `pulumi up`.
        self.api_key = pulumi.Output.secret(api_key)
        self.register_outputs({"api_key": self.api_key})

    def _credential(self, resource_name: str, override_key: Optional[str],
                    opts: Optional[pulumi.ResourceOptions] = None) -> pulumi.Output[str]:
        override = self._args.overrides.get(override_key) if override_key else None
        if override is not None:
            return override
        # Alphanumeric only: these values are embedded in connection URLs without escaping.
        generated = random.RandomPassword(
            resource_name, length=PASSWORD_LENGTH, special=False, min_lower=4, min_upper=4, min_numeric=4,
            opts=opts or self._password_opts,
        )
        return pulumi.Output.secret(generated.result)

    def _secret(self, name: str, component: str, values: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            name,
            metadata={
                "name": name,
                "namespace": self._args.namespace,
                "labels": labels(component, self._args.stack, "credentials"),
            },
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )
