"""Stack configuration, read once at the edge and validated into typed settings.

Components never read Pulumi config: `__main__.py` calls `load_settings()` and hands the
resulting `PlatformSettings` to the components. Every problem in a stack's config is
reported in one `StackConfigError` that names the stack, the key path and what is allowed,
and it is raised before any resource is registered. The rules live here and in the modules
beside it (`values`, `cron`, `postgres`, `rules`); the program, the offline render and the tests share them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Optional

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from settings import rules
from settings.release import ClusterAddonsSettings, ReleaseSettings
from settings.routing import IngressSettings, TlsSettings
from settings.monitoring import MonitoringSettings
from settings.postgres import (
    Bucket,
    Region,
    OffsiteSettings,
    OperatorSettings,
    PatroniSettings,
    PgBouncerSettings,
    PostgresBackupSettings,
    PostgresSettings,
)
from settings.values import (
    Bytes,
    Cidr,
    IpAddress,
    ComputeResources,
    Cron,
    DnsLabel,
    Environment,
    Hostname,
    Image,
    Percent,
    Registry,
    Resources,
    SemVer,
    Settings,
    Storage,
    Text,
    byte_count,
    cpu_millicores,
    make_resources,
)

PROJECT = "real-estate-ai"

# Secret overrides: optional, read only as Pulumi secrets. A generated value is used otherwise.
SECRET_KEYS = (
    "redisPassword",
    "apiKey",
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
)
# Credentials of the off-site backup repository: needed, as secrets, whenever it is enabled.
OFFSITE_SECRET_KEYS = ("backupOffsiteAccessKeyId", "backupOffsiteSecretAccessKey")
# These identify an account at someone else's service; they are as long as that service makes them.
MILVUS_S3_SECRET_KEYS = ("milvusS3AccessKeyId", "milvusS3SecretAccessKey")
# Credentials of the alert channels (mail server, WeCom app, SMS gateway).
ALERT_SECRET_KEYS = ("alertSmtpPassword", "alertWecomApiSecret", "alertSmsWebhookUrl", "alertDingtalkRobotUrl", "alertDingtalkRobotSecret")
EXTERNAL_SECRET_KEYS = set(OFFSITE_SECRET_KEYS) | set(MILVUS_S3_SECRET_KEYS) | set(ALERT_SECRET_KEYS)
MIN_SECRET_LENGTH = 32


class StackConfigError(pulumi.RunError):
    """A stack's configuration is invalid; Pulumi prints the message without a traceback."""



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


RecommendationModel = Literal["hybrid", "collaborative", "content"]


class RecommendationSettings(Settings):
    model: RecommendationModel = "hybrid"
    top_k: Annotated[int, Field(ge=1, le=100)] = 10


class EvaluationSettings(Settings):
    model: Literal["xgboost", "lightgbm", "linear"] = "xgboost"
    confidence_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8


class VariantBSettings(Settings):
    # What variant B does differently: its recommendation model (variant A uses recommendation.model).
    recommendation_model: Optional[RecommendationModel] = None


class AbTestSettings(Settings):
    """Users are split sticky (a hash of their id, app/real_estate_api/assignment.py) into variants A and B."""

    enabled: bool = False
    # Share of users that see variant B.
    variant_b_percent: Percent = 0
    variant_b: VariantBSettings = VariantBSettings()


# The feature switches the API knows (app/real_estate_api/config.py FEATURES; a test keeps the two equal).
FEATURES = ("recommendation", "valuation", "market_analysis")


def _check_feature_names(names) -> Any:
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature '{unknown[0]}'; the API knows {', '.join(FEATURES)}")
    return names


class GreyReleaseSettings(Settings):
    """The in-app grey release: `features` are on for `percent` % of users (sticky); testers send `header: on|off`."""

    enabled: bool = False
    percent: Percent = 0
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")] = "X-Grey-Release"
    features: Annotated[list[str], AfterValidator(_check_feature_names)] = []


class AppConfigSettings(Settings):
    name: Text = "real-estate-ai"
    recommendation: RecommendationSettings = RecommendationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    features: Annotated[dict[str, bool], AfterValidator(_check_feature_names)] = {
        "recommendation": True,
        "valuation": True,
        "market_analysis": True,
    }
    ab_test: AbTestSettings = AbTestSettings()
    grey_release: GreyReleaseSettings = GreyReleaseSettings()


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


# --- loading -------------------------------------------------------------------------------


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
        if alerting.dingtalk is not None and alerting.dingtalk.deploy:
            required["alertDingtalkRobotUrl"] = "is required while monitoring.alerting.dingtalk.deploy is true (the robot's webhook URL)"
            required["alertDingtalkRobotSecret"] = "is required while monitoring.alerting.dingtalk.deploy is true (the robot's signing secret)"
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
        else:
            secrets[key] = pulumi.Output.secret(value)

    if config is not None:
        problems.extend(rules.problems(config, stack))
    if problems:
        raise StackConfigError(
            f"invalid configuration for stack '{stack}':\n" + "\n".join(f"  - {p}" for p in problems)
        )
    assert config is not None
    return PlatformSettings(stack=stack, config=config, secrets=SecretOverrides(secrets))
