"""The whole platform for one stack: provider, namespace, secrets, config, data stores, API, ingress, policies."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import ALERT_SECRET_KEYS, KubernetesSettings, PlatformConfig, PlatformSettings
from settings.rules import operator_namespace
from components import backups as backups_module
from components import milvus as milvus_module
from components import pgbackrest
from components import postgres as postgres_module
from components import postgres_exporter as postgres_exporter_module
from components import probes as probes_module
from components import redis as redis_module
from components import canary as canary_module
from components.api import HTTP_PORT, POD_LABELS as API_POD_LABELS, SERVICE_PORT, Api, ApiArgs, ApiSecretRefs
from components.component import Component
from components.app_config import AppConfig, AppConfigArgs
from components.backups import Backups, BackupsArgs
from components.canary import Canary, CanaryArgs
from components.cluster_addons import ClusterAddons, ClusterAddonsArgs
from components.gateway import (EDGE_JOB, PROXY_METRICS_PATH, PROXY_METRICS_PORT, GatewayRoute, GatewayRouteArgs,
                                edge_series_kept, parent_ref, proxy_pod_labels)
from components.ingress import Ingress, IngressArgs
from components.milvus import Milvus, MilvusArgs
from components import dingtalk_bridge as dingtalk_bridge_module
from components.dingtalk_bridge import DingtalkBridge, DingtalkBridgeArgs
from components.monitoring import Monitoring, MonitoringArgs, PodScrape
from components.monitoring_install import MonitoringInstall, MonitoringInstallArgs, prometheus_url
from components.namespace import Namespace, NamespaceArgs
from components.network_policies import (
    ApiServerFlow,
    ExternalFlow,
    Flow,
    MetricsPort,
    NamespaceEgress,
    NamespaceFlow,
    NetworkPolicies,
    NetworkPoliciesArgs,
    Pods,
)
from components.postgres import Postgres, PostgresArgs
from components.postgres_exporter import PostgresExporter, PostgresExporterArgs
from components.postgres_operator import PostgresOperator, PostgresOperatorArgs
from components.probes import PublicProbes, PublicProbesArgs
from components.redis import Redis, RedisArgs
from components.secrets import PlatformSecrets, SecretsArgs
from components.workload import SecretKeyRef

# The operator's PostgreSQL pods, by the labels it gives them.
PG_INSTANCES = Pods.labelled("postgres", postgres_module.INSTANCE_PODS)
PG_BOUNCER = Pods.labelled("pgbouncer", postgres_module.PGBOUNCER_PODS)
PG_REPO_HOST = Pods.labelled("pgbackrest-repo-host", postgres_module.REPO_HOST_PODS)
# Backup and restore Jobs (and the repository host, which carries the same label).
PG_BACKREST_PODS = Pods.labelled("pgbackrest", postgres_module.BACKUP_JOB_PODS)

# Every API pod: the Deployment's, and under a canary Flagger's primary (named api-primary).
API = Pods.labelled("api", API_POD_LABELS)

# Every connection the platform makes inside its namespace; everything else is denied.
FLOWS = [
    Flow(API, redis_module.NAME, redis_module.PORT),
    Flow(API, milvus_module.NAME, milvus_module.GRPC_PORT),
    Flow(milvus_module.NAME, milvus_module.ETCD_NAME, milvus_module.ETCD_PORT),
    # Replication, Patroni's REST API between members, pgBackRest between members and the repository host.
    Flow(PG_INSTANCES, PG_INSTANCES, postgres_module.PORT),
    Flow(PG_INSTANCES, PG_INSTANCES, postgres_module.PATRONI_PORT),
    Flow(PG_INSTANCES, PG_INSTANCES, postgres_module.PGBACKREST_PORT),
    Flow(PG_INSTANCES, PG_REPO_HOST, postgres_module.PGBACKREST_PORT),
    Flow(PG_REPO_HOST, PG_INSTANCES, postgres_module.PGBACKREST_PORT),
    Flow(PG_BACKREST_PODS, PG_REPO_HOST, postgres_module.PGBACKREST_PORT),
    # The exporter reads statistics on the primary.
    Flow(postgres_exporter_module.NAME, PG_INSTANCES, postgres_module.PORT),
]
# The API reaches PostgreSQL through PgBouncer where it runs.
API_TO_BOUNCER = [Flow(API, PG_BOUNCER, postgres_module.PORT), Flow(PG_BOUNCER, PG_INSTANCES, postgres_module.PORT)]
API_TO_PRIMARY = [Flow(API, PG_INSTANCES, postgres_module.PORT)]
# Patroni keeps its leader lease in the Kubernetes API; the operator's backup Jobs exec into the repository host.
API_SERVER_FLOWS = [ApiServerFlow(PG_INSTANCES), ApiServerFlow(PG_BACKREST_PODS)]

# The backup jobs' connections, when backups are on.
BACKUP_FLOWS = [
    Flow(backups_module.REDIS_BACKUP, redis_module.NAME, redis_module.PORT),
    # milvus-backup (and its restore) talk to Milvus, read and write both object stores.
    *(
        Flow(job, target, port)
        for job in (backups_module.MILVUS_BACKUP, backups_module.MILVUS_RESTORE)
        for target, port in (
            (milvus_module.NAME, milvus_module.GRPC_PORT),
            (milvus_module.NAME, milvus_module.HEALTH_PORT),
            (backups_module.STORAGE_NAME, backups_module.STORAGE_PORT),
        )
    ),
]
# Who talks to the off-site repository (HTTPS): WAL from the instances, backups from the repository host,
# restores from the operator's Jobs, and our checks.
OFFSITE_WRITERS = [PG_INSTANCES, PG_BACKREST_PODS, backups_module.PG_VERIFY, backups_module.PG_DRILL]
# What the monitoring namespace reaches: Prometheus the metrics ports (Patroni's REST API on every PostgreSQL member),
# Alertmanager the DingTalk bridge.
METRICS_PORTS = [MetricsPort(API, HTTP_PORT), MetricsPort(milvus_module.NAME, milvus_module.HEALTH_PORT),
                 MetricsPort(redis_module.NAME, redis_module.METRICS_PORT),
                 MetricsPort(postgres_exporter_module.NAME, postgres_exporter_module.PORT),
                 MetricsPort(PG_INSTANCES, postgres_module.PATRONI_PORT),
                 MetricsPort(probes_module.NAME, probes_module.PORT, prometheus_only=True),
                 MetricsPort(dingtalk_bridge_module.NAME, dingtalk_bridge_module.PORT)]


def offsite_flows(config: PlatformConfig) -> list[ExternalFlow]:
    cidrs = tuple(config.backups.offsite.cidrs)
    return [ExternalFlow(writer, 443, cidrs) for writer in OFFSITE_WRITERS]


MILVUS_STORE_USERS = [milvus_module.NAME, backups_module.MILVUS_BACKUP, backups_module.MILVUS_RESTORE]


# The canary's load tester smoke-tests and loads the new version (through the api-canary Service).
CANARY_FLOWS = [Flow(canary_module.LOADTESTER, API, HTTP_PORT)]


def flows(config: PlatformConfig) -> list[Flow]:
    result = FLOWS + (API_TO_BOUNCER if config.postgres.pgbouncer.enabled else API_TO_PRIMARY)
    result += CANARY_FLOWS if config.release.canary.enabled else []
    result += BACKUP_FLOWS if config.backups.enabled else []
    if config.milvus.external_s3 is None:
        # Milvus and its backups read and write the object store in the namespace.
        users = MILVUS_STORE_USERS if config.backups.enabled else MILVUS_STORE_USERS[:1]
        result += [Flow(user, milvus_module.S3_NAME, milvus_module.S3_PORT) for user in users]
    return result


def external_flows(config: PlatformConfig) -> list[ExternalFlow]:
    result = offsite_flows(config) if config.backups.enabled and config.backups.offsite.enabled else []
    if config.monitoring.deploys_dingtalk_bridge:
        # DingTalk's API (oapi.dingtalk.com) over HTTPS; its addresses are DingTalk's to change.
        result.append(ExternalFlow(dingtalk_bridge_module.NAME, 443, (), "dingtalk"))
    if probes_enabled(config):
        # The public URL's address: outside the cluster where its load balancer does not short-circuit.
        url = urllib.parse.urlsplit(probes_module.public_url(config.monitoring.probes, config.ingress))
        result.append(ExternalFlow(probes_module.NAME, url.port or (443 if url.scheme == "https" else 80),
                                   tuple(config.monitoring.probes.cidrs), "public-url"))
    external = config.milvus.external_s3
    if external is not None:
        users = MILVUS_STORE_USERS if config.backups.enabled else MILVUS_STORE_USERS[:1]
        result += [ExternalFlow(user, external.port, tuple(external.cidrs), "object-store") for user in users]
    return result


def recommendation_for_everyone(config: PlatformConfig) -> bool:
    """The recommendation feature is on and not behind the grey release: any user, the probes' too, gets one."""
    app = config.app_config
    grey = app.grey_release
    return app.features.get("recommendation", False) and not (grey.enabled and "recommendation" in grey.features)


def probes_enabled(config: PlatformConfig) -> bool:
    return config.monitoring.enabled and config.monitoring.probes.enabled


def monitoring_sources(config: PlatformConfig) -> list[str]:
    """What the stack's alerts read besides its own scrape jobs (components/alert_rules.py SOURCES)."""
    sources = ["kube-state-metrics", "cadvisor", "kubelet-volume-stats"]
    if config.release.canary.enabled:
        sources.append("flagger")
    ingress = config.ingress
    # cert-manager issues a certificate into this namespace: for its Ingress, or its own Gateway's listener.
    if ingress.enabled and ingress.tls.enabled and (ingress.via != "gateway" or ingress.gateway.create):
        sources.append("cert-manager")
    standby = config.postgres.standby is not None and config.postgres.standby.enabled
    if config.backups.enabled and not standby:
        # A standby has no backups of its own until promoted: no PerconaPGBackup, no series.
        sources.append("postgres-backups")
    if probes_enabled(config):
        sources.append(probes_module.JOB)
    return sources


def edge_scrape(config: PlatformConfig, namespace: str) -> dict[str, PodScrape]:
    """The Gateway's Envoy pods, where users' requests enter (edge.rules.yml): errors Envoy answers itself, such as no
    healthy upstream or an upstream timeout, never reach the API's own metrics."""
    ingress = config.ingress
    if not (ingress.enabled and ingress.via == "gateway"):
        return {}
    return {EDGE_JOB: PodScrape(proxy_pod_labels(ingress, namespace), PROXY_METRICS_PORT, path=PROXY_METRICS_PATH,
                                namespace=ingress.proxy_namespace, keep_series=(edge_series_kept(namespace),))}


def canary_prometheus_url(config: PlatformConfig) -> str:
    """The Prometheus the canary analysis queries: its own setting, the cluster's, or the one monitoring.install runs."""
    return config.release.canary.prometheus_url or config.monitoring.prometheus_url or prometheus_url(config.monitoring.namespace)


@dataclass
class PlatformArgs:
    settings: PlatformSettings
    # The API's Docker build context (the repository's app/ directory).
    api_build_context: str
    # The commit the API image is built from.
    revision: str = "unknown"


def provider_args(settings: KubernetesSettings) -> dict:
    args: dict = {
        # Server-side apply: field ownership is tracked, so the autoscaler and kubectl edits are not clobbered.
        "enable_server_side_apply": True,
        # Changed data updates a ConfigMap or Secret in place; the checksum annotations roll the pods that read them.
        # Without these the provider replaces it (provider/pkg/provider/diff.go forceNewProperties), and a replaced
        # object that keeps its name is deleted first, taking every resource that depends on it with it (the engine
        # deletes and re-creates them): a new Redis password re-created the Redis StatefulSet (make e2e).
        "enable_config_map_mutable": True,
        "enable_secret_mutable": True,
    }
    if settings.render_yaml_to_directory:
        args["render_yaml_to_directory"] = settings.render_yaml_to_directory
    if settings.context:
        args["context"] = settings.context
    if settings.kubeconfig:
        args["kubeconfig"] = settings.kubeconfig
    return args


class Platform(Component):
    namespace: pulumi.Output[str]
    api_service: pulumi.Output[str]
    ingress_url: Optional[pulumi.Output[str]]
    api_key: pulumi.Output[str]
    api_tester_key: pulumi.Output[str]

    def __init__(self, name: str, args: PlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:platform:Platform", name, opts)
        settings = args.settings
        c = settings.config
        stack = settings.stack
        provider = k8s.Provider(self.child_name("kubernetes"), **provider_args(c.kubernetes), opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        ns_name = c.namespace.name
        offsite = c.backups.enabled and c.backups.offsite.enabled

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
                redis_host=redis_module.host(ns_name),
                milvus_host=milvus_module.host(ns_name),
                milvus_s3=milvus_module.s3_endpoint(c.milvus, ns_name),
                milvus_s3_external=c.milvus.external_s3 is not None,
                protect=c.protect_data,
                backup_store=c.backups.enabled,
                offsite_backups=offsite,
            ),
            opts=child,
        )
        cluster_dependencies: list[pulumi.Resource] = []
        if c.postgres.operator.install:
            operator = PostgresOperator(
                "postgres-operator",
                PostgresOperatorArgs(c.postgres.operator, operator_namespace(c), ns_name, ns, stack, c.protect_data),
                opts=child,
            )
            cluster_dependencies.append(operator)
        offsite_config = None
        if offsite:
            offsite_config = pulumi.Output.all(
                settings.secrets.get("backupOffsiteAccessKeyId"),
                settings.secrets.get("backupOffsiteSecretAccessKey"),
                secrets.offsite_cipher_pass,
            ).apply(lambda values: pgbackrest.offsite_credentials(*values))
        postgres = Postgres(
            "postgres",
            PostgresArgs(ns, stack, c.postgres, c.backups, c.protect_data, offsite_config),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=cluster_dependencies),
        )
        PostgresExporter(
            "postgres-exporter",
            PostgresExporterArgs(
                namespace=ns, namespace_name=ns_name, stack=stack, image=c.postgres.exporter_image,
                primary_service=f"{postgres_module.NAME}-primary", port=postgres_module.PORT,
                user_secret=postgres_module.user_secret_name(postgres_exporter_module.ROLE),
            ),
            # Its credentials are the operator's Secret, written once the cluster is up: wait for the cluster first.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[postgres]),
        )
        app_config = AppConfig(
            "app-config",
            AppConfigArgs(ns, stack, c.environment, c.api.version, c.app_config),
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
                s3_credentials=secrets.milvus_s3,
                user_config_secret=secrets.milvus_user_config_name,
                user_config_checksum=secrets.milvus_user_config_checksum,
                external_store=c.milvus.external_s3 is not None,
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
                    # The operator writes the role's Secret; the cluster is ready (awaited) before the API starts.
                    SecretKeyRef(postgres.user_secret, postgres.uri_key),
                    secrets.api_redis_url, secrets.api_milvus_url, secrets.api_key_ref, secrets.api_tester_key_ref,
                ),
                config_map_name=app_config.config_map_name,
                config_checksum=app_config.checksum,
                secrets_checksum=secrets.api_checksum,
                build_context=args.api_build_context,
                revision=args.revision,
                canary=c.release.canary.enabled,
            ),
            # The API's readiness needs all three stores; ordering them first keeps the first rollout clean.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[postgres, redis, milvus]),
        )
        if c.backups.enabled:
            Backups(
                "backups",
                BackupsArgs(
                    namespace=ns,
                    namespace_name=ns_name,
                    stack=stack,
                    settings=c.backups,
                    postgres=c.postgres,
                    storage_credentials=secrets.backup_s3,
                    redis=c.redis,
                    redis_host=redis_module.host(ns_name),
                    redis_password=SecretKeyRef(secrets.redis.metadata.name, "password"),
                    milvus_host=milvus_module.host(ns_name),
                    milvus_s3_endpoint=milvus_module.s3_endpoint(c.milvus, ns_name),
                    milvus_s3=secrets.milvus_s3,
                    protect=c.protect_data,
                    offsite_secret=postgres_module.OFFSITE_SECRET if offsite else None,
                ),
                opts=child,
            )
        monitoring_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace])
        monitoring_ready: list[pulumi.Resource] = []
        if c.monitoring.install.enabled:
            # The chart brings the CRDs and the monitoring namespace the Monitoring objects go into.
            install = MonitoringInstall(
                "monitoring-install",
                MonitoringInstallArgs(c.monitoring, stack),
                opts=child,
            )
            monitoring_ready = [install.release]
            monitoring_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, install.release])
        # The Gateway API, cert-manager and Flagger objects below wait for their controllers where this stack installs them.
        addons = ClusterAddons(
            "cluster-addons",
            ClusterAddonsArgs(c.cluster_addons, stack, c.ingress.gateway.class_name, canary_prometheus_url(c),
                              dict(c.monitoring.selector_labels) if c.monitoring.enabled else None),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=monitoring_ready),
        )
        addon_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, *addons.ready])
        canary = c.release.canary if c.release.canary.enabled else None
        self.ingress_url = None
        if c.ingress.enabled and c.ingress.via == "gateway":
            route = GatewayRoute(
                "gateway",
                GatewayRouteArgs(ns, stack, c.ingress, api.service_name, SERVICE_PORT, canary),
                opts=addon_opts,
            )
            self.ingress_url = route.url
        elif c.ingress.enabled:
            ingress = Ingress(
                "ingress",
                IngressArgs(ns, stack, c.ingress, api.service_name, SERVICE_PORT),
                opts=child,
            )
            self.ingress_url = ingress.url
        if canary is not None:
            Canary(
                "canary",
                CanaryArgs(
                    namespace=ns, namespace_name=ns_name, stack=stack, settings=canary, version=c.api.version,
                    deployment_name=api.deployment.metadata.name, autoscaler_name=api.autoscaler_name,
                    service_port=SERVICE_PORT, container_port_name="http", host=c.ingress.host,
                    gateway_ref=parent_ref(c.ingress), prometheus_url=canary_prometheus_url(c),
                    api_key=secrets.api_key_ref,
                ),
                opts=pulumi.ResourceOptions(parent=self, provider=provider,
                                            depends_on=[namespace, api, *addons.ready, *monitoring_ready]),
            )
        deploy_dingtalk = c.monitoring.deploys_dingtalk_bridge
        if deploy_dingtalk:
            DingtalkBridge(
                "dingtalk-bridge",
                DingtalkBridgeArgs(ns, stack, c.monitoring.alerting.dingtalk, settings.secrets.get("alertDingtalkRobotUrl"),
                                   settings.secrets.get("alertDingtalkRobotSecret")),
                opts=child,
            )
        if c.monitoring.enabled:
            alerting_ = c.monitoring.alerting
            Monitoring(
                "monitoring",
                MonitoringArgs(
                    namespace=ns,
                    namespace_name=ns_name,
                    stack=stack,
                    settings=c.monitoring,
                    alert_secrets={key: settings.secrets.get(key) for key in ALERT_SECRET_KEYS
                                   if settings.secrets.get(key) is not None and alerting_.notify},
                    scrape={"milvus": "metrics", "redis": "metrics", postgres_exporter_module.NAME: "metrics"},
                    pod_scrape={"api": PodScrape(API_POD_LABELS, "http"),
                                # Each member's role, replication position and leader lock (Patroni's /metrics).
                                "patroni": PodScrape(postgres_module.INSTANCE_PODS, postgres_module.PORT_NAME,
                                                     other_port=postgres_module.PATRONI_PORT, https_unverified=True),
                                **edge_scrape(c, ns_name)},
                    dingtalk_url=dingtalk_bridge_module.bridge_url(ns_name) if deploy_dingtalk else None,
                    sources=monitoring_sources(c),
                    postgres=c.postgres,
                ),
                opts=monitoring_opts,
            )
        if probes_enabled(c):
            PublicProbes(
                "probes",
                PublicProbesArgs(ns, ns_name, stack, c.monitoring.probes, probes_module.public_url(c.monitoring.probes, c.ingress),
                                 secrets.api_key_ref, dict(c.monitoring.selector_labels),
                                 recommendation=recommendation_for_everyone(c)),
                opts=monitoring_opts,
            )
        NetworkPolicies(
            "network-policies",
            NetworkPoliciesArgs(
                namespace=ns,
                stack=stack,
                flows=flows(c),
                external_flows=external_flows(c),
                api_server_flows=API_SERVER_FLOWS,
                api_server_cidrs=list(c.kubernetes.api_server_cidrs),
                ingress_target=API,
                ingress_port=HTTP_PORT,
                ingress_controller_namespace=c.ingress.proxy_namespace,
                monitoring_namespace=c.monitoring.namespace,
                metrics_ports=METRICS_PORTS,
                acme_http01=c.ingress.enabled and c.ingress.tls.enabled and c.ingress.tls.solver == "http01",
                public_sources=list(c.api.load_balancer_source_ranges) if c.api.service_type != "ClusterIP" else [],
                node_local_dns=c.kubernetes.node_local_dns,
                # Flagger calls the load tester's webhooks from its own namespace.
                namespace_flows=([NamespaceFlow(c.cluster_addons.flagger.namespace, canary_module.LOADTESTER,
                                                canary_module.LOADTESTER_PORT)] if canary is not None else []),
                # The probes reach the public URL through the proxies (in the cluster, its load balancer's address
                # leads straight to their pods).
                namespace_egress=([NamespaceEgress(probes_module.NAME, c.ingress.proxy_namespace)]
                                  if probes_enabled(c) and c.ingress.enabled else []),
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
        self.api_tester_key = secrets.api_tester_key
        # Off-site backups cannot be restored without it: kept in state (secret) and shown only on request.
        self.offsite_cipher_pass = (
            pulumi.Output.secret(secrets.offsite_cipher_pass) if secrets.offsite_cipher_pass is not None else None
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "api_service": self.api_service,
                "ingress_url": self.ingress_url,
                "api_key": self.api_key,
            }
        )
