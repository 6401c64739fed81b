"""The whole platform for one stack: provider, namespace, secrets, config, data stores, API, ingress, policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import KubernetesSettings, PlatformSettings
from components import milvus as milvus_module
from components import postgres as postgres_module
from components import redis as redis_module
from components.api import HTTP_PORT, SERVICE_PORT, Api, ApiArgs, ApiSecretRefs
from components.app_config import AppConfig, AppConfigArgs
from components.ingress import Ingress, IngressArgs
from components.milvus import Milvus, MilvusArgs
from components.namespace import Namespace, NamespaceArgs
from components.network_policies import Flow, NetworkPolicies, NetworkPoliciesArgs
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from components.secrets import PlatformSecrets, SecretsArgs

# Every connection the platform makes inside its namespace; everything else is denied.
FLOWS = [
    Flow("api", postgres_module.NAME, postgres_module.PORT),
    Flow("api", redis_module.NAME, redis_module.PORT),
    Flow("api", milvus_module.NAME, milvus_module.GRPC_PORT),
    Flow(milvus_module.NAME, milvus_module.ETCD_NAME, milvus_module.ETCD_PORT),
    Flow(milvus_module.NAME, milvus_module.MINIO_NAME, milvus_module.MINIO_PORT),
]


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
            ),
            opts=child,
        )
        app_config = AppConfig(
            "app-config",
            AppConfigArgs(ns, stack, c.environment, c.api.version, c.app_config),
            opts=child,
        )
        postgres = Postgres(
            "postgres",
            PostgresArgs(ns, stack, c.postgres, secrets.postgres_password, c.protect_data),
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
                flows=FLOWS,
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
