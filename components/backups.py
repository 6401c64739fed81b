"""Backups: the in-cluster backup object store, and the scheduled jobs for PostgreSQL, Redis and Milvus.

Every job runs a script from ops/backup (mounted from the `backup-scripts` ConfigMap) and leaves its
outcome where kube-state-metrics reads it: `kube_cronjob_status_last_successful_time` per CronJob and
`kube_job_status_failed` per Job (see docs/backup-and-recovery.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from settings import BackupSettings, RedisSettings, Resources, _resources
from components.pgbackrest import (
    DRILL_DIR,
    PGDATA,
    REPO1_BUCKET,
    SCRIPTS_DIR,
    TLS_DIR,
    PgBackRest,
)
from components.minio import MinioArgs, minio
from components.stateful import StatefulService
from components.workload import (
    claim_spec,
    SecretKeyRef,
    container_security_context,
    empty_dir,
    labels,
    pod_security_context,
    secret_volume,
    service_dns,
)

STORAGE_NAME = "backup-minio"
STORAGE_PORT = 9000
MILVUS_BACKUP_BUCKET = "milvus-backup"
SERVICE_ACCOUNT = "backup"
# Pod names (app.kubernetes.io/name) of the backup jobs, used by the NetworkPolicies.
PG_BACKUP = "pg-backup"
PG_DRILL = "pg-restore-drill"
PG_RESTORE = "pg-restore"
REDIS_RESTORE = "redis-restore"
REDIS_BACKUP = "redis-backup"
MILVUS_BACKUP = "milvus-backup"
STORAGE_INIT = "backup-storage-init"
JOB_RESOURCES = _resources("100m", "256Mi", "1", "1Gi")


def storage_host(namespace: str) -> str:
    return service_dns(STORAGE_NAME, namespace)


def render_milvus_backup_config(
    milvus_host: str, minio_host: str, minio_user: str, minio_password: str,
    storage_host_: str, storage_user: str, storage_password: str, stack: str,
) -> str:
    """milvus-backup's backup.yaml: read from Milvus' MinIO, write to the backup object store."""
    config = {
        "log": {"level": "info", "console": True, "file": {"filename": "/tmp/milvus-backup.log"}},
        "http": {"simpleResponse": True},
        "milvus": {"address": milvus_host, "port": 19530, "user": "", "password": "", "tlsMode": 0},
        "minio": {
            "storageType": "minio",
            "address": minio_host,
            "port": 9000,
            "region": "",
            "accessKeyID": minio_user,
            "secretAccessKey": minio_password,
            "useSSL": False,
            "useIAM": False,
            # Milvus' own bucket and root path (its user.yaml sets the bucket; the root path is Milvus' default).
            "bucketName": "milvus",
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
            # Two MinIO services: data goes through milvus-backup rather than a server-side copy.
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
    pgbackrest: PgBackRest
    postgres_database: str
    postgres_user: str
    storage_credentials_secret: pulumi.Input[str]
    storage_user: pulumi.Input[str]
    storage_password: pulumi.Input[str]
    redis: RedisSettings
    redis_host: str
    redis_password: SecretKeyRef
    milvus_host: str
    minio_host: str
    minio_user: pulumi.Input[str]
    minio_password: pulumi.Input[str]
    protect: bool
    # PostgreSQL's StatefulSet: the first backup waits for it.
    postgres: pulumi.Resource


class Backups(pulumi.ComponentResource):
    def __init__(self, name: str, args: BackupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:backups:Backups", name, None, opts)
        self._args = args
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        k8s.core.v1.ServiceAccount(
            SERVICE_ACCOUNT,
            metadata=self._meta(SERVICE_ACCOUNT, "backup"),
            automount_service_account_token=False,
            opts=child,
        )
        storage = self._storage()
        init = self._storage_init(depends_on=[storage.stateful_set])
        repos = " ".join(str(r.index) for r in args.pgbackrest.repos)

        # The first full backup right after deployment: the stanza exists and archiving works from day one.
        self._pg_job(
            "postgres-backup-init", ["full"], {"BACKUP_REPOS": repos},
            depends_on=[init, args.postgres],
        )
        self.cron_jobs = {
            "postgres-backup-full": self._pg_cron(
                "postgres-backup-full", s.postgres.full_schedule, ["full"],
                {"BACKUP_REPOS": repos, "INCR_RETENTION_DAYS": str(s.postgres.incremental_retention_days)},
                deadline=6 * 3600,
            ),
            "postgres-backup-incremental": self._pg_cron(
                "postgres-backup-incremental", s.postgres.incremental_schedule, ["incr"], {"BACKUP_REPOS": "1"}, deadline=3000,
            ),
            "postgres-backup-verify": self._pg_cron(
                "postgres-backup-verify", s.postgres.verify_schedule, [], {"BACKUP_REPOS": repos},
                script="pg-verify.sh", deadline=6 * 3600,
            ),
            "postgres-restore-drill": self._drill_cron(),
            "redis-backup": self._redis_cron(),
        }
        if s.milvus.enabled:
            self.cron_jobs["milvus-backup"] = self._milvus_cron()
        # Templates for ops/backup/k8s-recover-*.sh: suspended, never scheduled, copied into a Job on demand.
        self._postgres_restore_template()
        self._redis_restore_template()
        self.register_outputs({})

    # --- helpers -----------------------------------------------------------------------------

    def _meta(self, name: str, component: str, pod_name: Optional[str] = None) -> dict:
        return {
            "name": name,
            "namespace": self._args.namespace,
            "labels": labels(pod_name or name, self._args.stack, component),
        }

    def _pod(self, pod_name: str, component: str, container: dict, volumes: list[dict]) -> dict:
        return {
            "metadata": {"labels": labels(pod_name, self._args.stack, component)},
            "spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "restartPolicy": "Never",
                "securityContext": pod_security_context(),
                "containers": [container],
                "volumes": volumes,
            },
        }

    def _job_spec(self, pod: dict, deadline: int, backoff: int = 1) -> dict:
        return {"backoffLimit": backoff, "activeDeadlineSeconds": deadline, "template": pod}

    def _cron(self, name: str, schedule: str, pod: dict, deadline: int, backoff: int = 1, suspend: bool = False) -> k8s.batch.v1.CronJob:
        return k8s.batch.v1.CronJob(
            name,
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
                   resources: Resources = JOB_RESOURCES, pull: str = "Always") -> dict:
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": pull,
            "command": command,
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "resources": resources.to_kubernetes(),
            "securityContext": container_security_context(),
            "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        }

    # --- PostgreSQL --------------------------------------------------------------------------

    def _pg_pod(self, pod_name: str, script: str, script_args: list[str], env: dict[str, str], role: str,
                tls_items: list[str], extra_volumes: list[dict] = (), extra_mounts: list[dict] = ()) -> dict:
        pgbackrest = self._args.pgbackrest
        container = self._container(
            "pgbackrest", pgbackrest.image, [f"{SCRIPTS_DIR}/{script}", *script_args],
            {"PGBACKREST_STANZA": "main", **env}, [*PgBackRest.mounts(), *extra_mounts], pull=pgbackrest.pull_policy,
        )
        volumes = [*pgbackrest.volumes(role, tls_items), empty_dir("tmp", "256Mi"), *extra_volumes]
        return self._pod(pod_name, "backup", container, volumes)

    def _repository_host_pod(self, script: str, script_args: list[str], env: dict[str, str]) -> dict:
        """A backup or verify pod: a pgBackRest repository host reaching PostgreSQL with the client certificate."""
        return self._pg_pod(PG_BACKUP, script, script_args, env, "repo-host", ["ca.crt", "client.crt", "client.key"])

    def _pg_cron(self, name: str, schedule: str, script_args: list[str], env: dict[str, str],
                 script: str = "pg-backup.sh", deadline: int = 3600) -> k8s.batch.v1.CronJob:
        return self._cron(name, schedule, self._repository_host_pod(script, script_args, env), deadline)

    def _pg_job(self, name: str, script_args: list[str], env: dict[str, str], depends_on: list[pulumi.Resource]) -> k8s.batch.v1.Job:
        pod = self._repository_host_pod("pg-backup.sh", script_args, env)
        return k8s.batch.v1.Job(
            name,
            metadata=self._meta(name, "backup", PG_BACKUP),
            # PostgreSQL may still be starting: retry for a while before the deployment reports failure.
            spec=self._job_spec(pod, deadline=3 * 3600, backoff=6),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )

    def _drill_cron(self) -> k8s.batch.v1.CronJob:
        s = self._args.settings.postgres
        pod = self._pg_pod(
            PG_DRILL, "pg-restore-drill.sh", [],
            {
                "DRILL_DIR": DRILL_DIR,
                "DRILL_DATABASE": self._args.postgres_database,
                "DRILL_USER": self._args.postgres_user,
                "DRILL_MIN_TABLES": str(s.drill_min_tables),
                "BACKUP_REPO": "1",
            },
            "drill", ["ca.crt"],
            extra_volumes=[empty_dir("drill", s.drill_storage)],
            extra_mounts=[{"name": "drill", "mountPath": DRILL_DIR}],
        )
        pod["spec"]["containers"][0]["resources"] = _resources("500m", "1Gi", "2", "4Gi").to_kubernetes()
        return self._cron("postgres-restore-drill", s.restore_drill_schedule, pod, deadline=6 * 3600)

    def _restore_source(self, name: str, key: str, default: str) -> pulumi.Output[str]:
        """The ConfigMap the recovery script writes its target into (Pulumi leaves the value alone)."""
        config_map = k8s.core.v1.ConfigMap(
            name,
            metadata=self._meta(name, "restore"),
            data={key: default},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data"]),
        )
        return config_map.metadata.name

    def _postgres_restore_template(self) -> k8s.batch.v1.CronJob:
        source = self._restore_source("postgres-restore-target", "target", "latest")
        pod = self._pg_pod(
            PG_RESTORE, "pg-restore.sh", ["--pgdata", PGDATA, "--target", "$(RESTORE_TARGET)"], {}, "pg-host", ["ca.crt"],
            extra_volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}}],
            extra_mounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        )
        container = pod["spec"]["containers"][0]
        container["env"].append({"name": "RESTORE_TARGET", "valueFrom": {"configMapKeyRef": {"name": source, "key": "target"}}})
        container["resources"] = _resources("500m", "1Gi", "2", "4Gi").to_kubernetes()
        return self._suspended("postgres-restore", pod, deadline=4 * 3600)

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
            {"name": "backup-scripts", "configMap": {"name": a.pgbackrest.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "64Mi"),
        ])
        return self._suspended("redis-restore", pod, deadline=3600)

    def _suspended(self, name: str, pod: dict, deadline: int) -> k8s.batch.v1.CronJob:
        # February 31st never comes; suspend makes sure of it.
        return self._cron(name, "0 0 31 2 *", pod, deadline, backoff=0, suspend=True)

    # --- backup object store ------------------------------------------------------------------

    def _storage(self) -> StatefulService:
        a = self._args
        s = a.settings.storage
        return minio(
            MinioArgs(
                name=STORAGE_NAME,
                component="backup-storage",
                namespace=a.namespace,
                stack=a.stack,
                image=s.image,
                storage=s.storage,
                resources=s.resources,
                credentials_secret=a.storage_credentials_secret,
                user_key="root-user",
                password_key="root-password",
                protect=a.protect,
                tls_secret=a.pgbackrest.tls_secret_name,
            ),
            parent=self,
        )

    def _storage_init(self, depends_on: list[pulumi.Resource]) -> k8s.batch.v1.Job:
        """Create the buckets (idempotent). mc takes the whole alias from MC_HOST_backup; no shell involved."""
        a = self._args
        container = self._container(
            "mc", a.settings.storage.mc_image,
            ["mc", "mb", "--ignore-existing", f"backup/{REPO1_BUCKET}", f"backup/{MILVUS_BACKUP_BUCKET}"],
            {"MC_CONFIG_DIR": "/tmp/.mc", "SSL_CERT_FILE": f"{TLS_DIR}/ca.crt"},
            [{"name": "ca", "mountPath": TLS_DIR, "readOnly": True}],
            resources=_resources("50m", "64Mi", "200m", "128Mi"),
        )
        container["env"].append(SecretKeyRef(a.storage_credentials_secret, "mc-host").env("MC_HOST_backup"))
        pod = self._pod(STORAGE_INIT, "backup-storage", container, [
            secret_volume("ca", a.pgbackrest.tls_secret_name, {"ca.crt": "ca.crt"}), empty_dir("tmp", "16Mi"),
        ])
        return k8s.batch.v1.Job(
            STORAGE_INIT,
            metadata=self._meta(STORAGE_INIT, "backup-storage"),
            spec=self._job_spec(pod, deadline=1800, backoff=10),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )

    # --- Redis -------------------------------------------------------------------------------

    def _redis_cron(self) -> k8s.batch.v1.CronJob:
        a = self._args
        s = a.settings.redis
        claim = k8s.core.v1.PersistentVolumeClaim(
            "redis-backups",
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
            {"name": "backup-scripts", "configMap": {"name": a.pgbackrest.scripts_config_map_name, "defaultMode": 0o555}},
            empty_dir("tmp", "64Mi"),
        ])
        return self._cron("redis-backup", s.schedule, pod, deadline=1800)

    # --- Milvus ------------------------------------------------------------------------------

    def _milvus_cron(self) -> k8s.batch.v1.CronJob:
        a = self._args
        s = a.settings.milvus
        config = pulumi.Output.all(a.minio_user, a.minio_password, a.storage_user, a.storage_password).apply(
            lambda creds: render_milvus_backup_config(
                a.milvus_host, a.minio_host, creds[0], creds[1], storage_host(a.namespace_name), creds[2], creds[3], a.stack
            )
        )
        secret = k8s.core.v1.Secret(
            "milvus-backup-config",
            metadata=self._meta("milvus-backup-config", "backup", MILVUS_BACKUP),
            type="Opaque",
            string_data={"backup.yaml": pulumi.Output.secret(config)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        container = self._container(
            "milvus-backup", s.image, ["milvus-backup", "create", "--config", "/etc/milvus-backup/backup.yaml"],
            # Go's TLS stack trusts the backup CA for the backup object store.
            {"SSL_CERT_FILE": f"{TLS_DIR}/ca.crt"},
            [
                {"name": "config", "mountPath": "/etc/milvus-backup", "readOnly": True},
                {"name": "ca", "mountPath": TLS_DIR, "readOnly": True},
            ],
        )
        pod = self._pod(MILVUS_BACKUP, "backup", container, [
            secret_volume("config", secret.metadata.name, {"backup.yaml": "backup.yaml"}),
            secret_volume("ca", a.pgbackrest.tls_secret_name, {"ca.crt": "ca.crt"}),
            empty_dir("tmp", "1Gi"),
        ])
        return self._cron("milvus-backup", s.schedule, pod, deadline=6 * 3600)
