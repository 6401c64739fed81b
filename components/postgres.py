"""PostgreSQL as a PerconaPGCluster: Patroni failover, PgBouncer, pgBackRest backups to repo1 (a volume on the
operator's repository host) and repo2 (off-site S3, encrypted), all run by the Percona operator.

The program declares the cluster; the operator owns its StatefulSets, Services, Secrets, backup CronJobs and
restores. Pulumi waits until the operator reports the cluster ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import BackupSettings, PostgresSettings, byte_count, make_resources
from settings.postgres import OPERATOR_VERSION
from components import pgbackrest, postgres_exporter
from components.workload import claim_spec, container_security_context, labels
from components.component import Component

NAME = "postgres"
PORT = 5432
# The name the operator gives the database container's port (its internal/naming PortPostgreSQL), the only one it declares.
PORT_NAME = "postgres"
PATRONI_PORT = 8008
PGBACKREST_PORT = 8432
INSTANCE_SET = "instance1"
LABEL = "postgres-operator.crunchydata.com"
CLUSTER_SELECTOR = {f"{LABEL}/cluster": NAME}
# Pods the operator creates, by the labels it gives them (internal/naming/labels.go).
INSTANCE_PODS = {**CLUSTER_SELECTOR, f"{LABEL}/data": "postgres"}
PGBOUNCER_PODS = {**CLUSTER_SELECTOR, f"{LABEL}/role": "pgbouncer"}
REPO_HOST_PODS = {**CLUSTER_SELECTOR, f"{LABEL}/data": "pgbackrest"}
BACKUP_JOB_PODS = {**CLUSTER_SELECTOR, f"{LABEL}/pgbackrest": ""}
OFFSITE_SECRET = "pgbackrest-offsite"
READY_TIMEOUT_SECONDS = 1800
ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
MiB = 2**20
# The Percona PostgreSQL image runs as the postgres user, UID 26, which owns the data and the repository's files.
POSTGRES_UID = 26
# Where the operator binds PostgreSQL's socket (internal/postgres/config.go, v3.0.0); it mounts /tmp in every container.
SOCKET_DIRECTORY = "/tmp/postgres"
CHECKPOINT_GUARD = Path(__file__).resolve().parent.parent / "ops" / "postgres" / "checkpoint-after-start.sh"


def user_secret_name(user: str) -> str:
    """The Secret the operator writes for the API's role: user, password, host, port, dbname, uri, pgbouncer-uri."""
    return f"{NAME}-pguser-{user}"


# Run once by the operator (as superuser) after the cluster is up: the exporter's role may read every statistic.
INIT_SQL_CONFIG_MAP = "postgres-init-sql"
INIT_SQL_KEY = "init.sql"
INIT_SQL = f"GRANT pg_monitor TO {postgres_exporter.ROLE};\n"


def repo1_claim_name() -> str:
    return f"{NAME}-repo1"


def parameters(pg: PostgresSettings, backups: BackupSettings) -> dict[str, str]:
    """PostgreSQL sized to the instance's memory limit and connection budget."""
    memory = byte_count(pg.resources.limits.memory)
    shared_buffers = memory // 4
    return {
        "max_connections": str(pg.max_connections),
        "shared_buffers": f"{shared_buffers // MiB}MB",
        "effective_cache_size": f"{memory * 3 // 4 // MiB}MB",
        "maintenance_work_mem": f"{min(memory // 16, 1024 * MiB) // MiB}MB",
        # A quarter of what shared buffers leave, shared by every connection at once.
        "work_mem": f"{max(4, (memory - shared_buffers) // 4 // pg.max_connections // MiB)}MB",
        "archive_timeout": f"{backups.postgres.archive_timeout_seconds}s",
        "wal_compression": "zstd",
        "password_encryption": "scram-sha-256",
        # A transaction left open holds locks and connections; end it.
        "idle_in_transaction_session_timeout": "10min",
    }


def patroni_dcs(pg: PostgresSettings) -> dict:
    """What Patroni's consensus store holds for this cluster (the operator maps ttl and loop_wait from the spec)."""
    p = pg.patroni
    dcs = {
        "ttl": p.leader_lease_duration_seconds,
        "loop_wait": p.sync_period_seconds,
        "retry_timeout": p.retry_timeout_seconds,
        "maximum_lag_on_failover": byte_count(p.maximum_lag_on_failover),
        "synchronous_mode": p.synchronous,
    }
    if p.synchronous:
        dcs["synchronous_node_count"] = 1
    return dcs


def _spread(selector: dict, required: bool) -> list[dict]:
    return [{
        "maxSkew": 1,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "DoNotSchedule" if required else "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector},
    }]


def _apart_from(selector: dict, required: bool) -> dict:
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": HOST}
    if required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}}


def checkpoint_guard(pg: PostgresSettings, resources: dict) -> dict:
    """The instance pod's sidecar that wakes the checkpointer after every start (ops/postgres/checkpoint-after-start.sh):
    on PostgreSQL 15-17 archive_timeout does not hold until then, and a crash soon after a restart lost minutes.
    The script travels in the command, so a change to it rolls the instances like any other spec change."""
    return {
        "name": "checkpoint-after-start",
        "image": pg.image,
        "command": ["bash", "-c", CHECKPOINT_GUARD.read_text(), "checkpoint-after-start"],
        # The local socket as the postgres user: the operator's pg_hba lets it in by peer authentication.
        "env": [
            {"name": "PGHOST", "value": SOCKET_DIRECTORY},
            {"name": "PGPORT", "value": str(PORT)},
            {"name": "PGUSER", "value": "postgres"},
            {"name": "PGCONNECT_TIMEOUT", "value": "5"},
        ],
        "resources": resources,
        "securityContext": container_security_context(POSTGRES_UID),
    }


def cluster_spec(pg: PostgresSettings, backups: BackupSettings, offsite_secret: Optional[str]) -> dict:
    """spec of the PerconaPGCluster: instances, Patroni, PgBouncer, users, backups."""
    dcs = patroni_dcs(pg)
    instance_selector = {**CLUSTER_SELECTOR, f"{LABEL}/instance-set": INSTANCE_SET}
    small = make_resources("10m", "32Mi", "100m", "64Mi").to_kubernetes()
    instance = {
        "name": INSTANCE_SET,
        "replicas": pg.instances,
        "resources": pg.resources.to_kubernetes(),
        "dataVolumeClaimSpec": claim_spec(pg.storage),
        # Two instances never share a node: one node's loss must leave a member to promote.
        "affinity": _apart_from(INSTANCE_PODS, required=pg.instances > 1),
        "topologySpreadConstraints": _spread(instance_selector, pg.zone_spread == "required"),
        "containers": {"replicaCertCopy": {"resources": small}},
        "sidecars": [checkpoint_guard(pg, small)],
    }
    if pg.instances > 1:
        # Drains take one instance at a time.
        instance["minAvailable"] = pg.instances - 1
    spec: dict = {
        "crVersion": OPERATOR_VERSION,
        "image": pg.image,
        "imagePullPolicy": "Always",
        "postgresVersion": pg.version,
        "port": PORT,
        "users": [
            {"name": pg.user, "databases": [pg.database], "grantPublicSchemaAccess": True},
            # The exporter's login: no database of its own (it reads statistics in `postgres`), pg_monitor by INIT_SQL.
            {"name": postgres_exporter.ROLE},
        ],
        "databaseInitSQL": {"name": INIT_SQL_CONFIG_MAP, "key": INIT_SQL_KEY},
        "instances": [instance],
        "patroni": {
            # ops/postgres/switchover.sh triggers one with an annotation; the program owns this switch.
            "switchover": {"enabled": True},
            "syncPeriodSeconds": dcs["loop_wait"],
            "leaderLeaseDurationSeconds": dcs["ttl"],
            "dynamicConfiguration": {
                **{k: v for k, v in dcs.items() if k not in ("ttl", "loop_wait")},
                "postgresql": {"parameters": parameters(pg, backups)},
            },
        },
        "backups": {"pgbackrest": _pgbackrest_spec(pg, backups, offsite_secret)},
    }
    if pg.standby is not None:
        # Kept after promotion as enabled: false, so the field stays the program's (SSA) and says what happened.
        standby: dict = {"enabled": pg.standby.enabled, "repoName": "repo2"}
        if pg.standby.host:
            standby.update({"host": pg.standby.host, "port": pg.standby.port})
        spec["standby"] = standby
    if pg.restore_from is not None and pgbackrest.offsite(backups) is not None:
        spec["dataSource"] = {"pgbackrest": _data_source(pg, backups, offsite_secret)}
    if pg.pgbouncer.enabled:
        bouncer = pg.pgbouncer
        spec["proxy"] = {
            "pgBouncer": {
                "replicas": bouncer.replicas,
                "image": bouncer.image,
                "port": PORT,
                "resources": bouncer.resources.to_kubernetes(),
                "affinity": _apart_from(PGBOUNCER_PODS, required=False),
                "containers": {"pgbouncerConfig": {"resources": small}},
                "config": {
                    "global": {
                        "pool_mode": bouncer.pool_mode,
                        "default_pool_size": str(bouncer.default_pool_size),
                        "max_client_conn": str(bouncer.max_client_conn),
                        # psycopg prepares repeated statements; PgBouncer 1.21+ tracks them across transactions.
                        "max_prepared_statements": "200",
                    }
                },
            }
        }
    return spec


def _data_source(pg: PostgresSettings, backups: BackupSettings, offsite_secret: Optional[str]) -> dict:
    """Bootstrap from another stack's off-site repository: same bucket and credentials, the source's path."""
    remote = pgbackrest.offsite(backups)
    source = pg.restore_from
    # The operator hands the options to a shell: the time's space must stay quoted.
    options = ["--type=time", f'--target="{source.target}"'] if source.target else []
    return {
        "stanza": pgbackrest.STANZA,
        "configuration": [{"secret": {"name": offsite_secret}}],
        "global": {
            "repo2-path": source.path,
            "repo2-s3-uri-style": remote.uri_style,
            "repo2-cipher-type": pgbackrest.OFFSITE_CIPHER,
        },
        "repo": {"name": "repo2", "s3": {"bucket": remote.bucket, "endpoint": remote.endpoint, "region": remote.region}},
        "options": options,
    }


def _pgbackrest_spec(pg: PostgresSettings, backups: BackupSettings, offsite_secret: Optional[str]) -> dict:
    b = backups.postgres
    repos: list[dict] = [{
        "name": "repo1",
        "schedules": {"full": b.full_schedule, "incremental": b.incremental_schedule},
        "volume": {"volumeClaimSpec": claim_spec(b.repository_storage)},
    }]
    remote = pgbackrest.offsite(backups)
    if remote:
        repos.append({
            "name": "repo2",
            "schedules": {"full": b.offsite_full_schedule},
            "s3": {"bucket": remote.bucket, "endpoint": remote.endpoint, "region": remote.region},
        })
    small = make_resources("10m", "32Mi", "200m", "128Mi").to_kubernetes()
    spec: dict = {
        "image": pg.backup_image,
        "global": pgbackrest.global_options(backups),
        "repoHost": {
            "resources": b.repository_resources.to_kubernetes(),
            "affinity": _apart_from(INSTANCE_PODS, required=False),
        },
        "containers": {"pgbackrest": {"resources": small}, "pgbackrestConfig": {"resources": small}},
        # Backup Jobs run pgBackRest on the repository host through the API; they need little themselves.
        "jobs": {"resources": make_resources("50m", "64Mi", "500m", "256Mi").to_kubernetes(), "backoffLimit": 6, "restartPolicy": "OnFailure"},
        # `kubectl annotate perconapgcluster postgres pgv2.percona.com/...` is not needed: PerconaPGBackup runs one.
        "manual": {"repoName": "repo1", "options": ["--type=full"]},
        "repos": repos,
    }
    if offsite_secret:
        spec["configuration"] = [{"secret": {"name": offsite_secret}}]
    return spec


@dataclass
class PostgresArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: PostgresSettings
    backups: BackupSettings
    protect: bool
    # offsite.conf (repo2 credentials and cipher passphrase); None without an off-site repository.
    offsite_config: Optional[pulumi.Input[str]] = None


class Postgres(Component):
    """The PerconaPGCluster and the Secret with its off-site repository credentials."""

    def __init__(self, name: str, args: PostgresArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:postgres:Postgres", name, opts)
        meta_labels = labels(NAME, args.stack, "database")
        if args.settings.standby is not None and args.settings.standby.enabled:
            # What a standby stack cannot do yet, said where every preview shows it (docs/region-loss.md).
            pulumi.log.warn(
                "postgres.standby: until promotion the API and the exporter cannot log in (this cluster's operator made "
                "their passwords, the roles carry the primary's): ApiDown, ApiDatabaseUnreachable and "
                "PostgresArchiverMetricsMissing fire; once promoted, it writes its WAL and backups into the primary's "
                "off-site path (its repo2 is that path): fence the old primary first (docs/region-loss.md)", resource=self)
        offsite_secret = None
        if args.offsite_config is not None:
            secret = k8s.core.v1.Secret(
                self.child_name("offsite"),
                metadata={"name": OFFSITE_SECRET, "namespace": args.namespace, "labels": meta_labels},
                type="Opaque",
                string_data={pgbackrest.OFFSITE_CONFIG_FILE: pulumi.Output.secret(args.offsite_config)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            offsite_secret = secret.metadata.name
        init_sql = k8s.core.v1.ConfigMap(
            self.child_name("init-sql"),
            metadata={"name": INIT_SQL_CONFIG_MAP, "namespace": args.namespace, "labels": meta_labels},
            data={INIT_SQL_KEY: INIT_SQL},
            opts=pulumi.ResourceOptions(parent=self),
        )
        spec = cluster_spec(args.settings, args.backups, OFFSITE_SECRET if offsite_secret else None)
        self.cluster = k8s.apiextensions.CustomResource(
            self.child_name("cluster"),
            api_version="pgv2.percona.com/v2",
            kind="PerconaPGCluster",
            metadata={
                "name": NAME,
                "namespace": args.namespace,
                "labels": meta_labels,
                "annotations": {
                    # Pulumi waits for the operator's verdict, within a budget for a first start on new nodes. It
                    # holds on create only: on an update the operator stamps `ready` with the new generation from its
                    # PostgresCluster's status before that rolled out, so ops/release waits for the rollout itself
                    # (ops/release/stack.py postgres_pending).
                    "pulumi.com/waitFor": "jsonpath={.status.state}=ready",
                    "pulumi.com/timeoutSeconds": str(READY_TIMEOUT_SECONDS),
                },
            },
            spec=spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                depends_on=[init_sql, secret] if offsite_secret else [init_sql],
            ),
        )
        self.service_name = pulumi.Output.from_input(f"{NAME}-pgbouncer" if args.settings.pgbouncer.enabled else f"{NAME}-primary")
        self.user_secret = user_secret_name(args.settings.user)
        # Through PgBouncer where it runs; straight to the primary otherwise.
        self.uri_key = "pgbouncer-uri" if args.settings.pgbouncer.enabled else "uri"
        self.register_outputs({"service_name": self.service_name})
