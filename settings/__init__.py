"""Stack configuration, read once at the edge and validated into typed settings.

Components never read Pulumi config: `__main__.py` calls `load_settings()` and hands the
resulting `PlatformSettings` to the components. Every problem in a stack's config is
reported in one `StackConfigError` that names the stack, the key path and what is allowed,
and it is raised before any resource is registered.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Optional

import pulumi
import semver
from pulumi.runtime import config as runtime_config
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

PROJECT = "real-estate-ai"

# Secret overrides: optional, read only as Pulumi secrets. A generated value is used otherwise.
SECRET_KEYS = (
    "postgresPassword",
    "redisPassword",
    "apiKey",
    "minioRootPassword",
    "backupOffsiteAccessKeyId",
    "backupOffsiteSecretAccessKey",
)
# Credentials of the off-site backup repository: needed, as secrets, whenever it is enabled.
OFFSITE_SECRET_KEYS = ("backupOffsiteAccessKeyId", "backupOffsiteSecretAccessKey")
# These identify an account at someone else's service; they are as long as that service makes them.
EXTERNAL_SECRET_KEYS = set(OFFSITE_SECRET_KEYS)
MIN_SECRET_LENGTH = 32


class StackConfigError(pulumi.RunError):
    """A stack's configuration is invalid; Pulumi prints the message without a traceback."""


# --- value types -----------------------------------------------------------------------------

_CPU_RE = re.compile(r"^(?:[0-9]+m|[0-9]+(?:\.[0-9]{1,3})?)$")
_BYTES_RE = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_BYTE_UNITS = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
# repository[:port]/path[:tag][@sha256:digest], lower-case repository as the registry API requires.
_IMAGE_RE = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_REGISTRY_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


def cpu_millicores(quantity: str) -> int:
    """'500m' -> 500, '2' -> 2000, '0.5' -> 500."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


def byte_count(quantity: str) -> int:
    """'1Gi' -> 1073741824; only the binary and decimal suffixes Kubernetes accepts."""
    match = _BYTES_RE.match(quantity)
    if match is None:
        raise ValueError(quantity)
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


def _check_cpu(value: str) -> str:
    if not _CPU_RE.match(value) or cpu_millicores(value) <= 0:
        raise ValueError(f"'{value}' is not a CPU quantity; use millicores like '500m' or cores like '2' or '0.5'")
    return value


def _check_bytes(value: str) -> str:
    if not _BYTES_RE.match(value) or byte_count(value) <= 0:
        raise ValueError(
            f"'{value}' is not a byte quantity; use an integer with Ki, Mi, Gi, Ti (or k, M, G, T), like '512Mi' or '10Gi'"
        )
    return value


def _check_image(value: str) -> str:
    match = _IMAGE_RE.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not an image reference like 'registry/name:1.2.3'")
    if match.group("tag") is None and match.group("digest") is None:
        raise ValueError(f"'{value}' has no tag; pin a version like 'name:1.2.3' or a digest '@sha256:…'")
    if match.group("tag") == "latest":
        raise ValueError(f"'{value}' uses ':latest'; pin a version so every rollout is reproducible")
    return value


def _check_semver(value: str) -> str:
    if not semver.Version.is_valid(value):
        raise ValueError(f"'{value}' is not a semantic version like '1.4.2'")
    return value


def _check_dns_label(value: str) -> str:
    if not _DNS_LABEL_RE.match(value):
        raise ValueError(f"'{value}' is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)")
    return value


_SQL_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_sql_identifier(value: str) -> str:
    if not _SQL_IDENTIFIER_RE.match(value):
        raise ValueError(f"'{value}' is not a plain SQL identifier (lower-case letters, digits and '_', at most 63)")
    return value


def _check_hostname(value: str) -> str:
    if not _HOSTNAME_RE.match(value):
        raise ValueError(f"'{value}' is not a fully qualified host name like 'api.example.com'")
    return value


def _check_registry(value: str) -> str:
    if not _REGISTRY_RE.match(value):
        raise ValueError(f"'{value}' is not a registry path like 'registry.example.com/team'")
    return value


Cpu = Annotated[str, AfterValidator(_check_cpu)]
Bytes = Annotated[str, AfterValidator(_check_bytes)]
Image = Annotated[str, AfterValidator(_check_image)]
SemVer = Annotated[str, AfterValidator(_check_semver)]
DnsLabel = Annotated[str, AfterValidator(_check_dns_label)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
SqlIdentifier = Annotated[str, AfterValidator(_check_sql_identifier)]
Registry = Annotated[str, AfterValidator(_check_registry)]
Percent = Annotated[int, Field(ge=0, le=100)]


_CRON_FIELD = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?(,[0-9]{1,2}(-[0-9]{1,2})?)*)(/[0-9]{1,2})?"
_CRON_RE = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")


def _check_cron(value: str) -> str:
    if not _CRON_RE.match(value):
        raise ValueError(f"'{value}' is not a five-field cron schedule like '0 2 * * *'")
    return value


Cron = Annotated[str, AfterValidator(_check_cron)]
Environment = Literal["dev", "test", "prod"]


class _Settings(BaseModel):
    """Base: camelCase keys as Pulumi config writes them, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=False
    )


# --- component settings --------------------------------------------------------------------


class ComputeResources(_Settings):
    cpu: Cpu
    memory: Bytes


class Resources(_Settings):
    requests: ComputeResources
    limits: ComputeResources

    @model_validator(mode="after")
    def _requests_within_limits(self) -> "Resources":
        if cpu_millicores(self.requests.cpu) > cpu_millicores(self.limits.cpu):
            raise ValueError(f"requests.cpu {self.requests.cpu} exceeds limits.cpu {self.limits.cpu}")
        if byte_count(self.requests.memory) > byte_count(self.limits.memory):
            raise ValueError(f"requests.memory {self.requests.memory} exceeds limits.memory {self.limits.memory}")
        return self

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.requests.cpu, "memory": self.requests.memory},
            "limits": {"cpu": self.limits.cpu, "memory": self.limits.memory},
        }


def _resources(req_cpu: str, req_mem: str, lim_cpu: str, lim_mem: str) -> Resources:
    return Resources(
        requests=ComputeResources(cpu=req_cpu, memory=req_mem),
        limits=ComputeResources(cpu=lim_cpu, memory=lim_mem),
    )


class Storage(_Settings):
    size: Bytes
    # None uses the cluster's default StorageClass.
    storage_class: Optional[DnsLabel] = None


class KubernetesSettings(_Settings):
    """Where the provider sends objects: a kubeconfig context, or YAML files in a directory."""

    context: Optional[str] = None
    kubeconfig: Optional[str] = None
    render_yaml_to_directory: Optional[str] = None

    @model_validator(mode="after")
    def _one_target(self) -> "KubernetesSettings":
        if self.render_yaml_to_directory and (self.context or self.kubeconfig):
            raise ValueError("set either renderYamlToDirectory or context/kubeconfig, not both")
        return self


class NamespaceSettings(_Settings):
    name: DnsLabel = "real-estate"
    # Pod Security admission level enforced on the namespace.
    pod_security: Literal["privileged", "baseline", "restricted"] = "restricted"


class AutoscalingSettings(_Settings):
    min_replicas: Annotated[int, Field(ge=1)]
    max_replicas: Annotated[int, Field(ge=1)]
    target_cpu_utilization: Annotated[int, Field(ge=10, le=95)] = 70

    @model_validator(mode="after")
    def _min_below_max(self) -> "AutoscalingSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        return self


class ProbeTiming(_Settings):
    initial_delay_seconds: Annotated[int, Field(ge=0)]
    period_seconds: Annotated[int, Field(ge=1)]
    timeout_seconds: Annotated[int, Field(ge=1)] = 3
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class ApiSettings(_Settings):
    replicas: Annotated[int, Field(ge=1)]
    # Semantic release version: the image tag and app.version.
    version: SemVer
    # A pinned image to deploy. When unset the image is built from app/ with pulumi-docker.
    image: Optional[Image] = None
    # Registry to push the built image to; without one the image is built locally and not pushed.
    registry: Optional[Registry] = None
    resources: Resources = _resources("500m", "1Gi", "2", "2Gi")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    # Wait for a LoadBalancer address on `pulumi up`; off by default as kind and bare clusters never assign one.
    await_load_balancer: bool = False
    autoscaling: Optional[AutoscalingSettings] = None
    # Minimum pods kept through voluntary disruptions; None creates no PodDisruptionBudget.
    pod_disruption_budget_min_available: Optional[Annotated[int, Field(ge=1)]] = None
    liveness: ProbeTiming = ProbeTiming(initial_delay_seconds=30, period_seconds=10)
    readiness: ProbeTiming = ProbeTiming(initial_delay_seconds=5, period_seconds=5)

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


class TlsSettings(_Settings):
    enabled: bool = False
    cluster_issuer: str = "letsencrypt-prod"
    secret_name: Optional[DnsLabel] = None


class IngressSettings(_Settings):
    enabled: bool = True
    host: Hostname
    class_name: DnsLabel = "nginx"
    # Namespace of the ingress controller pods, allowed through the API's NetworkPolicy.
    controller_namespace: DnsLabel = "ingress-nginx"
    tls: TlsSettings = TlsSettings()
    # Wait for the controller to publish an address; off where no controller reports status.
    await_address: bool = False


class PostgresSettings(_Settings):
    image: Image = "postgres:17.6"
    database: SqlIdentifier = "real_estate"
    user: SqlIdentifier = "real_estate"
    storage: Storage = Storage(size="10Gi")
    resources: Resources = _resources("250m", "512Mi", "1", "1Gi")


class RedisSettings(_Settings):
    image: Image = "redis:7.4.5"
    storage: Storage = Storage(size="2Gi")
    resources: Resources = _resources("100m", "256Mi", "500m", "512Mi")
    # Redis evicts nothing by default; a cap below the container limit keeps it from being OOM-killed.
    maxmemory: Bytes = "384Mi"


class MilvusComponent(_Settings):
    image: Image
    storage: Storage
    resources: Resources


class MilvusSettings(_Settings):
    milvus: MilvusComponent = MilvusComponent(
        image="milvusdb/milvus:v2.6.9", storage=Storage(size="10Gi"), resources=_resources("500m", "2Gi", "2", "4Gi")
    )
    etcd: MilvusComponent = MilvusComponent(
        image="quay.io/coreos/etcd:v3.5.21", storage=Storage(size="2Gi"), resources=_resources("100m", "256Mi", "500m", "512Mi")
    )
    minio: MilvusComponent = MilvusComponent(
        image="minio/minio:RELEASE.2024-12-18T13-15-44Z",
        storage=Storage(size="20Gi"),
        resources=_resources("100m", "256Mi", "1", "1Gi"),
    )


class PostgresBackupSettings(_Settings):
    full_schedule: Cron = "0 2 * * *"
    incremental_schedule: Cron = "0 * * * *"
    verify_schedule: Cron = "30 4 * * *"
    restore_drill_schedule: Cron = "0 5 * * 0"
    full_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    incremental_retention_days: Annotated[int, Field(ge=1, le=365)] = 7
    # Upper bound on the WAL a crash can lose: PostgreSQL switches segments at least this often.
    archive_timeout_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    # Scratch space for the restore drill: at least the database's size.
    drill_storage: Bytes = "20Gi"
    drill_min_tables: Annotated[int, Field(ge=0)] = 1
    pgbackrest_version: str = "2.56.0"


class BackupStorageSettings(_Settings):
    """The in-cluster S3-compatible repository (MinIO): pgBackRest's repo1 and Milvus backups."""

    image: Image = "minio/minio:RELEASE.2024-12-18T13-15-44Z"
    # The MinIO client that creates the buckets.
    mc_image: Image = "minio/mc:RELEASE.2024-11-21T17-21-54Z"
    storage: Storage = Storage(size="50Gi")
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")


class OffsiteSettings(_Settings):
    """pgBackRest's repo2: S3-compatible object storage outside the cluster."""

    enabled: bool = False
    endpoint: Optional[Hostname] = None
    bucket: Optional[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]] = None
    region: str = "us-east-1"
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")] = "/pgbackrest"
    uri_style: Literal["host", "path"] = "host"

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "OffsiteSettings":
        if self.enabled and not (self.endpoint and self.bucket):
            raise ValueError("an enabled off-site repository needs endpoint and bucket")
        return self


class RedisBackupSettings(_Settings):
    schedule: Cron = "15 * * * *"
    retention_days: Annotated[int, Field(ge=1, le=365)] = 7
    storage: Storage = Storage(size="10Gi")


class MilvusBackupSettings(_Settings):
    enabled: bool = True
    schedule: Cron = "0 3 * * *"
    image: Image = "milvusdb/milvus-backup:v0.5.9"


class BackupSettings(_Settings):
    enabled: bool = True
    postgres: PostgresBackupSettings = PostgresBackupSettings()
    storage: BackupStorageSettings = BackupStorageSettings()
    offsite: OffsiteSettings = OffsiteSettings()
    redis: RedisBackupSettings = RedisBackupSettings()
    milvus: MilvusBackupSettings = MilvusBackupSettings()
    # Image with pgBackRest for PostgreSQL and the backup jobs; unset builds images/postgres-pgbackrest.
    postgres_image: Optional[Image] = None


class RecommendationSettings(_Settings):
    model: Literal["hybrid", "collaborative", "content"] = "hybrid"
    top_k: Annotated[int, Field(ge=1, le=100)] = 10


class EvaluationSettings(_Settings):
    model: Literal["xgboost", "lightgbm", "linear"] = "xgboost"
    confidence_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8


class AbTestSettings(_Settings):
    enabled: bool = False
    # Share of traffic that sees variant B.
    variant_b_percent: Percent = 0


class GreyReleaseSettings(_Settings):
    enabled: bool = False
    percent: Percent = 0
    # Requests carrying this header are always routed to the grey release.
    header: str = "X-Grey-Release"


_FEATURE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_features(value: dict[str, bool]) -> dict[str, bool]:
    for name in value:
        if not _FEATURE_NAME_RE.match(name):
            raise ValueError(f"feature name '{name}' must be snake_case: lower-case letters, digits and '_'")
    return value


class AppConfigSettings(_Settings):
    name: str = "real-estate-ai"
    recommendation: RecommendationSettings = RecommendationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    features: Annotated[dict[str, bool], AfterValidator(_check_features)] = {
        "recommendation": True,
        "valuation": True,
        "market_analysis": True,
    }
    ab_test: AbTestSettings = AbTestSettings()
    grey_release: GreyReleaseSettings = GreyReleaseSettings()


class PlatformConfig(_Settings):
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



def _environment_problems(config: PlatformConfig) -> list[str]:
    """Rules that depend on more than one key, reported with the key path to change."""
    problems = []
    if config.environment == "prod":
        if config.api.replicas < 2:
            problems.append(f"{PROJECT}:api.replicas: is {config.api.replicas}; prod needs at least 2 API replicas")
        if config.namespace.pod_security != "restricted":
            problems.append(f"{PROJECT}:namespace.podSecurity: must be 'restricted' in prod")
        if not config.backups.enabled:
            problems.append(f"{PROJECT}:backups.enabled: prod cannot run without backups")
        elif not config.backups.offsite.enabled:
            problems.append(f"{PROJECT}:backups.offsite.enabled: prod keeps an off-site copy of its backups")
    if config.ingress.tls.enabled and not config.ingress.enabled:
        problems.append(f"{PROJECT}:ingress.tls.enabled: TLS needs ingress.enabled to be true")
    grey = config.app_config.grey_release
    if grey.enabled and grey.percent == 0:
        problems.append(f"{PROJECT}:appConfig.greyRelease.percent: must be above 0 when the grey release is enabled")
    return problems


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


def required_secret_keys(config: Optional[PlatformConfig]) -> list[str]:
    """Secret config keys this configuration cannot deploy without."""
    if config is not None and config.backups.enabled and config.backups.offsite.enabled:
        return list(OFFSITE_SECRET_KEYS)
    return []


def load_settings(stack: Optional[str] = None, raw: Optional[dict[str, Any]] = None) -> PlatformSettings:
    """Validate the stack's config. Raises StackConfigError naming every bad key path."""
    stack = stack or pulumi.get_stack()
    raw = _project_config() if raw is None else raw
    problems: list[str] = []

    plain = {key: _decode(value) for key, value in raw.items() if key not in SECRET_KEYS}
    try:
        config = PlatformConfig.model_validate(plain)
    except ValidationError as exc:
        config = None
        for error in exc.errors():
            path = _key_path(error["loc"]) if error["loc"] else f"{PROJECT}:"
            problems.append(f"{path}: {_describe(error)}")

    if config is not None:
        problems.extend(_environment_problems(config))

    secrets: dict[str, pulumi.Output[str]] = {}
    for key in required_secret_keys(config):
        if key not in raw:
            problems.append(
                f"{PROJECT}:{key}: is required while backups.offsite.enabled is true; "
                f"set it with `pulumi config set --secret {key}`"
            )
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
        else:
            secrets[key] = pulumi.Output.secret(value)

    if problems:
        raise StackConfigError(
            f"invalid configuration for stack '{stack}':\n" + "\n".join(f"  - {p}" for p in problems)
        )
    assert config is not None
    return PlatformSettings(stack=stack, config=config, secrets=SecretOverrides(secrets))
