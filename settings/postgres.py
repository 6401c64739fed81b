"""PostgreSQL settings: the Percona operator, the PerconaPGCluster it runs, and the cluster's backups."""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, model_validator

from policy.guardrails.contract import image_parts
from settings.values import (
    Bytes,
    Cidr,
    Cron,
    DnsLabel,
    Endpoint,
    Hostname,
    Image,
    Resources,
    SemVer,
    Settings,
    SqlIdentifier,
    Storage,
    byte_count,
    make_resources,
    matching,
)

# The operator version this program's PerconaPGCluster is written for (spec.crVersion) and its chart.
OPERATOR_VERSION = "3.0.0"
# The app's role: a DNS label (the operator names its Secret after it) that is also a plain SQL identifier.
_ROLE_RE = re.compile(r"[a-z][a-z0-9]{0,30}")
_REGION_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+){0,5}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Segments separated by single slashes, no trailing slash: linear to match (no nested repetition to backtrack).
_REPO_PATH_RE = re.compile(r"(?:/[A-Za-z0-9._-]{1,64}){1,16}")


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# What S3 keeps for its own names (access points, Object Lambda, directory and table buckets, punycode): a bucket
# named so cannot be created, or is read as one of those.
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _check_bucket(value: str) -> str:
    # S3's naming rules: no '..', and never an IP address's form.
    if not _BUCKET_RE.fullmatch(value) or ".." in value or _is_address(value):
        raise ValueError(f"{value!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-', not an IP address)")
    reserved = [part for part in _BUCKET_RESERVED_PREFIXES if value.startswith(part)]
    reserved += [part for part in _BUCKET_RESERVED_SUFFIXES if value.endswith(part)]
    if reserved:
        raise ValueError(f"{value!r} is not an S3 bucket name: S3 reserves names with {reserved[0]!r} there")
    return value


def _check_repo_path(value: str) -> str:
    if not _REPO_PATH_RE.fullmatch(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ValueError(f"'{value}' is not an absolute path like '/pgbackrest/prod' (letters, digits, '.', '_', '-')")
    return value


# Names the operator keeps for itself: asking for `postgres` would hand the API the superuser.
# The operator's roles, and ours: `metrics` is the PostgreSQL exporter's (components/postgres_exporter.py).
RESERVED_ROLES = frozenset({"postgres", "monitor", "pgbouncer", "replicator", "ccp_monitoring", "metrics"})


def _check_not_reserved(value: str) -> str:
    if value in RESERVED_ROLES:
        raise ValueError(f"'{value}' is a role the operator reserves (the superuser or its own); choose the API's own name")
    return value


RoleName = Annotated[
    str,
    matching(_ROLE_RE, "a role name: a lower-case letter, then lower-case letters and digits, at most 31"),
    AfterValidator(_check_not_reserved),
]
Region = Annotated[str, matching(_REGION_RE, "a region like 'eu-central-1'")]
Bucket = Annotated[str, AfterValidator(_check_bucket)]
RepoPath = Annotated[str, AfterValidator(_check_repo_path)]


# The operator's CRDs per chart version, vendored (crds/README.md): the program applies them itself, since Helm never
# upgrades a chart's crds/ (components/postgres_operator.py).
OPERATOR_CRDS = Path(__file__).resolve().parent.parent / "crds"


def operator_crds_file(chart_version: str) -> Path:
    return OPERATOR_CRDS / f"percona-pg-operator-v{chart_version}-crds.yaml"


def _check_vendored_crds(value: str) -> str:
    if not operator_crds_file(value).is_file():
        raise ValueError(f"'{value}': no CRDs vendored for this operator release; add the release's "
                         f"config/crd/bases CRDs as {operator_crds_file(value).relative_to(OPERATOR_CRDS.parent)} first")
    return value


class OperatorSettings(Settings):
    # Install the operator (Helm chart, pinned) and its CRDs with this stack; off where the cluster already runs one
    # for this namespace.
    install: bool = True
    # Where it runs; unset: "<platform namespace>-pg-operator", so two stacks on one cluster never share one.
    namespace: Optional[DnsLabel] = None
    chart_version: Annotated[SemVer, AfterValidator(_check_vendored_crds)] = OPERATOR_VERSION


class PatroniSettings(Settings):
    """Failover timing. A dead primary is replaced once its leader lease runs out; the members renew it every sync period."""

    leader_lease_duration_seconds: Annotated[int, Field(ge=8, le=300)] = 15
    sync_period_seconds: Annotated[int, Field(ge=1, le=60)] = 5
    # Commits wait for one synchronous standby, so a failover loses no acknowledged transaction.
    synchronous: bool = False
    # A replica further behind than this is never promoted (asynchronous mode only).
    maximum_lag_on_failover: Bytes = "1Mi"

    @property
    def retry_timeout_seconds(self) -> int:
        # Patroni requires loop_wait + 2 * retry_timeout <= ttl.
        return (self.leader_lease_duration_seconds - self.sync_period_seconds) // 2

    @model_validator(mode="after")
    def _lease_outlasts_retries(self) -> "PatroniSettings":
        if self.retry_timeout_seconds < 2:
            raise ValueError(
                f"leaderLeaseDurationSeconds {self.leader_lease_duration_seconds} must be at least syncPeriodSeconds "
                f"{self.sync_period_seconds} + 4, so a member can retry the consensus store before its lease expires"
            )
        return self


class PgBouncerSettings(Settings):
    enabled: bool = False
    replicas: Annotated[int, Field(ge=1, le=20)] = 2
    image: Image = "docker.io/percona/percona-pgbouncer:1.25.2-1"
    pool_mode: Literal["transaction", "session"] = "transaction"
    # Server connections per database/user pair, per PgBouncer pod.
    default_pool_size: Annotated[int, Field(ge=1, le=1000)] = 20
    # Client connections one PgBouncer pod accepts.
    max_client_conn: Annotated[int, Field(ge=10, le=100000)] = 1000
    resources: Resources = make_resources("100m", "64Mi", "1", "256Mi")


_TARGET_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}(?::?[0-9]{2})?")


def _check_target(value: str) -> str:
    if not _TARGET_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a time with its offset like '2026-11-28 10:15:00+00'")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid time") from None
    if moment > datetime.datetime.now(datetime.timezone.utc):
        raise ValueError(f"'{value}' is in the future")
    return value


class RestoreFromSettings(Settings):
    """Create this cluster from another stack's off-site repository (disaster recovery into a new cluster).

    Same bucket and credentials as this stack's backups.offsite, the source's path, and the source's cipher
    passphrase as this stack's backupOffsiteCipherPass. Read only when the cluster is first created."""

    path: RepoPath
    # None restores everything archived; otherwise a point in time.
    target: Optional[Annotated[str, AfterValidator(_check_target)]] = None


class StandbySettings(Settings):
    """This cluster follows another stack's primary (another region's, say) until promoted: the operator's
    spec.standby. It replays the WAL the primary archives to the off-site repository (this stack's backups.offsite
    names the primary's bucket and path, backupOffsiteCipherPass is the primary's passphrase) and, with `host`,
    streams from the primary too: seconds behind instead of up to archive_timeout. Promotion is `enabled: false`
    and `pulumi up` (docs/region-loss.md); the cluster then writes its own backups there."""

    enabled: bool = True
    # The primary's PostgreSQL endpoint reachable from this cluster (its replication role's pg_hba must allow it).
    host: Optional[Endpoint] = None
    port: Annotated[int, Field(ge=1024, le=65535)] = 5432


class PostgresSettings(Settings):
    operator: OperatorSettings = OperatorSettings()
    image: Image = "docker.io/percona/percona-distribution-postgresql:17.10-1"
    # pgBackRest for the repository host and the backup jobs, released with the operator.
    backup_image: Image = "docker.io/percona/percona-pgbackrest:2.58.0-2"
    # Major version of the image; the operator needs it spelled out.
    version: Annotated[int, Field(ge=15, le=18)] = 17
    instances: Annotated[int, Field(ge=1, le=9)] = 1
    database: SqlIdentifier = "real_estate"
    # The API's role: owns the database's objects, not a superuser.
    user: RoleName = "realestate"
    storage: Storage = Storage(size="10Gi")
    resources: Resources = make_resources("250m", "512Mi", "1", "1Gi")
    max_connections: Annotated[int, Field(ge=25, le=5000)] = 200
    # Spread instances over zones: "required" refuses to schedule two in one zone while another has fewer.
    zone_spread: Literal["required", "preferred"] = "preferred"
    patroni: PatroniSettings = PatroniSettings()
    pgbouncer: PgBouncerSettings = PgBouncerSettings()
    # prometheus-community's postgres_exporter: the operator ships none without PMM (README, image evidence).
    exporter_image: Image = "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"
    restore_from: Optional[RestoreFromSettings] = None
    standby: Optional[StandbySettings] = None

    @model_validator(mode="after")
    def _image_is_the_version(self) -> "PostgresSettings":
        match = image_parts(self.image)
        tag = match.group("tag") if match else None
        if tag and tag[0].isdigit() and tag.split(".")[0].split("-")[0] != str(self.version):
            raise ValueError(f"image {self.image} is not PostgreSQL {self.version}; set version to the image's major version")
        return self


class OffsiteSettings(Settings):
    """pgBackRest's repo2: S3-compatible object storage outside the cluster, encrypted client-side."""

    enabled: bool = False
    endpoint: Optional[Hostname] = None
    bucket: Optional[Bucket] = None
    region: Region = "us-east-1"
    path: RepoPath = "/pgbackrest"
    uri_style: Literal["host", "path"] = "host"
    # The store's addresses, where known: egress to off site goes there only (default: any public address).
    cidrs: Annotated[list[Cidr], Field(max_length=32)] = []

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "OffsiteSettings":
        if self.enabled and not (self.endpoint and self.bucket):
            raise ValueError("an enabled off-site repository needs endpoint and bucket")
        return self


class PostgresBackupSettings(Settings):
    # repo1, the repository volume in the cluster.
    full_schedule: Cron = "0 1 * * *"
    # Hourly, except in the hour after each full (a full holds pgBackRest's lock for a while).
    incremental_schedule: Cron = "30 0,2,4-23 * * *"
    # repo2, off site: a full copy each day (WAL reaches it continuously).
    offsite_full_schedule: Cron = "0 3 * * *"
    # Our own checks against the repositories.
    verify_schedule: Cron = "15 5 * * *"
    restore_drill_schedule: Cron = "45 5 * * 0"
    # The same drill from the off-site repository alone (when there is one): monthly.
    offsite_drill_schedule: Cron = "45 6 1 * *"
    # Fulls are kept this many days; an incremental lives as long as the full it depends on.
    full_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Upper bound on the WAL a lost cluster can lose: PostgreSQL switches segments at least this often.
    archive_timeout_seconds: Annotated[int, Field(ge=10, le=60)] = 60
    # No other backup may start this long after a full starts: pgBackRest runs one backup at a time.
    full_backup_window_minutes: Annotated[int, Field(ge=1, le=720)] = 60
    # WAL that may wait for an unreachable repository before pgBackRest drops it (and alerts) instead of filling pg_wal.
    archive_push_queue_max: Bytes = "4Gi"
    repository_storage: Storage = Storage(size="50Gi")
    repository_resources: Resources = make_resources("100m", "128Mi", "1", "1Gi")
    # Scratch volume for the restore drill: at least the database's size.
    drill_storage: Storage = Storage(size="20Gi")
    drill_min_tables: Annotated[int, Field(ge=0, le=100000)] = 1

    @model_validator(mode="after")
    def _queue_fits(self) -> "PostgresBackupSettings":
        if byte_count(self.archive_push_queue_max) < 64 * 2**20:
            raise ValueError(f"archivePushQueueMax {self.archive_push_queue_max} is below 64Mi, a handful of WAL segments")
        return self
