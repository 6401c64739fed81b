"""The backup wiring each stack renders: schedules, retention, repositories, scripts, and configs that the
real tools accept (pgBackRest parses our pgbackrest.conf here; milvus-backup's keys are checked)."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components.pgbackrest import CLIENT_CN, ROLES, SCRIPTS_SOURCE, TLS_PORT
from tests.harness import STACKS, containers, decoded_config, env_value, pod_spec

CRON_JOBS = {
    "postgres-backup-full": ("postgres", "fullSchedule"),
    "postgres-backup-incremental": ("postgres", "incrementalSchedule"),
    "postgres-backup-verify": ("postgres", "verifySchedule"),
    "postgres-restore-drill": ("postgres", "restoreDrillSchedule"),
    "redis-backup": ("redis", "schedule"),
    "milvus-backup": ("milvus", "schedule"),
}


def _backups(stack):
    return decoded_config(stack)["real-estate-ai:backups"]


def _conf(rendered, role):
    return rendered.find("ConfigMap", "pgbackrest-config")["data"][f"{role}.conf"]


def _options(conf: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in conf.splitlines() if "=" in line)


def _job_container(obj):
    (container,) = containers(obj)
    return container


@pytest.mark.parametrize("stack", STACKS)
def test_cron_jobs_follow_the_stack_schedules(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    for name, (section, key) in CRON_JOBS.items():
        cron = rendered.find("CronJob", name)["spec"]
        assert cron["schedule"] == config[section][key], name
        assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"] == "Etc/UTC"
        assert cron["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("stack", STACKS)
def test_retention_and_repositories_follow_the_stack(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    offsite = config["offsite"]
    for role in ("pg-host", "repo-host", "drill"):
        options = _options(_conf(rendered, role))
        assert options["repo1-type"] == "s3" and options["repo1-s3-bucket"] == "pgbackrest"
        assert options["repo1-retention-full-type"] == "time"
        assert options["repo1-retention-full"] == str(config["postgres"]["fullRetentionDays"])
        if offsite["enabled"]:
            assert options["repo2-s3-endpoint"] == offsite["endpoint"]
            assert options["repo2-s3-bucket"] == offsite["bucket"]
            assert options["repo2-s3-region"] == offsite["region"]
            assert options["repo2-path"] == offsite["path"]
            assert options["repo2-retention-full"] == str(config["postgres"]["fullRetentionDays"])
        else:
            assert not any(key.startswith("repo2-") for key in options)
    repos = "1 2" if offsite["enabled"] else "1"
    full = _job_container(rendered.find("CronJob", "postgres-backup-full"))
    assert full["command"] == ["/opt/backup/pg-backup.sh", "full"]
    assert env_value(full, "BACKUP_REPOS")["value"] == repos
    assert env_value(full, "INCR_RETENTION_DAYS")["value"] == str(config["postgres"]["incrementalRetentionDays"])
    incremental = _job_container(rendered.find("CronJob", "postgres-backup-incremental"))
    assert incremental["command"] == ["/opt/backup/pg-backup.sh", "incr"]
    assert env_value(incremental, "BACKUP_REPOS")["value"] == "1"
    verify = _job_container(rendered.find("CronJob", "postgres-backup-verify"))
    assert verify["command"] == ["/opt/backup/pg-verify.sh"] and env_value(verify, "BACKUP_REPOS")["value"] == repos
    redis = _job_container(rendered.find("CronJob", "redis-backup"))
    assert env_value(redis, "RETENTION_DAYS")["value"] == str(config["redis"]["retentionDays"])
    claim = rendered.find("PersistentVolumeClaim", "redis-backups")["spec"]
    assert claim["resources"]["requests"]["storage"] == config["redis"]["storage"]["size"]


@pytest.mark.parametrize("stack", STACKS)
def test_postgres_archives_wal_and_serves_the_backup_jobs(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    sts = rendered.find("StatefulSet", "postgres")
    postgres, sidecar = containers(sts)
    args = postgres["args"]
    settings = {args[i + 1].split("=", 1)[0]: args[i + 1].split("=", 1)[1] for i in range(1, len(args), 2)}
    assert settings["archive_mode"] == "on"
    assert settings["archive_command"] == "pgbackrest --stanza=main archive-push %p"
    assert settings["archive_timeout"] == str(config["postgres"]["archiveTimeoutSeconds"])
    assert postgres["image"] == sidecar["image"] and "pgbackrest" in postgres["image"]
    assert sidecar["command"] == ["pgbackrest", "server"]
    assert sidecar["ports"][0]["containerPort"] == TLS_PORT
    options = _options(_conf(rendered, "pg-host"))
    assert options["tls-server-auth"] == f"{CLIENT_CN}=main" and options["archive-async"] == "y"
    repo_host = _options(_conf(rendered, "repo-host"))
    assert repo_host["pg1-host"] == f"postgres-0.postgres-headless.{sts['metadata']['namespace']}.svc.cluster.local"
    assert repo_host["pg1-host-type"] == "tls" and repo_host["pg1-host-port"] == str(TLS_PORT)


def test_client_certificate_is_the_one_the_server_trusts(rendered_stacks):
    rendered = rendered_stacks["prod"]
    requests = {r.name: r.inputs for r in rendered.registrations if r.type == "tls:index/certRequest:CertRequest"}
    assert requests["pgbackrest-client-csr"]["subject"]["commonName"] == CLIENT_CN
    server_names = requests["pgbackrest-server-csr"]["dnsNames"]
    assert _options(_conf(rendered, "repo-host"))["pg1-host"] in server_names
    certs = {r.name: r.inputs for r in rendered.registrations if r.type == "tls:index/locallySignedCert:LocallySignedCert"}
    assert "client_auth" in certs["pgbackrest-client-cert"]["allowedUses"]
    assert "server_auth" in certs["pgbackrest-server-cert"]["allowedUses"]


@pytest.mark.parametrize("stack", STACKS)
def test_jobs_run_the_scripts_from_the_repository(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    scripts = rendered.find("ConfigMap", "backup-scripts")["data"]
    assert scripts == {p.name: p.read_text() for p in SCRIPTS_SOURCE.glob("*.sh")}
    for obj in rendered.objects:
        if obj["kind"] not in ("CronJob", "Job"):
            continue
        command = _job_container(obj)["command"][0]
        if command.startswith("/opt/backup/"):
            assert Path(command).name in scripts, obj["metadata"]["name"]
            volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
            assert volumes["backup-scripts"]["configMap"]["defaultMode"] == 0o555


def _pgbackrest_parse(conf: str, tmp_path: Path) -> str:
    """Let pgBackRest itself read a rendered configuration; it warns about every option it does not know."""
    path = tmp_path / "pgbackrest.conf"
    path.write_text(conf)
    (tmp_path / "conf.d").mkdir()
    result = subprocess.run(
        ["pgbackrest", f"--config={path}", f"--config-include-path={tmp_path / 'conf.d'}", "--stanza=main", "--io-timeout=1",
         "--log-level-console=warn", "--lock-path", str(tmp_path), "info"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PGBACKREST_REPO1_S3_KEY": "k", "PGBACKREST_REPO1_S3_KEY_SECRET": "s",
             "PGBACKREST_REPO2_S3_KEY": "k", "PGBACKREST_REPO2_S3_KEY_SECRET": "s"},
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("role", ROLES)
def test_pgbackrest_accepts_every_rendered_option(stack, role, rendered_stacks, tmp_path):
    output = _pgbackrest_parse(_conf(rendered_stacks[stack], role), tmp_path)
    assert "invalid option" not in output, output
    assert "stanza: main" in output  # it got as far as asking the repository


def test_pgbackrest_parse_check_catches_a_bad_option(rendered_stacks, tmp_path):
    conf = _conf(rendered_stacks["prod"], "repo-host").replace("pg1-host-type=tls", "pg1-host-kind=tls")
    assert "invalid option 'pg1-host-kind'" in _pgbackrest_parse(conf, tmp_path)


# Keys of milvus-backup's configs/backup.yaml (zilliztech/milvus-backup), the file the tool reads.
MILVUS_BACKUP_KEYS = {
    "log": {"level", "console", "file"},
    "http": {"simpleResponse"},
    "cloud": {"address", "apikey"},
    "milvus": {"address", "port", "user", "password", "tlsMode", "caCertPath", "serverName", "mtlsCertPath", "mtlsKeyPath", "rpcChannelName"},
    "minio": {
        "storageType", "address", "port", "region", "accessKeyID", "secretAccessKey", "token", "gcpCredentialJSON", "useSSL", "useIAM",
        "iamEndpoint", "bucketName", "rootPath", "backupStorageType", "backupAddress", "backupRegion", "backupPort",
        "backupAccessKeyID", "backupSecretAccessKey", "backupToken", "backupGcpCredentialJSON", "backupBucketName",
        "backupRootPath", "backupUseSSL", "crossStorage",
    },
    "backup": {"parallelism", "keepTempFiles", "gcPause"},
}


@pytest.mark.parametrize("stack", STACKS)
def test_milvus_backup_config_points_at_the_stack(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    config = yaml.safe_load(rendered.find("Secret", "milvus-backup-config")["stringData"]["backup.yaml"])
    for section, keys in config.items():
        assert section in MILVUS_BACKUP_KEYS, section
        assert set(keys) <= MILVUS_BACKUP_KEYS[section], section
    namespace = rendered.find("CronJob", "milvus-backup")["metadata"]["namespace"]
    minio = rendered.find("Secret", "minio-credentials")["stringData"]
    storage = rendered.find("Secret", "backup-storage-credentials")["stringData"]
    assert config["milvus"]["address"] == f"milvus.{namespace}.svc.cluster.local" and config["milvus"]["port"] == 19530
    assert (config["minio"]["address"], config["minio"]["port"]) == (f"milvus-minio.{namespace}.svc.cluster.local", 9000)
    assert (config["minio"]["accessKeyID"], config["minio"]["secretAccessKey"]) == (minio["root-user"], minio["root-password"])
    user_yaml = yaml.safe_load(rendered.find("Secret", "milvus-user-config")["stringData"]["user.yaml"])
    assert config["minio"]["bucketName"] == user_yaml["minio"]["bucketName"]
    assert config["minio"]["backupAddress"] == f"backup-minio.{namespace}.svc.cluster.local"
    assert (config["minio"]["backupAccessKeyID"], config["minio"]["backupSecretAccessKey"]) == (storage["root-user"], storage["root-password"])
    assert config["minio"]["backupBucketName"] == "milvus-backup" and config["minio"]["backupUseSSL"] is True
    assert config["minio"]["backupRootPath"] == f"{stack}/milvus"
    cron = rendered.find("CronJob", "milvus-backup")
    assert _job_container(cron)["command"][:2] == ["milvus-backup", "create"]
    assert cron["spec"]["schedule"] == _backups(stack)["milvus"]["schedule"]


def test_bucket_init_creates_the_buckets_the_repositories_use(rendered_stacks):
    rendered = rendered_stacks["prod"]
    command = _job_container(rendered.find("Job", "backup-storage-init"))["command"]
    assert command[:3] == ["mc", "mb", "--ignore-existing"]
    config = yaml.safe_load(rendered.find("Secret", "milvus-backup-config")["stringData"]["backup.yaml"])
    assert set(command[3:]) == {f"backup/{_options(_conf(rendered, 'pg-host'))['repo1-s3-bucket']}", f"backup/{config['minio']['backupBucketName']}"}


@pytest.mark.parametrize("stack", STACKS)
def test_recovery_templates_are_suspended_and_restore_the_right_volumes(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    postgres = rendered.find("CronJob", "postgres-restore")
    redis = rendered.find("CronJob", "redis-restore")
    for cron in (postgres, redis):
        assert cron["spec"]["suspend"] is True and cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    pg = _job_container(postgres)
    assert pg["command"] == ["/opt/backup/pg-restore.sh", "--pgdata", "/var/lib/postgresql/data/pgdata", "--target", "$(RESTORE_TARGET)"]
    assert env_value(pg, "RESTORE_TARGET")["valueFrom"]["configMapKeyRef"] == {"name": "postgres-restore-target", "key": "target"}
    assert rendered.find("ConfigMap", "postgres-restore-target")["data"] == {"target": "latest"}
    volumes = {v["name"]: v for v in pod_spec(postgres)["volumes"]}
    sts = rendered.find("StatefulSet", "postgres")
    claim = f"{sts['spec']['volumeClaimTemplates'][0]['metadata']['name']}-{sts['metadata']['name']}-0"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim
    rd = _job_container(redis)
    assert rd["command"] == ["/opt/backup/redis-restore.sh", "$(RESTORE_SOURCE)", "/data"]
    redis_volumes = {v["name"]: v for v in pod_spec(redis)["volumes"]}
    assert redis_volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-redis-0"
    assert redis_volumes["backups"]["persistentVolumeClaim"]["claimName"] == "redis-backups"
    for script in ("k8s-recover-postgres.sh", "k8s-recover-redis.sh"):
        text = (SCRIPTS_SOURCE / script).read_text()
        assert "--from=cronjob/" + ("postgres-restore" if "postgres" in script else "redis-restore") in text


def test_backup_store_serves_only_https_with_the_backup_certificate(rendered_stacks):
    sts = rendered_stacks["prod"].find("StatefulSet", "backup-minio")
    minio = _job_container(sts)
    assert minio["args"][-2:] == ["--certs-dir", "/etc/minio/certs"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert minio[probe]["httpGet"]["scheme"] == "HTTPS"
    certs = {v["name"]: v for v in pod_spec(sts)["volumes"]}["certs"]["secret"]
    assert certs["secretName"] == "backup-tls"
    assert [i["key"] for i in certs["items"]] == ["public.crt", "private.key"]
    assert _options(_conf(rendered_stacks["prod"], "pg-host"))["repo1-storage-ca-file"] == "/etc/pgbackrest/tls/ca.crt"
