"""Backups beside the operator's: checks of the PostgreSQL repositories (verify, restore drill), Redis snapshots,
Milvus backups into an in-cluster object store, and the Redis restore template.

Every job runs a script from ops/backup (mounted from the `backup-scripts` ConfigMap) and leaves its
outcome where kube-state-metrics reads it: `kube_cronjob_status_last_successful_time` per CronJob and
`kube_job_status_failed` per Job (see docs/backup-and-recovery.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

import pulumi_tls as tls

from settings import BackupSettings, PostgresSettings, RedisSettings, Resources, make_resources
from components import pgbackrest
from components import object_store as object_store_module
from components.object_store import ObjectStoreArgs, S3Endpoint, object_store
from components.secrets import S3Credentials
from components.postgres import POSTGRES_UID, REPO_HOST_PODS, repo1_claim_name
from components.redis import NAME as REDIS_NAME
from components.stateful import StatefulService
from components.component import Component
from components.workload import (
    account_node_disk,
    SecretKeyRef,
    claim_spec,
    container_security_context,
    empty_dir,
    labels,
    pod_security_context,
    secret_volume,
    selector_labels,
    service_dns,
)

# The object store for Milvus backups (PostgreSQL's repositories are the operator's).
STORAGE_NAME = "backup-s3"
STORAGE_PORT = object_store_module.PORT
MILVUS_BACKUP_BUCKET = "milvus-backup"
SERVICE_ACCOUNT = "backup"
# Pod names (app.kubernetes.io/name) of the backup jobs, used by the NetworkPolicies.
PG_VERIFY = "pg-verify"
PG_DRILL = "pg-restore-drill"
REDIS_RESTORE = "redis-restore"
REDIS_BACKUP = "redis-backup"
MILVUS_BACKUP = "milvus-backup"
MILVUS_RESTORE = "milvus-restore"
JOB_RESOURCES = make_resources("100m", "256Mi", "1", "1Gi")
SCRIPTS_DIR = "/opt/backup"
TLS_DIR = "/etc/backup-tls"
SCRIPTS_SOURCE = Path(__file__).resolve().parent.parent / "ops" / "backup"
PGBACKREST_CONF_DIR = "/etc/pgbackrest"
DRILL_DIR = "/drill"


def scripts() -> list[Path]:
    """What the jobs run: the shell scripts and the archive checker they call."""
    return sorted([*SCRIPTS_SOURCE.glob("*.sh"), *SCRIPTS_SOURCE.glob("*.py")])


def storage_host(namespace: str) -> str:
    return service_dns(STORAGE_NAME, namespace)


def render_milvus_backup_config(
    milvus_host: str, source: S3Endpoint, minio_user: str, minio_password: str,
    storage_host_: str, storage_user: str, storage_password: str, stack: str,
) -> str:
    """milvus-backup's backup.yaml: read from Milvus' object store, write to the backup object store.
    (The tool calls any S3 store 'minio'; its keys are named after it.)"""
    config = {
        "log": {"level": "info", "console": True, "file": {"filename": "/tmp/milvus-backup.log"}},
        "http": {"simpleResponse": True},
        "milvus": {"address": milvus_host, "port": 19530, "user": "", "password": "", "tlsMode": 0},
        "minio": {
            "storageType": "minio",
            "address": source.host,
            "port": source.port,
            "region": source.region,
            "accessKeyID": minio_user,
            "secretAccessKey": minio_password,
            "useSSL": source.use_ssl,
            "useIAM": False,
            # Milvus' own bucket and root path (its user.yaml sets the bucket; the root path is Milvus' default).
            "bucketName": source.bucket,
            "rootPath": "files",
            "backupStorageType": "minio",
            "backupAddress": storage_host_,
            "backupPort": STORAGE_PORT,
            "backupRegion": "",
            "backupAccessKeyID": storage_user,
            "backupSecretAccessKey": storage_password,
            "backupBucketName": MILVUS_BACKUP_BUCKET,
            "backupRootPath": f"{stack}/milvus",
            "backupUseSSL": True,
            # Two object stores: data goes through milvus-backup rather than a server-side copy.
            "crossStorage": "true",
        },
        "backup": {
            "parallelism": {"copydata": 16, "backupCollection": 2, "backupSegment": 256, "restoreCollection": 2, "importJob": 64},
            "keepTempFiles": False,
            "gcPause": {"enable": True, "address": f"http://{milvus_host}:9091"},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class BackupsArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    settings: BackupSettings
    postgres: PostgresSettings
    storage_credentials: S3Credentials
    redis: RedisSettings
    redis_host: str
    redis_password: SecretKeyRef
    milvus_host: str
    milvus_s3_endpoint: S3Endpoint
    milvus_s3: S3Credentials
    protect: bool
    # offsite.conf for repo2 (a Secret the cluster also mounts); None without an off-site repository.
    offsite_secret: Optional[pulumi.Input[str]] = None


class Backups(Component):
    def __init__(self, name: str, args: BackupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:backups:Backups", name, opts)
        self._args = args
        self._check_configs: dict[str, k8s.core.v1.ConfigMap] = {}
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        k8s.core.v1.ServiceAccount(
            self.child_name(SERVICE_ACCOUNT),
            metadata=self._meta(SERVICE_ACCOUNT, "backup"),
            automount_service_account_token=False,
            opts=child,
        )
        self.scripts_config_map_name = k8s.core.v1.ConfigMap(
            self.child_name("backup-scripts"),
            metadata=self._meta("backup-scripts", "backup"),
            data={p.name: p.read_text() for p in scripts()},
            opts=child,
        ).metadata.name
        self.tls_secret_name = self._tls()
        self._storage()
        # Full and incremental backups, WAL archiving, retention: the operator's (spec.backups of the cluster).
        self.cron_jobs = {"redis-backup": self._redis_cron()}
        standby = args.postgres.standby is not None and args.postgres.standby.enabled
        if not standby:
            # A standby writes no backups (the operator suspends them) and its off-site repository is the primary's,
            # which the primary's stack verifies and drills: these checks come with promotion.
            self.cron_jobs["postgres-backup-verify"] = self._verify_cron()
            self.cron_jobs["postgres-restore-drill"] = self._drill_cron("postgres-restore-drill", "1", s.postgres.restore_drill_schedule)
        if s.offsite.enabled and not standby:
            # The off-site repository alone must restore everything too (its WAL, its cipher): drilled on its own.
            self.cron_jobs["postgres-restore-drill-offsite"] = self._drill_cron(
                "postgres-restore-drill-offsite", "2", s.postgres.offsite_drill_schedule)
        if s.milvus.enabled:
            self.cron_jobs["milvus-backup"] = self._milvus_cron()
        # Templates for ops/backup/k8s-recover-*.sh: suspended, never scheduled, copied into a Job on demand.
        self._redis_restore_template()
        if s.milvus.enabled:
            self._milvus_restore_template()
        self.register_outputs({})

    # --- helpers -----------------------------------------------------------------------------

    def _meta(self, name: str, component: str, pod_name: Optional[str] = None) -> dict:
        return {
            "name": name,
            "namespace": self._args.namespace,
            "labels": labels(pod_name or name, self._args.stack, component),
        }

    def _pod(self, pod_name: str, component: str, container: dict, volumes: list[dict], uid: Optional[int] = None) -> dict:
        return {
            "metadata": {"labels": labels(pod_name, self._args.stack, component)},
            "spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "restartPolicy": "Never",
                "securityContext": pod_security_context(uid) if uid else pod_security_context(),
                "containers": [container],
                "volumes": volumes,
            },
        }

    def _job_spec(self, pod: dict, deadline: int, backoff: int = 1) -> dict:
        # The pod is final here (resources included): account the node disk it writes.
        account_node_disk(pod["spec"])
        return {"backoffLimit": backoff, "activeDeadlineSeconds": deadline, "template": pod}

    def _cron(self, name: str, schedule: str, pod: dict, deadline: int, backoff: int = 1, suspend: bool = False) -> k8s.batch.v1.CronJob:
        return k8s.batch.v1.CronJob(
            self.child_name(name),
            metadata=self._meta(name, "backup", pod["metadata"]["labels"]["app.kubernetes.io/name"]),
            spec={
                "schedule": schedule,
                "suspend": suspend,
                "timeZone": "Etc/UTC",
                # Never two of the same job at once: pgBackRest would refuse the second anyway.
                "concurrencyPolicy": "Forbid",
                # A job that could not start within 10 minutes is skipped and shows as a missed run.
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 5,
                "jobTemplate": {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": self._job_spec(pod, deadline, backoff)},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _container(self, name: str, image: pulumi.Input[str], command: list[str], env: dict[str, str], mounts: list[dict],
                   resources: Resources = JOB_RESOURCES, pull: str = "Always", uid: Optional[int] = None) -> dict:
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": pull,
            "command": command,
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "resources": resources.to_kubernetes(),
            "securityContext": container_security_context(uid) if uid else container_security_context(),
            "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        }

    # --- PostgreSQL: checks against the operator's repositories ------------------------------

    def _pg_check_pod(self, pod_name: str, script: str, env: dict[str, str], extra_volumes: list[dict] = (),
                      extra_mounts: list[dict] = (), resources: Resources = JOB_RESOURCES) -> dict:
        """A pod on the repository host's node with repo1 mounted read-only: it reads backups, never writes them."""
        a = self._args
        if pod_name not in self._check_configs:
            # One per kind of check: both drills (repo1, off site) read the same configuration.
            self._check_configs[pod_name] = k8s.core.v1.ConfigMap(
                self.child_name(f"{pod_name}-pgbackrest"),
                metadata=self._meta(f"{pod_name}-pgbackrest", "backup", pod_name),
                data={"pgbackrest.conf": pgbackrest.job_conf(a.settings, f"{DRILL_DIR}/pgdata")},
                opts=pulumi.ResourceOptions(parent=self),
            )
        config = self._check_configs[pod_name]
        container = self._container(
            "pgbackrest", a.postgres.image, [f"{SCRIPTS_DIR}/{script}"],
            {"PGBACKREST_STANZA": pgbackrest.STANZA, **env},
            [
                # A directory mount, not subPath: a changed ConfigMap reaches the next run.
                {"name": "pgbackrest-config", "mountPath": PGBACKREST_CONF_DIR, "readOnly": True},
                {"name": "repo1", "mountPath": pgbackrest.REPO1_PATH, "readOnly": True},
                {"name": "backup-scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
                *extra_mounts,
            ],
            resources=resources, uid=POSTGRES_UID,
        )
        volumes = [
            {"name": "pgbackrest-config", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": config.metadata.name, "items": [{"key": "pgbackrest.conf", "path": "pgbackrest.conf"}]}},
                *([{"secret": {"name": a.offsite_secret, "items": [
                    {"key": pgbackrest.OFFSITE_CONFIG_FILE, "path": f"conf.d/{pgbackrest.OFFSITE_CONFIG_FILE}"}]}}]
                  if a.offsite_secret else []),
            ]}},
            {"name": "repo1", "persistentVolumeClaim": {"claimName": repo1_claim_name(), "readOnly": True}},
            {"name": "backup-scripts", "configMap": {"name": self.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "256Mi"),
            *extra_volumes,
        ]
        pod = self._pod(pod_name, "backup", container, volumes, uid=POSTGRES_UID)
        # repo1 is a ReadWriteOnce volume: a second pod may mount it only on the node that already has it.
        pod["spec"]["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": REPO_HOST_PODS}, "topologyKey": "kubernetes.io/hostname"}
        ]}}
        return pod

    def _repos(self) -> str:
        return "1 2" if self._args.settings.offsite.enabled else "1"

    def _verify_cron(self) -> k8s.batch.v1.CronJob:
        pod = self._pg_check_pod(PG_VERIFY, "pg-verify.sh", {"BACKUP_REPOS": self._repos()})
        return self._cron("postgres-backup-verify", self._args.settings.postgres.verify_schedule, pod, deadline=6 * 3600)

    def _drill_cron(self, name: str, repo: str, schedule: str) -> k8s.batch.v1.CronJob:
        a = self._args
        s = a.settings.postgres
        scratch = {
            "name": "drill",
            # A volume of its own, sized for a copy of the database: not the node's disk.
            "ephemeral": {"volumeClaimTemplate": {
                "metadata": {"labels": labels(PG_DRILL, a.stack, "backup")},
                "spec": claim_spec(s.drill_storage),
            }},
        }
        pod = self._pg_check_pod(
            PG_DRILL, "pg-restore-drill.sh",
            {
                "DRILL_DIR": DRILL_DIR,
                "DRILL_DATABASE": a.postgres.database,
                "DRILL_USER": "postgres",
                "DRILL_MIN_TABLES": str(s.drill_min_tables),
                "BACKUP_REPO": repo,
            },
            extra_volumes=[scratch],
            extra_mounts=[{"name": "drill", "mountPath": DRILL_DIR}],
            resources=make_resources("500m", "1Gi", "2", "4Gi"),
        )
        return self._cron(name, schedule, pod, deadline=6 * 3600)

    def _restore_source(self, name: str, key: str, default: str) -> pulumi.Output[str]:
        """The ConfigMap the recovery script writes its source into (Pulumi leaves the value alone)."""
        config_map = k8s.core.v1.ConfigMap(
            self.child_name(name),
            metadata=self._meta(name, "restore"),
            data={key: default},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data"]),
        )
        return config_map.metadata.name

    def _redis_restore_template(self) -> k8s.batch.v1.CronJob:
        a = self._args
        source = self._restore_source("redis-restore-source", "path", "/backups/")
        container = self._container(
            "redis-restore", a.redis.image, [f"{SCRIPTS_DIR}/redis-restore.sh", "$(RESTORE_SOURCE)", "/data"], {},
            [
                {"name": "data", "mountPath": "/data"},
                {"name": "backups", "mountPath": "/backups", "readOnly": True},
                {"name": "backup-scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
            ],
        )
        container["env"].append({"name": "RESTORE_SOURCE", "valueFrom": {"configMapKeyRef": {"name": source, "key": "path"}}})
        pod = self._pod(REDIS_RESTORE, "restore", container, [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-redis-0"}},
            {"name": "backups", "persistentVolumeClaim": {"claimName": "redis-backups"}},
            {"name": "backup-scripts", "configMap": {"name": self.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "64Mi"),
        ])
        return self._suspended("redis-restore", pod, deadline=3600)

    def _suspended(self, name: str, pod: dict, deadline: int) -> k8s.batch.v1.CronJob:
        # February 31st never comes; suspend makes sure of it.
        return self._cron(name, "0 0 31 2 *", pod, deadline, backoff=0, suspend=True)

    # --- backup object store ------------------------------------------------------------------

    def _tls(self) -> pulumi.Output[str]:
        """A private CA and the backup store's certificate: Milvus backups travel over TLS inside the cluster."""
        child = pulumi.ResourceOptions(parent=self)
        a = self._args
        ca_key = tls.PrivateKey(self.child_name("backup-ca-key"), algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            self.child_name("backup-ca"),
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": f"real-estate-ai backup CA ({a.stack})"},
            validity_period_hours=10 * 8760,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        host = storage_host(a.namespace_name)
        key = tls.PrivateKey(self.child_name("backup-storage-key"), algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            self.child_name("backup-storage-csr"), private_key_pem=key.private_key_pem, subject={"common_name": host},
            dns_names=[host, STORAGE_NAME], opts=child,
        )
        cert = tls.LocallySignedCert(
            self.child_name("backup-storage-cert"),
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=2 * 8760,
            # Replaced by the first `pulumi up` in the last 30 days of its life.
            early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        secret = k8s.core.v1.Secret(
            self.child_name("backup-tls"),
            metadata=self._meta("backup-tls", "backup-storage", STORAGE_NAME),
            type="Opaque",
            string_data={"ca.crt": ca.cert_pem, "tls.crt": cert.cert_pem, "tls.key": pulumi.Output.secret(key.private_key_pem)},
            opts=child,
        )
        return secret.metadata.name

    def _storage(self) -> StatefulService:
        a = self._args
        s = a.settings.storage
        return object_store(
            ObjectStoreArgs(
                name=STORAGE_NAME,
                component="backup-storage",
                namespace=a.namespace,
                stack=a.stack,
                image=s.image,
                storage=s.storage,
                resources=s.resources,
                credentials_secret=a.storage_credentials.secret_name,
                credentials_checksum=a.storage_credentials.checksum,
                protect=a.protect,
                tls_secret=self.tls_secret_name,
            ),
            parent=self,
        )

    # --- Redis -------------------------------------------------------------------------------

    def _redis_cron(self) -> k8s.batch.v1.CronJob:
        a = self._args
        s = a.settings.redis
        claim = k8s.core.v1.PersistentVolumeClaim(
            self.child_name("redis-backups"),
            metadata={**self._meta("redis-backups", "backup", REDIS_BACKUP), "annotations": {"pulumi.com/skipAwait": "true"}},
            spec=claim_spec(s.storage),
            opts=pulumi.ResourceOptions(parent=self, protect=a.protect),
        )
        container = self._container(
            "redis-backup", a.redis.image, [f"{SCRIPTS_DIR}/redis-backup.sh"],
            {
                "REDIS_HOST": a.redis_host,
                "REDIS_PORT": "6379",
                "REDIS_PASSWORD_FILE": "/run/secrets/redis/password",
                "BACKUP_DIR": "/backups",
                "RETENTION_DAYS": str(s.retention_days),
            },
            [
                {"name": "backups", "mountPath": "/backups"},
                {"name": "redis-credentials", "mountPath": "/run/secrets/redis", "readOnly": True},
                {"name": "backup-scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
            ],
        )
        pod = self._pod(REDIS_BACKUP, "backup", container, [
            {"name": "backups", "persistentVolumeClaim": {"claimName": claim.metadata.name}},
            a.redis_password.volume("redis-credentials", "password"),
            {"name": "backup-scripts", "configMap": {"name": self.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "64Mi"),
        ])
        # Beside Redis: the snapshot volume binds (on first use) in Redis' zone, so the restore Job, which mounts
        # both volumes, can always be scheduled.
        pod["spec"]["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": selector_labels(REDIS_NAME, a.stack)}, "topologyKey": "kubernetes.io/hostname"}
        ]}}
        return self._cron("redis-backup", s.schedule, pod, deadline=1800)

    # --- Milvus ------------------------------------------------------------------------------

    def _milvus_config(self) -> pulumi.Output[str]:
        """The Secret with backup.yaml, made once for the backup CronJob and the restore template."""
        a = self._args
        config = pulumi.Output.all(
            a.milvus_s3.access_key, a.milvus_s3.secret_key, a.storage_credentials.access_key, a.storage_credentials.secret_key
        ).apply(
            lambda creds: render_milvus_backup_config(
                a.milvus_host, a.milvus_s3_endpoint, creds[0], creds[1], storage_host(a.namespace_name), creds[2], creds[3], a.stack
            )
        )
        secret = k8s.core.v1.Secret(
            self.child_name("milvus-backup-config"),
            metadata=self._meta("milvus-backup-config", "backup", MILVUS_BACKUP),
            type="Opaque",
            string_data={"backup.yaml": pulumi.Output.secret(config)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret.metadata.name

    def _milvus_pod(self, pod_name: str, args: list[str], env: dict[str, str]) -> dict:
        a = self._args
        container = self._container(
            "milvus-backup", a.settings.milvus.image, [f"{SCRIPTS_DIR}/milvus-backup.sh", *args],
            # Go's TLS stack trusts the backup CA for the backup object store.
            {"SSL_CERT_FILE": f"{TLS_DIR}/ca.crt", "MILVUS_BACKUP": "/app/milvus-backup",
             "MILVUS_BACKUP_CONFIG": "/etc/milvus-backup/backup.yaml", **env},
            [
                {"name": "config", "mountPath": "/etc/milvus-backup", "readOnly": True},
                {"name": "ca", "mountPath": TLS_DIR, "readOnly": True},
                {"name": "backup-scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
            ],
        )
        return self._pod(pod_name, "backup", container, [
            secret_volume("config", self.milvus_config_secret, {"backup.yaml": "backup.yaml"}),
            secret_volume("ca", self.tls_secret_name, {"ca.crt": "ca.crt"}),
            {"name": "backup-scripts", "configMap": {"name": self.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "1Gi"),
        ])

    def _milvus_cron(self) -> k8s.batch.v1.CronJob:
        s = self._args.settings.milvus
        self.milvus_config_secret = self._milvus_config()
        pod = self._milvus_pod(MILVUS_BACKUP, ["create"], {"RETENTION_DAYS": str(s.retention_days)})
        return self._cron("milvus-backup", s.schedule, pod, deadline=6 * 3600)

    def _milvus_restore_template(self) -> k8s.batch.v1.CronJob:
        source = self._restore_source("milvus-restore-source", "name", "none")
        pod = self._milvus_pod(MILVUS_RESTORE, ["restore", "$(RESTORE_NAME)"], {})
        pod["spec"]["containers"][0]["env"].append(
            {"name": "RESTORE_NAME", "valueFrom": {"configMapKeyRef": {"name": source, "key": "name"}}}
        )
        return self._suspended("milvus-restore", pod, deadline=6 * 3600)
