"""The backup wiring each stack renders: our checks against the operator's repositories, Redis and Milvus
backups, and configs that the real tools accept (pgBackRest parses the checks' pgbackrest.conf here)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components import pgbackrest
from components.backups import POSTGRES_UID, SCRIPTS_SOURCE, scripts as scripts_
from components.postgres import REPO_HOST_PODS, repo1_claim_name
from tests.harness import STACKS, containers, decoded_config, env_value, pod_spec

CRON_JOBS = {
    "postgres-backup-verify": ("postgres", "verifySchedule"),
    "postgres-restore-drill": ("postgres", "restoreDrillSchedule"),
    "redis-backup": ("redis", "schedule"),
    "milvus-backup": ("milvus", "schedule"),
}


def _backups(stack):
    return decoded_config(stack)["real-estate-ai:backups"]


def _options(conf: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in conf.splitlines() if "=" in line)


def _job_container(obj):
    (container,) = containers(obj)
    return container


def pod_labels_of(rendered, kind, name):
    return rendered.find(kind, name)["spec"]["selector"]["matchLabels"]


def _check_conf(rendered, job: str) -> str:
    return rendered.find("ConfigMap", f"{job}-pgbackrest")["data"]["pgbackrest.conf"]


@pytest.mark.parametrize("stack", STACKS)
def test_cron_jobs_follow_the_stack_schedules(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    for name, (section, key) in CRON_JOBS.items():
        cron = rendered.find("CronJob", name)["spec"]
        assert cron["schedule"] == config[section][key], name
        assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"] == "Etc/UTC"
        assert cron["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Backups themselves are the operator's: no CronJob of ours takes one.
    names = {o["metadata"]["name"] for o in rendered.objects if o["kind"] in ("CronJob", "Job")}
    assert not {"postgres-backup-full", "postgres-backup-incremental", "postgres-backup-init", "postgres-restore"} & names


@pytest.mark.parametrize("stack", STACKS)
def test_checks_read_repo1_read_only_beside_the_repository_host(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    repos = "1 2" if config["offsite"]["enabled"] else "1"
    for job in ("postgres-backup-verify", "postgres-restore-drill"):
        cron = rendered.find("CronJob", job)
        pod = pod_spec(cron)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["repo1"]["persistentVolumeClaim"] == {"claimName": repo1_claim_name(), "readOnly": True}
        container = _job_container(cron)
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        # The claim's root is the repository: the operator mounts it at /pgbackrest/repo1 and sets repo1-path there.
        assert mounts["repo1"] == {"name": "repo1", "mountPath": "/pgbackrest/repo1", "readOnly": True}
        # pgbackrest.conf arrives as a directory (no subPath), so a changed ConfigMap reaches the next run.
        assert "subPath" not in mounts["pgbackrest-config"] and mounts["pgbackrest-config"]["mountPath"] == "/etc/pgbackrest"
        (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["labelSelector"]["matchLabels"] == REPO_HOST_PODS and term["topologyKey"] == "kubernetes.io/hostname"
        assert pod["securityContext"]["runAsUser"] == POSTGRES_UID == container["securityContext"]["runAsUser"]
        cluster_image = rendered.find("PerconaPGCluster", "postgres")["spec"]["image"]
        assert container["image"] == cluster_image
        assert env_value(container, "PGBACKREST_STANZA")["value"] == pgbackrest.STANZA
        sources = volumes["pgbackrest-config"]["projected"]["sources"]
        assert any("secret" in source for source in sources) is config["offsite"]["enabled"]
    verify = _job_container(rendered.find("CronJob", "postgres-backup-verify"))
    assert verify["command"] == ["/opt/backup/pg-verify.sh"] and env_value(verify, "BACKUP_REPOS")["value"] == repos
    drill = rendered.find("CronJob", "postgres-restore-drill")
    scratch = {v["name"]: v for v in pod_spec(drill)["volumes"]}["drill"]
    # A volume sized for the database, not the node's disk.
    claim = scratch["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == config["postgres"]["drillStorage"]["size"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_offsite_repository_is_drilled_on_its_own_where_there_is_one(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    drills = {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == "CronJob" and "restore-drill" in o["metadata"]["name"]}
    assert env_value(_job_container(drills["postgres-restore-drill"]), "BACKUP_REPO")["value"] == "1"
    if not config["offsite"]["enabled"]:
        assert set(drills) == {"postgres-restore-drill"}
        return
    offsite = drills["postgres-restore-drill-offsite"]
    assert offsite["spec"]["schedule"] == config["postgres"].get("offsiteDrillSchedule", "45 6 1 * *")
    container = _job_container(offsite)
    assert env_value(container, "BACKUP_REPO")["value"] == "2" and container["command"] == ["/opt/backup/pg-restore-drill.sh"]
    # The same pod name: the off-site egress and repository rules of the drill apply to it.
    assert pod_spec(offsite) and offsite["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/name"] == "pg-restore-drill"


@pytest.mark.parametrize("stack", STACKS)
def test_checks_use_the_clusters_pgbackrest_options(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    cluster_options = rendered.find("PerconaPGCluster", "postgres")["spec"]["backups"]["pgbackrest"]["global"]
    for job in ("pg-verify", "pg-restore-drill"):
        options = _options(_check_conf(rendered, job))
        assert {k: options[k] for k in cluster_options} == cluster_options
        assert options["repo1-path"] == "/pgbackrest/repo1"
        assert ("repo2-type" in options) is _backups(stack)["offsite"]["enabled"]


@pytest.mark.parametrize("stack", STACKS)
def test_redis_backups_follow_the_stack(stack, rendered_stacks):
    rendered, config = rendered_stacks[stack], _backups(stack)
    cron = rendered.find("CronJob", "redis-backup")
    # Beside Redis, so the snapshot volume binds in Redis' zone and the restore (both volumes) can schedule.
    (term,) = pod_spec(cron)["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"] == pod_labels_of(rendered, "StatefulSet", "redis")
    redis = _job_container(cron)
    assert env_value(redis, "RETENTION_DAYS")["value"] == str(config["redis"]["retentionDays"])
    claim = rendered.find("PersistentVolumeClaim", "redis-backups")["spec"]
    assert claim["resources"]["requests"]["storage"] == config["redis"]["storage"]["size"]


@pytest.mark.parametrize("stack", STACKS)
def test_jobs_run_the_scripts_from_the_repository(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    scripts = rendered.find("ConfigMap", "backup-scripts")["data"]
    assert set(scripts) >= {"pg-verify.sh", "pg-restore-drill.sh", "pg-restore.sh", "pg_archive.py"}
    assert scripts == {p.name: p.read_text() for p in scripts_()}
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
    (tmp_path / "conf.d" / pgbackrest.OFFSITE_CONFIG_FILE).write_text(pgbackrest.offsite_credentials("k", "s", "c" * 40))
    result = subprocess.run(
        ["pgbackrest", f"--config={path}", f"--config-include-path={tmp_path / 'conf.d'}", f"--stanza={pgbackrest.STANZA}",
         "--io-timeout=1", "--log-level-console=warn", "--lock-path", str(tmp_path), "info"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("job", ["pg-verify", "pg-restore-drill"])
def test_pgbackrest_accepts_every_rendered_option(stack, job, rendered_stacks, tmp_path):
    output = _pgbackrest_parse(_check_conf(rendered_stacks[stack], job), tmp_path)
    assert "invalid option" not in output and "option '" not in output, output
    assert f"stanza: {pgbackrest.STANZA}" in output  # it got as far as asking the repository


def test_pgbackrest_parse_check_catches_a_bad_option(rendered_stacks, tmp_path):
    conf = _check_conf(rendered_stacks["prod"], "pg-verify").replace("repo1-retention-full-type=", "repo1-retention-kind=")
    assert "invalid option 'repo1-retention-kind'" in _pgbackrest_parse(conf, tmp_path)


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
    backup_store = json.loads(rendered.find("Secret", "backup-s3-credentials")["stringData"]["s3.json"])["identities"][0]["credentials"][0]
    assert config["milvus"]["address"] == f"milvus.{namespace}.svc.cluster.local" and config["milvus"]["port"] == 19530
    # The backup reads Milvus' data where Milvus keeps it, with Milvus' own credentials.
    user_yaml = yaml.safe_load(rendered.find("Secret", "milvus-user-config")["stringData"]["user.yaml"])["minio"]
    source = {k: config["minio"][k] for k in ("address", "port", "accessKeyID", "secretAccessKey", "useSSL", "bucketName", "region")}
    assert source == {k: user_yaml[k] for k in source}
    external = decoded_config(stack)["real-estate-ai:milvus"].get("externalS3")
    if external:
        assert (source["address"], source["port"], source["useSSL"]) == (external["endpoint"], 443, True)
    else:
        assert (source["address"], source["port"]) == (f"milvus-s3.{namespace}.svc.cluster.local", 8333)
        milvus_store = json.loads(rendered.find("Secret", "milvus-s3-credentials")["stringData"]["s3.json"])["identities"][0]["credentials"][0]
        assert (source["accessKeyID"], source["secretAccessKey"]) == (milvus_store["accessKey"], milvus_store["secretKey"])
    assert (config["minio"]["backupAddress"], config["minio"]["backupPort"]) == (f"backup-s3.{namespace}.svc.cluster.local", 8333)
    assert (config["minio"]["backupAccessKeyID"], config["minio"]["backupSecretAccessKey"]) == (backup_store["accessKey"], backup_store["secretKey"])
    assert config["minio"]["backupBucketName"] == "milvus-backup" and config["minio"]["backupUseSSL"] is True
    assert config["minio"]["backupRootPath"] == f"{stack}/milvus"
    cron = rendered.find("CronJob", "milvus-backup")
    container = _job_container(cron)
    # The image's binary is /app/milvus-backup (not on PATH; its entrypoint runs `server`): our script calls it by path.
    assert container["command"] == ["/opt/backup/milvus-backup.sh", "create"]
    assert env_value(container, "MILVUS_BACKUP")["value"] == "/app/milvus-backup"
    assert env_value(container, "RETENTION_DAYS")["value"] == str(_backups(stack)["milvus"]["retentionDays"])
    assert cron["spec"]["schedule"] == _backups(stack)["milvus"]["schedule"]


@pytest.mark.parametrize("stack", STACKS)
def test_milvus_restore_template_takes_the_backup_name_from_a_config_map(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    restore = rendered.find("CronJob", "milvus-restore")
    assert restore["spec"]["suspend"] is True
    container = _job_container(restore)
    assert container["command"] == ["/opt/backup/milvus-backup.sh", "restore", "$(RESTORE_NAME)"]
    assert env_value(container, "RESTORE_NAME")["valueFrom"]["configMapKeyRef"] == {"name": "milvus-restore-source", "key": "name"}
    assert "--from=cronjob/milvus-restore" in (SCRIPTS_SOURCE / "k8s-recover-milvus.sh").read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_redis_recovery_template_is_suspended_and_restores_the_right_volumes(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    redis = rendered.find("CronJob", "redis-restore")
    assert redis["spec"]["suspend"] is True and redis["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    rd = _job_container(redis)
    assert rd["command"] == ["/opt/backup/redis-restore.sh", "$(RESTORE_SOURCE)", "/data"]
    redis_volumes = {v["name"]: v for v in pod_spec(redis)["volumes"]}
    assert redis_volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-redis-0"
    assert redis_volumes["backups"]["persistentVolumeClaim"]["claimName"] == "redis-backups"
    assert "--from=cronjob/redis-restore" in (SCRIPTS_SOURCE / "k8s-recover-redis.sh").read_text()


def test_backup_store_serves_only_https_with_the_backup_certificate(rendered_stacks):
    sts = rendered_stacks["prod"].find("StatefulSet", "backup-s3")
    store = _job_container(sts)
    assert "-s3.cert.file=/etc/seaweedfs-tls/tls.crt" in store["command"] and "-s3.key.file=/etc/seaweedfs-tls/tls.key" in store["command"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert store[probe]["httpGet"]["scheme"] == "HTTPS"
    certs = {v["name"]: v for v in pod_spec(sts)["volumes"]}["certs"]["secret"]
    assert certs["secretName"] == "backup-tls"
    assert [i["key"] for i in certs["items"]] == ["tls.crt", "tls.key"]
    milvus_backup = rendered_stacks["prod"].find("CronJob", "milvus-backup")
    assert env_value(_job_container(milvus_backup), "SSL_CERT_FILE")["value"] == "/etc/backup-tls/ca.crt"
