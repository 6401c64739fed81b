"""The whole platform for one stack: provider, namespace, secrets, config, data stores, API, ingress, policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import KubernetesSettings, PlatformSettings, _resources
from components import milvus as milvus_module
from components import postgres as postgres_module
from components import redis as redis_module
from components.api import HTTP_PORT, SERVICE_PORT, Api, ApiArgs, ApiSecretRefs
from components.app_config import AppConfig, AppConfigArgs
from components.ingress import Ingress, IngressArgs
from components.milvus import Milvus, MilvusArgs
from components.namespace import Namespace, NamespaceArgs
from components import backups as backups_module
from components.backups import Backups, BackupsArgs
from components.network_policies import ExternalFlow, Flow, NetworkPolicies, NetworkPoliciesArgs
from components.pgbackrest import TLS_PORT, PgBackRest, PgBackRestArgs
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from components.secrets import PlatformSecrets, SecretsArgs
from components.workload import SecretKeyRef, container_security_context, image_version

# Every connection the platform makes inside its namespace; everything else is denied.
FLOWS = [
    Flow("api", postgres_module.NAME, postgres_module.PORT),
    Flow("api", redis_module.NAME, redis_module.PORT),
    Flow("api", milvus_module.NAME, milvus_module.GRPC_PORT),
    Flow(milvus_module.NAME, milvus_module.ETCD_NAME, milvus_module.ETCD_PORT),
    Flow(milvus_module.NAME, milvus_module.MINIO_NAME, milvus_module.MINIO_PORT),
]


# The backup jobs' connections, when backups are on.
BACKUP_FLOWS = [
    Flow(postgres_module.NAME, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),  # WAL archiving
    Flow(backups_module.PG_BACKUP, postgres_module.NAME, TLS_PORT),
    Flow(backups_module.PG_BACKUP, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
    Flow(backups_module.PG_DRILL, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
    Flow(backups_module.STORAGE_INIT, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
    Flow(backups_module.PG_RESTORE, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
    Flow(backups_module.REDIS_BACKUP, redis_module.NAME, redis_module.PORT),
    Flow(backups_module.MILVUS_BACKUP, milvus_module.NAME, milvus_module.GRPC_PORT),
    Flow(backups_module.MILVUS_BACKUP, milvus_module.NAME, milvus_module.HEALTH_PORT),
    Flow(backups_module.MILVUS_BACKUP, milvus_module.MINIO_NAME, milvus_module.MINIO_PORT),
    Flow(backups_module.MILVUS_BACKUP, backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
]
# Who talks to the off-site repository (HTTPS).
OFFSITE_FLOWS = [
    ExternalFlow(postgres_module.NAME, 443),
    ExternalFlow(backups_module.PG_BACKUP, 443),
    ExternalFlow(backups_module.PG_DRILL, 443),
    ExternalFlow(backups_module.PG_RESTORE, 443),
]


def flows(backups_enabled: bool) -> list[Flow]:
    return FLOWS + (BACKUP_FLOWS if backups_enabled else [])


@dataclass
class PlatformArgs:
    settings: PlatformSettings
    # The API's Docker build context (the repository's app/ directory).
    api_build_context: str


def provider_args(settings: KubernetesSettings) -> dict:
    args: dict = {
        # Server-side apply: field ownership is tracked, so the autoscaler and kubectl edits are not clobbered.
        "enable_server_side_apply": True,
    }
    if settings.render_yaml_to_directory:
        args["render_yaml_to_directory"] = settings.render_yaml_to_directory
    if settings.context:
        args["context"] = settings.context
    if settings.kubeconfig:
        args["kubeconfig"] = settings.kubeconfig
    return args


class Platform(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    api_service: pulumi.Output[str]
    ingress_url: Optional[pulumi.Output[str]]
    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: PlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:platform:Platform", name, None, opts)
        settings = args.settings
        c = settings.config
        stack = settings.stack
        provider = k8s.Provider("kubernetes", **provider_args(c.kubernetes), opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        ns_name = c.namespace.name

        namespace = Namespace(
            "namespace", NamespaceArgs(c.namespace, c.environment, c.protect_data), opts=child
        )
        ns = namespace.name
        secrets = PlatformSecrets(
            "secrets",
            SecretsArgs(
                namespace=ns,
                stack=stack,
                overrides=settings.secrets,
                postgres_user=c.postgres.user,
                postgres_database=c.postgres.database,
                postgres_host=postgres_module.host(ns_name),
                redis_host=redis_module.host(ns_name),
                milvus_host=milvus_module.host(ns_name),
                minio_host=milvus_module.minio_host(ns_name),
                protect=c.protect_data,
                backup_storage_host=backups_module.storage_host(ns_name) if c.backups.enabled else None,
            ),
            opts=child,
        )
        pgbackrest = None
        if c.backups.enabled:
            pgbackrest = PgBackRest(
                "pgbackrest",
                PgBackRestArgs(
                    namespace=ns,
                    namespace_name=ns_name,
                    stack=stack,
                    settings=c.backups,
                    postgres_version=image_version(c.postgres.image),
                    registry=c.api.registry,
                    postgres_host=postgres_module.pod_host(ns_name),
                    postgres_user=c.postgres.user,
                    storage_host=backups_module.storage_host(ns_name),
                    storage_user=secrets.backup_storage_user,
                    storage_password=secrets.backup_storage_password,
                    offsite_key=settings.secrets.get("backupOffsiteAccessKeyId"),
                    offsite_key_secret=settings.secrets.get("backupOffsiteSecretAccessKey"),
                ),
                opts=child,
            )
        app_config = AppConfig(
            "app-config",
            AppConfigArgs(ns, stack, c.environment, c.api.version, c.app_config),
            opts=child,
        )
        backup_wiring = (
            # The TLS server idles between backups; during one it reads and compresses the files, within its 1-CPU limit.
            pgbackrest.postgres_wiring(
                c.backups.postgres.archive_timeout_seconds,
                _resources("50m", "64Mi", "1", "512Mi").to_kubernetes(),
                container_security_context(),
            )
            if pgbackrest
            else None
        )
        postgres = Postgres(
            "postgres",
            PostgresArgs(ns, stack, c.postgres, secrets.postgres_password, c.protect_data, backup_wiring),
            opts=child,
        )
        redis = Redis("redis", RedisArgs(ns, stack, c.redis, secrets.redis_credentials, c.protect_data), opts=child)
        milvus = Milvus(
            "milvus",
            MilvusArgs(
                namespace=ns,
                namespace_name=ns_name,
                stack=stack,
                settings=c.milvus,
                minio_credentials=secrets.minio_credentials,
                user_config_secret=secrets.milvus_user_config_name,
                protect=c.protect_data,
            ),
            opts=child,
        )
        api = Api(
            "api",
            ApiArgs(
                namespace=ns,
                stack=stack,
                settings=c.api,
                secrets=ApiSecretRefs(
                    secrets.api_database_url, secrets.api_redis_url, secrets.api_milvus_url, secrets.api_key_ref
                ),
                config_map_name=app_config.config_map_name,
                config_checksum=app_config.checksum,
                build_context=args.api_build_context,
            ),
            # The API's readiness needs all three stores; ordering them first keeps the first rollout clean.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[postgres, redis, milvus]),
        )
        if pgbackrest:
            Backups(
                "backups",
                BackupsArgs(
                    namespace=ns,
                    namespace_name=ns_name,
                    stack=stack,
                    settings=c.backups,
                    pgbackrest=pgbackrest,
                    postgres_database=c.postgres.database,
                    postgres_user=c.postgres.user,
                    storage_credentials_secret=secrets.backup_storage.metadata.name,
                    storage_user=secrets.backup_storage_user,
                    storage_password=secrets.backup_storage_password,
                    redis=c.redis,
                    redis_host=redis_module.host(ns_name),
                    redis_password=SecretKeyRef(secrets.redis.metadata.name, "password"),
                    milvus_host=milvus_module.host(ns_name),
                    minio_host=milvus_module.minio_host(ns_name),
                    minio_user=secrets.minio_user,
                    minio_password=secrets.minio_password,
                    protect=c.protect_data,
                    postgres=postgres.stateful_set,
                ),
                opts=child,
            )
        self.ingress_url = None
        if c.ingress.enabled:
            ingress = Ingress(
                "ingress",
                IngressArgs(ns, stack, c.ingress, api.service_name, SERVICE_PORT),
                opts=child,
            )
            self.ingress_url = ingress.url
        NetworkPolicies(
            "network-policies",
            NetworkPoliciesArgs(
                namespace=ns,
                stack=stack,
                flows=flows(c.backups.enabled),
                external_flows=OFFSITE_FLOWS if c.backups.enabled and c.backups.offsite.enabled else [],
                ingress_target="api",
                ingress_port=HTTP_PORT,
                ingress_controller_namespace=c.ingress.controller_namespace,
            ),
            opts=child,
        )

        self.namespace = ns
        self.api_service = api.service_name
        self.api_image = api.image
        self.postgres_service = postgres.service_name
        self.redis_service = redis.service_name
        self.milvus_service = milvus.service_name
        self.api_key = secrets.api_key
        self.register_outputs(
            {
                "namespace": self.namespace,
                "api_service": self.api_service,
                "ingress_url": self.ingress_url,
                "api_key": self.api_key,
            }
        )
