"""The platform's shape as a stack file states it: where objects go, the API, Redis, Milvus, backups, and the
whole `real-estate-ai:` namespace (`PlatformConfig`) that gathers these with the settings of the modules beside it."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from settings.app_config import AppConfigSettings
from settings.monitoring import MonitoringSettings
from settings.postgres import Bucket, OffsiteSettings, PostgresBackupSettings, PostgresSettings, Region
from settings.release import ClusterAddonsSettings, ReleaseSettings
from settings.routing import IngressSettings
from settings.values import (
    Bytes,
    Cidr,
    Cron,
    DnsLabel,
    Environment,
    Hostname,
    Image,
    IpAddress,
    Registry,
    Resources,
    SemVer,
    Settings,
    Storage,
    Text,
    make_resources,
)


class KubernetesSettings(Settings):
    """Where the provider sends objects: a kubeconfig context, or YAML files in a directory."""

    context: Optional[Text] = None
    kubeconfig: Optional[Text] = None
    render_yaml_to_directory: Optional[Text] = None
    # Where the API server answers, for the egress of pods that use it (Patroni, the operator's backup jobs).
    # The private ranges by default; a managed cluster with a public endpoint names its address.
    api_server_cidrs: Annotated[list[Cidr], Field(min_length=1, max_length=16)] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    # NodeLocal DNSCache's address where the cluster runs it: pods then resolve names there.
    node_local_dns: Optional[IpAddress] = None

    @model_validator(mode="after")
    def _one_target(self) -> "KubernetesSettings":
        if self.render_yaml_to_directory and (self.context or self.kubeconfig):
            raise ValueError("set either renderYamlToDirectory or context/kubeconfig, not both")
        return self


class NamespaceSettings(Settings):
    name: DnsLabel = "real-estate"
    # Pod Security admission level enforced on the namespace.
    pod_security: Literal["privileged", "baseline", "restricted"] = "restricted"


class AutoscalingSettings(Settings):
    min_replicas: Annotated[int, Field(ge=1, le=1000)]
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    target_cpu_utilization: Annotated[int, Field(ge=10, le=95)] = 70

    @model_validator(mode="after")
    def _min_below_max(self) -> "AutoscalingSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        return self


class ProbeTiming(Settings):
    initial_delay_seconds: Annotated[int, Field(ge=0, le=3600)]
    period_seconds: Annotated[int, Field(ge=1, le=3600)]
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 3
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 3


class ApiSettings(Settings):
    replicas: Annotated[int, Field(ge=1, le=1000)]
    # Semantic release version: the image tag and app.version.
    version: SemVer
    # A pinned image to deploy. When unset the image is built from app/ with pulumi-docker.
    image: Optional[Image] = None
    # Registry to push the built image to; without one the image is built locally and not pushed.
    registry: Optional[Registry] = None
    # The nodes' CPU architecture the built image is for.
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    resources: Resources = make_resources("500m", "1Gi", "2", "2Gi")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    # Who may reach a NodePort or LoadBalancer Service (and the pods behind it).
    load_balancer_source_ranges: Annotated[list[Cidr], Field(min_length=1, max_length=32)] = ["0.0.0.0/0"]
    # Wait for a LoadBalancer address on `pulumi up`; off by default as kind and bare clusters never assign one.
    await_load_balancer: bool = False
    autoscaling: Optional[AutoscalingSettings] = None
    # Minimum pods kept through voluntary disruptions; None creates no PodDisruptionBudget.
    pod_disruption_budget_min_available: Optional[Annotated[int, Field(ge=1, le=1000)]] = None
    liveness: ProbeTiming = ProbeTiming(initial_delay_seconds=30, period_seconds=10)
    readiness: ProbeTiming = ProbeTiming(initial_delay_seconds=5, period_seconds=5)
    # PostgreSQL connections each API pod may hold; times the most pods, this must fit the connection budget.
    database_pool_size: Annotated[int, Field(ge=1, le=100)] = 10

    @model_validator(mode="after")
    def _consistent(self) -> "ApiSettings":
        if self.image and self.registry:
            raise ValueError("set either image (deploy a pinned image) or registry (build and push), not both")
        if self.pod_disruption_budget_min_available is not None:
            floor = self.autoscaling.min_replicas if self.autoscaling else self.replicas
            if self.pod_disruption_budget_min_available >= floor:
                raise ValueError(
                    f"podDisruptionBudgetMinAvailable {self.pod_disruption_budget_min_available} must be below the "
                    f"minimum replica count {floor}, or no node could ever be drained"
                )
        return self


class RedisSettings(Settings):
    image: Image = "redis:7.4.11"
    # Prometheus' view of Redis (redis_up, memory, clients), beside it in the pod.
    exporter_image: Image = "docker.io/oliver006/redis_exporter:v1.88.0"
    storage: Storage = Storage(size="2Gi")
    resources: Resources = make_resources("100m", "256Mi", "500m", "512Mi")
    # Redis evicts nothing by default; a cap below the container limit keeps it from being OOM-killed.
    # Redis' own setting, in bytes where no unit is given (components/redis.py writes bytes).
    maxmemory: Bytes = "384Mi"


class MilvusComponent(Settings):
    image: Image
    storage: Storage
    resources: Resources


class ExternalS3Settings(Settings):
    """An S3 service outside the cluster for Milvus' data (prod), instead of the in-cluster store.
    Credentials: the secrets milvusS3AccessKeyId and milvusS3SecretAccessKey."""

    endpoint: Hostname
    port: Annotated[int, Field(ge=1, le=65535)] = 443
    use_ssl: bool = True
    bucket: Bucket
    region: Region = "us-east-1"
    # The service's addresses, where known: Milvus' egress goes there only (default: any public address).
    cidrs: Annotated[list[Cidr], Field(max_length=32)] = []


class MilvusSettings(Settings):
    milvus: MilvusComponent = MilvusComponent(
        image="milvusdb/milvus:v2.6.24", storage=Storage(size="10Gi"), resources=make_resources("500m", "2Gi", "2", "4Gi")
    )
    etcd: MilvusComponent = MilvusComponent(
        image="quay.io/coreos/etcd:v3.5.33", storage=Storage(size="2Gi"), resources=make_resources("100m", "256Mi", "500m", "512Mi")
    )
    # S3-compatible object storage (SeaweedFS) for Milvus' segments and indexes.
    object_store: MilvusComponent = MilvusComponent(
        image="chrislusf/seaweedfs:4.44",
        storage=Storage(size="20Gi"),
        resources=make_resources("100m", "256Mi", "1", "1Gi"),
    )
    # Set: Milvus keeps its data there and no object store runs in the cluster for it.
    external_s3: Optional[ExternalS3Settings] = None


class BackupStorageSettings(Settings):
    """The in-cluster S3-compatible store (SeaweedFS) for Milvus backups; PostgreSQL's repositories are the operator's."""

    image: Image = "chrislusf/seaweedfs:4.44"
    storage: Storage = Storage(size="50Gi")
    resources: Resources = make_resources("100m", "256Mi", "1", "1Gi")


class RedisBackupSettings(Settings):
    schedule: Cron = "15 * * * *"
    retention_days: Annotated[int, Field(ge=1, le=365)] = 7
    # 169 hourly snapshots (and the one being written) of up to a quarter of the default maxmemory
    # (settings/rules.py: redis_backup_room).
    storage: Storage = Storage(size="17Gi")


class MilvusBackupSettings(Settings):
    enabled: bool = True
    schedule: Cron = "0 3 * * *"
    image: Image = "milvusdb/milvus-backup:v0.5.16"
    # Backups older than this are deleted after each new one (milvus-backup itself keeps everything).
    retention_days: Annotated[int, Field(ge=1, le=365)] = 7


class BackupSettings(Settings):
    enabled: bool = True
    postgres: PostgresBackupSettings = PostgresBackupSettings()
    storage: BackupStorageSettings = BackupStorageSettings()
    offsite: OffsiteSettings = OffsiteSettings()
    redis: RedisBackupSettings = RedisBackupSettings()
    milvus: MilvusBackupSettings = MilvusBackupSettings()


class PlatformConfig(Settings):
    """Everything under the `real-estate-ai:` config namespace except the secret overrides."""

    environment: Environment
    namespace: NamespaceSettings = NamespaceSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    # Protect stateful objects (namespace, StatefulSets, PVCs) from `pulumi destroy` and replacement.
    protect_data: bool = True
    api: ApiSettings
    ingress: IngressSettings
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    milvus: MilvusSettings = MilvusSettings()
    app_config: AppConfigSettings = AppConfigSettings()
    backups: BackupSettings = BackupSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    release: ReleaseSettings = ReleaseSettings()
    # Controllers installed once per cluster (dev on kind); shared clusters have their owners install them.
    cluster_addons: ClusterAddonsSettings = ClusterAddonsSettings()
