"""PostgreSQL settings at their edges: role, region, bucket and path patterns with the longest valid and shortest
invalid values, every bound on both sides, every default (a flipped default changes every stack that omits the key),
and each rule with its exact message."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from settings.postgres import (
    RESERVED_ROLES,
    Bucket,
    OffsiteSettings,
    PatroniSettings,
    PgBouncerSettings,
    PostgresBackupSettings,
    PostgresSettings,
    Region,
    RepoPath,
    RestoreFromSettings,
    StandbySettings,
    RoleName,
)
from tests.test_values import accepts, errors, message


@pytest.mark.parametrize("value,ok", [
    ("a" + "b" * 30, True), ("a" + "b" * 31, False), ("a", True), ("az", True), ("a9", True),
    ("9a", False), ("_a", False), ("aB", False), ("a_b", False), ("a-b", False),
])
def test_role_names(value, ok):
    assert accepts(RoleName, value) is ok


# ccp_monitoring cannot be asked for anyway: the pattern refuses its underscore first.
@pytest.mark.parametrize("role", sorted(RESERVED_ROLES - {"ccp_monitoring"}))
def test_reserved_roles_are_refused_by_name(role):
    assert message(RoleName, role) == (
        f"Value error, '{role}' is a role the operator reserves (the superuser or its own); choose the API's own name")


def test_the_reserved_roles():
    assert RESERVED_ROLES == {"postgres", "monitor", "pgbouncer", "replicator", "ccp_monitoring", "metrics"}


@pytest.mark.parametrize("value,ok", [
    ("us-east-1", True), ("z", True), ("9", True), ("a-z", True), ("a-9", True), ("a-b-c-d-e-f", True),
    ("a-b-c-d-e-f-g", False), ("-a", False), ("a-", False), ("a--b", False), ("A", False), ("", False),
])
def test_regions(value, ok):
    assert accepts(Region, value) is ok


@pytest.mark.parametrize("value,ok", [
    ("abc", True), ("ab", False), ("a" * 63, True), ("a" * 64, False), ("9bc", True), ("zbc", True),
    ("a9a", True), ("aza", True), ("a.-a", True), ("ab9", True), ("abz", True), ("a.b", True),
    ("a..b", False), ("-ab", False), ("ab-", False), ("aBc", False), ("a_b", False),
])
def test_bucket_names(value, ok):
    assert accepts(Bucket, value) is ok


def test_bucket_message():
    assert message(Bucket, "a..b") == (
        "Value error, 'a..b' is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-', not an IP address)")
    # S3 refuses a name in an IP address's form.
    assert message(Bucket, "192.168.5.4").startswith("Value error, '192.168.5.4' is not an S3 bucket name")
    assert accepts(Bucket, "192.168.5.4.backups")


@pytest.mark.parametrize("value,reserved", [
    ("xn--backups", "xn--"), ("sthree-backups", "sthree-"), ("amzn-s3-demo-backups", "amzn-s3-demo-"),
    ("backups-s3alias", "-s3alias"), ("backups--ol-s3", "--ol-s3"), ("backups.mrap", ".mrap"), ("backups--x-s3", "--x-s3"),
    ("backups--table-s3", "--table-s3"),
])
def test_bucket_names_s3_keeps_for_itself(value, reserved):
    assert message(Bucket, value) == f"Value error, {value!r} is not an S3 bucket name: S3 reserves names with {reserved!r} there"


@pytest.mark.parametrize("value", ["xn-backups", "backups-xn--a", "sthree", "my-sthree-backups", "backups-s3alias-2",
                                   "backups-ol-s3", "mrap.backups", "amzn-s3-backups"])
def test_bucket_names_near_the_reserved_ones_are_taken(value):
    assert accepts(Bucket, value)


@pytest.mark.parametrize("value,ok", [
    ("/pgbackrest", True), ("/A", True), ("/z", True), ("/9", True), ("/a._-b", True), ("/" + "a" * 64, True),
    ("/" + "a" * 65, False), ("/a" * 16, True), ("/a" * 17, False), ("/a/.b", True), ("/a/..b", True),
    ("/a/../b", False), ("/a/..", False), ("/./a", False), ("/a/.", False), ("/..", False),
    ("a", False), ("/a/", False), ("//a", False), ("/a b", False), ("", False),
])
def test_repository_paths(value, ok):
    assert accepts(RepoPath, value) is ok


def test_repository_path_message():
    assert message(RepoPath, "/a/../b") == (
        "Value error, '/a/../b' is not an absolute path like '/pgbackrest/prod' (letters, digits, '.', '_', '-')")


def test_defaults_are_the_documented_ones():
    assert PostgresSettings().model_dump() == {
        "operator": {"install": True, "namespace": None, "chart_version": "3.0.0"},
        "image": "docker.io/percona/percona-distribution-postgresql:17.10-1",
        "backup_image": "docker.io/percona/percona-pgbackrest:2.58.0-2",
        "version": 17, "instances": 1, "database": "real_estate", "user": "realestate",
        "storage": {"size": "10Gi", "storage_class": None},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "max_connections": 200, "zone_spread": "preferred",
        "patroni": {"leader_lease_duration_seconds": 15, "sync_period_seconds": 5, "synchronous": False,
                    "maximum_lag_on_failover": "1Mi"},
        "pgbouncer": {"enabled": False, "replicas": 2, "image": "docker.io/percona/percona-pgbouncer:1.25.2-1",
                      "pool_mode": "transaction", "default_pool_size": 20, "max_client_conn": 1000,
                      "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}},
        "exporter_image": "quay.io/prometheuscommunity/postgres-exporter:v0.20.1",
        "restore_from": None, "standby": None,
    }
    assert OffsiteSettings().model_dump() == {
        "enabled": False, "endpoint": None, "bucket": None, "region": "us-east-1", "path": "/pgbackrest",
        "uri_style": "host", "cidrs": []}
    assert PostgresBackupSettings().model_dump() == {
        "full_schedule": "0 1 * * *", "incremental_schedule": "30 0,2,4-23 * * *", "offsite_full_schedule": "0 3 * * *",
        "verify_schedule": "15 5 * * *", "restore_drill_schedule": "45 5 * * 0", "offsite_drill_schedule": "45 6 1 * *",
        "full_retention_days": 30, "archive_timeout_seconds": 60, "full_backup_window_minutes": 60,
        "archive_push_queue_max": "4Gi", "repository_storage": {"size": "50Gi", "storage_class": None},
        "repository_resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "drill_storage": {"size": "20Gi", "storage_class": None}, "drill_min_tables": 1,
    }


@pytest.mark.parametrize("model,field,low_ok,low_bad,high_ok,high_bad", [
    (PostgresSettings, "instances", 1, 0, 9, 10),
    (PostgresSettings, "max_connections", 25, 24, 5000, 5001),
    (PgBouncerSettings, "replicas", 1, 0, 20, 21),
    (PgBouncerSettings, "default_pool_size", 1, 0, 1000, 1001),
    (PgBouncerSettings, "max_client_conn", 10, 9, 100000, 100001),
    (PostgresBackupSettings, "full_retention_days", 1, 0, 3650, 3651),
    (PostgresBackupSettings, "archive_timeout_seconds", 10, 9, 60, 61),
    (PostgresBackupSettings, "full_backup_window_minutes", 1, 0, 720, 721),
    (PostgresBackupSettings, "drill_min_tables", 0, -1, 100000, 100001),
])
def test_bounds_on_both_sides(model, field, low_ok, low_bad, high_ok, high_bad):
    for value in (low_ok, high_ok):
        assert getattr(model(**{field: value}), field) == value
    for value, word in ((low_bad, "greater than or equal to"), (high_bad, "less than or equal to")):
        assert word in errors(model, **{field: value})[0]


@pytest.mark.parametrize("version,image", [
    (15, "docker.io/percona/percona-distribution-postgresql:15.14-1"),
    (18, "docker.io/percona/percona-distribution-postgresql:18.1-1"),
])
def test_versions_at_both_ends(version, image):
    assert PostgresSettings(version=version, image=image).version == version


@pytest.mark.parametrize("version", [14, 19])
def test_versions_outside_are_refused(version):
    assert errors(PostgresSettings, version=version, image=f"docker.io/library/postgres:{version}")[0].startswith(
        "Input should be")


def test_the_image_must_be_the_version():
    assert errors(PostgresSettings, version=16) == [
        "Value error, image docker.io/percona/percona-distribution-postgresql:17.10-1 is not PostgreSQL 16; "
        "set version to the image's major version"]
    assert PostgresSettings(version=16, image="docker.io/library/postgres:16-alpine").version == 16
    assert errors(PostgresSettings, version=16, image="docker.io/library/postgres:17-alpine")
    # A tag that does not start with the version cannot be judged; a digest carries no tag at all.
    assert PostgresSettings(version=16, image="registry.example.com/pg:v17").version == 16
    assert PostgresSettings(version=16, image="registry.example.com/pg@sha256:" + "a" * 64).version == 16


def test_patroni_lease_and_retries():
    assert PatroniSettings().retry_timeout_seconds == 5
    assert PatroniSettings(leader_lease_duration_seconds=8, sync_period_seconds=1).retry_timeout_seconds == 3
    assert PatroniSettings(leader_lease_duration_seconds=300, sync_period_seconds=60).retry_timeout_seconds == 120
    assert PatroniSettings(leader_lease_duration_seconds=14, sync_period_seconds=10).retry_timeout_seconds == 2
    assert PatroniSettings(leader_lease_duration_seconds=15, sync_period_seconds=10).retry_timeout_seconds == 2
    assert errors(PatroniSettings, leader_lease_duration_seconds=13, sync_period_seconds=10) == [
        "Value error, leaderLeaseDurationSeconds 13 must be at least syncPeriodSeconds 10 + 4, so a member can retry "
        "the consensus store before its lease expires"]
    for field, value in (("leader_lease_duration_seconds", 7), ("leader_lease_duration_seconds", 301),
                         ("sync_period_seconds", 0), ("sync_period_seconds", 61)):
        assert errors(PatroniSettings, **{field: value, **({"leader_lease_duration_seconds": 300} if field == "sync_period_seconds" else {})})


def test_restore_target_is_a_past_time_with_its_offset():
    for target in ("2026-11-28 10:15:00+00", "2026-11-28 10:15:00+0000", "2026-11-28 10:15:00-05:30"):
        assert RestoreFromSettings(path="/pgbackrest/prod", target=target).target == target
    assert RestoreFromSettings(path="/pgbackrest/prod").target is None
    for target in ("2026-11-28 10:15:00", "2026-11-28T10:15:00+00", "26-11-28 10:15:00+00", "2026-11-28 10:15+00"):
        assert errors(RestoreFromSettings, path="/p", target=target) == [
            f"Value error, '{target}' is not a time with its offset like '2026-11-28 10:15:00+00'"]
    assert errors(RestoreFromSettings, path="/p", target="2026-13-01 00:00:00+00") == [
        "Value error, '2026-13-01 00:00:00+00' is not a valid time"]
    assert errors(RestoreFromSettings, path="/p", target="2999-01-01 00:00:00+00") == [
        "Value error, '2999-01-01 00:00:00+00' is in the future"]


def test_an_enabled_offsite_repository_needs_endpoint_and_bucket():
    complete = OffsiteSettings(enabled=True, endpoint="s3.example.com", bucket="backups")
    assert (complete.enabled, complete.endpoint, complete.bucket) == (True, "s3.example.com", "backups")
    need = ["Value error, an enabled off-site repository needs endpoint and bucket"]
    assert errors(OffsiteSettings, enabled=True) == need
    assert errors(OffsiteSettings, enabled=True, endpoint="s3.example.com") == need
    assert errors(OffsiteSettings, enabled=True, bucket="backups") == need
    assert OffsiteSettings(endpoint="s3.example.com").enabled is False
    assert len(OffsiteSettings(cidrs=["203.0.113.0/24"] * 32).cidrs) == 32
    assert errors(OffsiteSettings, cidrs=["203.0.113.0/24"] * 33)


def test_the_archive_queue_holds_a_handful_of_segments():
    assert PostgresBackupSettings(archive_push_queue_max="64Mi").archive_push_queue_max == "64Mi"
    assert errors(PostgresBackupSettings, archive_push_queue_max=str(64 * 2**20 - 1)) == [
        "Value error, archivePushQueueMax 67108863 is below 64Mi, a handful of WAL segments"]


def test_role_adapter_names_the_shape():
    assert message(RoleName, "9a") == (
        "Value error, '9a' is not a role name: a lower-case letter, then lower-case letters and digits, at most 31")
    assert TypeAdapter(RoleName).validate_python("realestate") == "realestate"


def test_a_standby_streams_from_a_real_port_of_an_address_or_a_name():
    assert StandbySettings().model_dump() == {"enabled": True, "host": None, "port": 5432}
    for port in (1024, 65535):
        assert StandbySettings(host="10.1.2.3", port=port).port == port
    for port in (1023, 65536):
        assert errors(StandbySettings, host="db.example.com", port=port)
    assert errors(StandbySettings, host="db") == [
        "Value error, 'db' is neither an IP address nor a fully qualified host name like 'db.example.com'"]


@pytest.mark.parametrize("model,field,choices", [
    ("PgBouncerSettings", "pool_mode", ["transaction", "session"]),
    ("PostgresSettings", "zone_spread", ["required", "preferred"]),
    ("OffsiteSettings", "uri_style", ["host", "path"]),
])
def test_every_choice_is_taken_and_its_near_misses_are_not(model, field, choices):
    import settings.postgres as postgres

    kind = getattr(postgres, model)
    for choice in choices:
        assert getattr(kind(**{field: choice}), field) == choice
        for near_miss in (choice.upper(), choice + "x"):
            assert errors(kind, **{field: near_miss})[0].startswith("Input should be "), near_miss


def test_only_an_operator_release_with_vendored_crds_is_taken():
    from settings.postgres import OPERATOR_VERSION, OperatorSettings

    assert OperatorSettings(chart_version=OPERATOR_VERSION).chart_version == "3.0.0"
    assert errors(OperatorSettings, chart_version="3.1.0")[0].startswith(
        "Value error, '3.1.0': no CRDs vendored for this operator release; add the release's config/crd/bases CRDs as ")
