"""PostgreSQL as a PerconaPGCluster: each stack's cluster against the operator's own CRD schema, and the
invariants the platform promises (failover, synchronous commits, backups, connection budget)."""

import copy
from pathlib import Path

import pytest

from components import pgbackrest
from components.postgres_operator import crds
from components.postgres import (
    INSTANCE_PODS,
    OFFSITE_SECRET,
    Postgres,
    PostgresArgs,
    parameters,
    patroni_dcs,
    user_secret_name,
)
from settings.postgres import OperatorSettings
from settings import BackupSettings, OffsiteSettings, PatroniSettings, PgBouncerSettings, PostgresSettings, byte_count, cron
from tests.crd_schemas import errors
from tests.harness import STACKS, containers, decoded_config, encode_config, env_value, pod_spec, run_component, with_value
from tools.render import render

RELEASE = "kubernetes:helm.sh/v3:Release"
ROOT = Path(__file__).resolve().parents[1]


def _cluster(rendered):
    return rendered.find("PerconaPGCluster", "postgres")


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_matches_the_operators_crd(stack, rendered_stacks):
    assert errors(_cluster(rendered_stacks[stack])) == []


def test_crd_check_catches_a_misspelt_field_and_a_bad_value(rendered_stacks):
    cluster = copy.deepcopy(_cluster(rendered_stacks["prod"]))
    cluster["spec"]["instances"][0]["replica"] = 3
    cluster["spec"]["backups"]["pgbackrest"]["repos"][0]["name"] = "backup1"
    cluster["spec"]["postgresVersion"] = 19
    found = errors(cluster)
    assert any("'replica' was unexpected" in e for e in found)
    assert any(e.startswith("spec.backups.pgbackrest.repos.0.name:") for e in found)
    assert any(e.startswith("spec.postgresVersion:") for e in found)


def test_prod_fails_over_without_losing_commits(rendered_stacks):
    spec = _cluster(rendered_stacks["prod"])["spec"]
    (instances,) = spec["instances"]
    assert instances["replicas"] == 3 and instances["minAvailable"] == 2
    # Never two instances on one node; spread over zones, refusing to stack them.
    anti = instances["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname" and anti["labelSelector"]["matchLabels"] == INSTANCE_PODS
    (spread,) = instances["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == ("topology.kubernetes.io/zone", "DoNotSchedule", 1)
    patroni = spec["patroni"]
    assert (patroni["leaderLeaseDurationSeconds"], patroni["syncPeriodSeconds"]) == (15, 5)
    dynamic = patroni["dynamicConfiguration"]
    assert dynamic["synchronous_mode"] is True and dynamic["synchronous_node_count"] == 1
    # Patroni's rule: loop_wait + 2 * retry_timeout <= ttl.
    assert patroni["syncPeriodSeconds"] + 2 * dynamic["retry_timeout"] <= patroni["leaderLeaseDurationSeconds"]
    assert "ttl" not in dynamic and "loop_wait" not in dynamic


@pytest.mark.parametrize("stack", STACKS)
def test_every_instance_wakes_its_checkpointer_after_a_start(stack, rendered_stacks):
    """tests/backup/test_rpo_after_restart.py runs the script against real PostgreSQL; here, the operator gets it
    as an instance sidecar that reaches the server the way the operator lets it: socket, user and image."""
    spec = _cluster(rendered_stacks[stack])["spec"]
    (sidecar,) = spec["instances"][0]["sidecars"]
    assert sidecar["name"] == "checkpoint-after-start" and sidecar["image"] == spec["image"]
    assert sidecar["command"][:2] == ["bash", "-c"]
    assert sidecar["command"][2] == (ROOT / "ops" / "postgres" / "checkpoint-after-start.sh").read_text()
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env == {"PGHOST": "/tmp/postgres", "PGPORT": "5432", "PGUSER": "postgres", "PGCONNECT_TIMEOUT": "5"}
    security = sidecar["securityContext"]
    assert security["runAsUser"] == 26 and security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["resources"]["limits"] and sidecar["resources"]["requests"]


def test_dev_is_one_instance_straight_to_the_primary(rendered_stacks):
    rendered = rendered_stacks["dev"]
    spec = _cluster(rendered)["spec"]
    assert spec["instances"][0]["replicas"] == 1 and "minAvailable" not in spec["instances"][0]
    assert "proxy" not in spec and spec["patroni"]["dynamicConfiguration"]["synchronous_mode"] is False
    (api,) = containers(rendered.find("Deployment", "api"))
    assert env_value(api, "DATABASE_URL")["valueFrom"]["secretKeyRef"] == {"name": user_secret_name("realestate"), "key": "uri"}


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_the_api_connects_through_pgbouncer_as_its_own_role(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    spec = _cluster(rendered)["spec"]
    user, exporter = spec["users"]
    config = decoded_config(stack)["real-estate-ai:postgres"]
    # The exporter's role: no database, no role attributes; pg_monitor comes from the init SQL.
    assert exporter == {"name": "metrics"}
    assert user["name"] == "realestate" and user["databases"] == ["real_estate"]
    # A plain role: no role attributes granted (the operator creates it NOSUPERUSER).
    assert "options" not in user
    bouncer = spec["proxy"]["pgBouncer"]
    assert bouncer["replicas"] == config["pgbouncer"]["replicas"]
    assert bouncer["config"]["global"]["pool_mode"] == "transaction"
    assert int(bouncer["config"]["global"]["max_prepared_statements"]) > 0
    (api,) = containers(rendered.find("Deployment", "api"))
    assert env_value(api, "DATABASE_URL")["valueFrom"]["secretKeyRef"] == {"name": "postgres-pguser-realestate", "key": "pgbouncer-uri"}
    assert env_value(api, "DATABASE_POOL_SIZE")["value"] == "10"
    # The connection budget: PgBouncer's server pools fit max_connections with room to spare.
    max_connections = int(spec["patroni"]["dynamicConfiguration"]["postgresql"]["parameters"]["max_connections"])
    assert bouncer["replicas"] * int(bouncer["config"]["global"]["default_pool_size"]) <= max_connections - 20


@pytest.mark.parametrize("stack", STACKS)
def test_backups_follow_the_stack(stack, rendered_stacks):
    spec = _cluster(rendered_stacks[stack])["spec"]["backups"]["pgbackrest"]
    config = decoded_config(stack)["real-estate-ai:backups"]
    pg = config["postgres"]
    repos = {r["name"]: r for r in spec["repos"]}
    assert repos["repo1"]["schedules"] == {"full": pg["fullSchedule"], "incremental": pg["incrementalSchedule"]}
    assert repos["repo1"]["volume"]["volumeClaimSpec"]["resources"]["requests"]["storage"] == pg["repositoryStorage"]["size"]
    options = spec["global"]
    assert options["repo1-retention-full-type"] == "time" and options["repo1-retention-full"] == str(pg["fullRetentionDays"])
    assert int(options["archive-push-queue-max"]) == byte_count(pg["archivePushQueueMax"])
    params = _cluster(rendered_stacks[stack])["spec"]["patroni"]["dynamicConfiguration"]["postgresql"]["parameters"]
    assert params["archive_timeout"] == f"{pg['archiveTimeoutSeconds']}s" and pg["archiveTimeoutSeconds"] <= 60
    if config["offsite"]["enabled"]:
        offsite = config["offsite"]
        assert repos["repo2"]["s3"] == {"bucket": offsite["bucket"], "endpoint": offsite["endpoint"], "region": offsite["region"]}
        assert repos["repo2"]["schedules"] == {"full": pg["offsiteFullSchedule"]}
        assert options["repo2-retention-full"] == str(pg["fullRetentionDays"]) and options["repo2-path"] == offsite["path"]
        assert options["repo2-cipher-type"] == "aes-256-cbc"
        assert spec["configuration"] == [{"secret": {"name": OFFSITE_SECRET}}]
    else:
        assert set(repos) == {"repo1"} and "configuration" not in spec
    # No two backups start in the same minute: pgBackRest would fail one of them.
    schedules = [s for r in spec["repos"] for s in r["schedules"].values()]
    for i, first in enumerate(schedules):
        for second in schedules[i + 1:]:
            assert not cron.collide(first, second), (first, second)


def test_prod_keeps_the_spec_retention_and_both_repositories(rendered_stacks):
    spec = _cluster(rendered_stacks["prod"])["spec"]["backups"]["pgbackrest"]
    assert {r["name"] for r in spec["repos"]} == {"repo1", "repo2"}
    assert int(spec["global"]["repo1-retention-full"]) >= 30 and int(spec["global"]["repo2-retention-full"]) >= 30
    # An unreachable repository can hold back at most this much WAL, well under the volume.
    storage = _cluster(rendered_stacks["prod"])["spec"]["instances"][0]["dataVolumeClaimSpec"]["resources"]["requests"]["storage"]
    assert 0 < int(spec["global"]["archive-push-queue-max"]) * 2 <= byte_count(storage)


@pytest.mark.parametrize("stack,protected", [("dev", False), ("test", True), ("prod", True)])
def test_the_cluster_is_protected_and_awaited(stack, protected, rendered_stacks):
    rendered = rendered_stacks[stack]
    registration = rendered.registration("PerconaPGCluster", "postgres")
    assert registration.protect is protected
    annotations = registration.inputs["metadata"]["annotations"]
    assert annotations["pulumi.com/waitFor"] == "jsonpath={.status.state}=ready"
    assert int(annotations["pulumi.com/timeoutSeconds"]) >= 600


@pytest.mark.parametrize("stack", STACKS)
def test_the_operator_is_installed_pinned_and_scoped(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    (release,) = [r for r in rendered.registrations if r.type == RELEASE and r.inputs["chart"] == "pg-operator"]
    assert release.inputs["version"] == "3.0.0"
    assert release.inputs["repositoryOpts"]["repo"] == "https://percona.github.io/percona-helm-charts/"
    namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"]
    assert release.inputs["values"]["watchNamespace"] == namespace
    # Named after the platform's namespace: stacks for two namespaces on one cluster never share (or clash on) one.
    assert release.inputs["namespace"] == f"{namespace}-pg-operator"
    assert release.inputs["name"] == f"pgo-{namespace}"
    # The cluster waits for the operator (and its CRDs).
    cluster = rendered.registration("PerconaPGCluster", "postgres")
    assert cluster.parent.endswith("Postgres::postgres")


CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"


@pytest.mark.parametrize("stack", STACKS)
def test_the_operators_crds_are_the_programs_upgraded_with_the_chart_and_never_deleted(stack, rendered_stacks):
    """Helm never upgrades a chart's crds/: the chart's are skipped and the release's own applied by the program."""
    rendered = rendered_stacks[stack]
    (release,) = [r for r in rendered.registrations if r.type == RELEASE and r.inputs["chart"] == "pg-operator"]
    assert release.inputs["skipCrds"] is True
    definitions = {r.inputs["metadata"]["name"]: r for r in rendered.registrations if r.type == CRD}
    vendored = crds("3.0.0")
    assert sorted(definitions) == sorted(d["metadata"]["name"] for d in vendored) == [
        "perconapgbackups.pgv2.percona.com", "perconapgclusters.pgv2.percona.com", "perconapgrestores.pgv2.percona.com",
        "perconapgupgrades.pgv2.percona.com"]
    for crd in vendored:
        registered = definitions[crd["metadata"]["name"]]
        assert registered.inputs["spec"] == crd["spec"]
        # Deleting a CRD deletes every cluster of its kind: never by Pulumi, and a destroy of a stack whose data is
        # protected (test, prod) stops at them.
        assert registered.retain_on_delete is True
        assert registered.protect is (stack != "dev")
        # Taking over the fields Helm created them with on a cluster that already has them.
        assert registered.inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_an_operator_release_without_vendored_crds_is_refused():
    with pytest.raises(ValueError, match=r"'3\.1\.0': no CRDs vendored for this operator release; add the release's "
                                         r"config/crd/bases CRDs as crds/percona-pg-operator-v3\.1\.0-crds\.yaml first"):
        OperatorSettings(chart_version="3.1.0")
    assert OperatorSettings(chart_version="3.0.0").chart_version == "3.0.0"


def test_a_cluster_that_already_runs_the_operator_installs_none():
    config = encode_config(with_value(decoded_config("dev"), "postgres.operator.install", False))
    rendered = render("dev", config)
    assert not [r for r in rendered.registrations if r.type == RELEASE and r.inputs["chart"] == "pg-operator"]
    assert not [r for r in rendered.registrations if r.type == CRD]
    assert sorted(o["metadata"]["name"] for o in rendered.objects if o["kind"] == "Namespace") == ["monitoring", "real-estate-dev"]
    assert rendered.find("PerconaPGCluster", "postgres")


def test_parameters_are_sized_to_the_instance():
    pg = PostgresSettings.model_validate({"resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                        "limits": {"cpu": "2", "memory": "4Gi"}}, "maxConnections": 200})
    params = parameters(pg, BackupSettings())
    assert params["shared_buffers"] == "1024MB" and params["effective_cache_size"] == "3072MB"
    assert params["maintenance_work_mem"] == "256MB" and params["max_connections"] == "200"
    # (4 GiB - 1 GiB) / 4 / 200 connections = 3.8 MiB, floored at 4 MB.
    assert params["work_mem"] == "4MB" and params["archive_timeout"] == "60s"


def test_patroni_timings_come_from_the_settings():
    dcs = patroni_dcs(PostgresSettings(patroni=PatroniSettings(leader_lease_duration_seconds=20, sync_period_seconds=4, synchronous=True)))
    assert dcs == {"ttl": 20, "loop_wait": 4, "retry_timeout": 8, "maximum_lag_on_failover": 2**20,
                   "synchronous_mode": True, "synchronous_node_count": 1}


def test_offsite_secret_holds_credentials_and_passphrase_and_nothing_can_add_a_line():
    text = pgbackrest.offsite_credentials("AKID", "s3cr3t", "c" * 40)
    assert text == f"[global]\nrepo2-s3-key=AKID\nrepo2-s3-key-secret=s3cr3t\nrepo2-cipher-pass={'c' * 40}\n"
    with pytest.raises(ValueError, match="would not be one line"):
        pgbackrest.offsite_credentials("AKID\nrepo2-storage-verify-tls=n", "s", "c" * 40)


def test_component_writes_the_offsite_secret_only_with_an_offsite_repository():
    backups = BackupSettings(offsite=OffsiteSettings(enabled=True, endpoint="s3.example.com", bucket="bkt"))
    pg = PostgresSettings(pgbouncer=PgBouncerSettings(enabled=True))
    rendered, component = run_component(lambda: Postgres("pg", PostgresArgs("estate", "test", pg, backups, True, "[global]\n")))
    secret = rendered.find("Secret", OFFSITE_SECRET)
    assert set(secret["stringData"]) == {pgbackrest.OFFSITE_CONFIG_FILE}
    assert component.uri_key == "pgbouncer-uri"
    rendered, component = run_component(lambda: Postgres("pg", PostgresArgs("estate", "test", PostgresSettings(), BackupSettings(), False)))
    assert not [o for o in rendered.objects if o["kind"] == "Secret"]
    assert component.uri_key == "uri"


def test_a_new_cluster_can_start_from_another_stacks_offsite_repository():
    config = with_value(decoded_config("prod"), "postgres.restoreFrom", {"path": "/prod-old", "target": "2026-11-28 10:15:00+00"})
    encoded = encode_config(config)
    encoded["real-estate-ai:backupOffsiteCipherPass"] = "p" * 40
    rendered = render("prod", encoded, secret_keys=["real-estate-ai:backupOffsiteCipherPass"])
    cluster = _cluster(rendered)
    assert errors(cluster) == []
    source = cluster["spec"]["dataSource"]["pgbackrest"]
    assert source["repo"] == {"name": "repo2", "s3": {"bucket": "real-estate-backups-prod", "endpoint": "s3.eu-central-1.example.com",
                                                      "region": "eu-central-1"}}
    assert source["global"]["repo2-path"] == "/prod-old" and source["global"]["repo2-cipher-type"] == "aes-256-cbc"
    # Quoted for the shell the operator runs pgbackrest in.
    assert source["options"] == ["--type=time", '--target="2026-11-28 10:15:00+00"']
    # The source's credentials and passphrase: the same Secret the new cluster writes its own backups with.
    assert source["configuration"] == [{"secret": {"name": OFFSITE_SECRET}}]
    assert "p" * 40 in rendered.find("Secret", OFFSITE_SECRET)["stringData"][pgbackrest.OFFSITE_CONFIG_FILE]
    assert "dataSource" not in _cluster(render("prod"))["spec"]


def _incidents(rendered) -> set[str]:
    return {rule.get("labels", {}).get("incident") for o in rendered.objects if o["kind"] == "PrometheusRule"
            for group in o["spec"]["groups"] for rule in group["rules"]}


def _standby_render(standby: dict):
    config = with_value(decoded_config("prod"), "postgres.standby", standby)
    encoded = encode_config(config)
    encoded["real-estate-ai:backupOffsiteCipherPass"] = "p" * 40
    return render("prod", encoded, secret_keys=["real-estate-ai:backupOffsiteCipherPass"])


def test_a_standby_follows_the_primarys_offsite_repository_and_streams_where_it_can():
    rendered = _standby_render({"host": "db.eu-west.example.com"})
    cluster = _cluster(rendered)
    assert errors(cluster) == []
    assert cluster["spec"]["standby"] == {"enabled": True, "repoName": "repo2", "host": "db.eu-west.example.com", "port": 5432}
    # repo2 is the primary's: the primary's stack verifies and drills it; this one has no backups until promoted.
    cron_jobs = {o["metadata"]["name"] for o in rendered.objects if o["kind"] == "CronJob"}
    assert not cron_jobs & {"postgres-backup-verify", "postgres-restore-drill", "postgres-restore-drill-offsite"}
    assert "redis-backup" in cron_jobs
    assert "MetricsSourceMissing-postgres-backups" not in _incidents(rendered)

    promoted = _standby_render({"enabled": False, "host": "db.eu-west.example.com"})
    assert _cluster(promoted)["spec"]["standby"]["enabled"] is False
    cron_jobs = {o["metadata"]["name"] for o in promoted.objects if o["kind"] == "CronJob"}
    assert {"postgres-backup-verify", "postgres-restore-drill", "postgres-restore-drill-offsite"} <= cron_jobs
    assert "MetricsSourceMissing-postgres-backups" in _incidents(promoted)
    # From the off-site repository alone, without streaming.
    assert _cluster(_standby_render({}))["spec"]["standby"] == {"enabled": True, "repoName": "repo2"}
    assert "standby" not in _cluster(render("prod"))["spec"]


def test_a_long_namespace_still_gets_a_valid_release_name():
    from components.postgres_operator import release_name

    long = "n" * 63
    assert len(release_name(long)) == 53 and release_name(long) != release_name("n" * 62)
    assert release_name("real-estate") == "pgo-real-estate"


@pytest.mark.parametrize("stack", STACKS)
def test_the_exporter_reads_the_primary_as_its_own_monitoring_role(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    spec = _cluster(rendered)["spec"]
    init = rendered.find("ConfigMap", spec["databaseInitSQL"]["name"])
    assert init["data"][spec["databaseInitSQL"]["key"]] == "GRANT pg_monitor TO metrics;\n"
    (exporter,) = containers(rendered.find("Deployment", "postgres-exporter"))
    assert exporter["image"].startswith("quay.io/prometheuscommunity/postgres-exporter:v")
    namespace = rendered.find("Deployment", "postgres-exporter")["metadata"]["namespace"]
    assert env_value(exporter, "DATA_SOURCE_URI")["value"] == f"postgres-primary.{namespace}.svc.cluster.local:5432/postgres?sslmode=require"
    assert env_value(exporter, "DATA_SOURCE_USER_FILE")["value"] == "/etc/postgres-exporter/user"
    assert env_value(exporter, "DATA_SOURCE_PASS_FILE")["value"] == "/etc/postgres-exporter/password"
    (volume,) = pod_spec(rendered.find("Deployment", "postgres-exporter"))["volumes"]
    assert volume["secret"]["secretName"] == "postgres-pguser-metrics"
    assert {i["key"] for i in volume["secret"]["items"]} == {"user", "password"}
    assert rendered.find("Service", "postgres-exporter")["spec"]["ports"][0]["port"] == 9187
