"""The PostgreSQL backup scripts in ops/backup, run for real against PostgreSQL and pgBackRest."""

import json
import time

import pytest


CHECKSUM = "SELECT md5(coalesce(string_agg(id::text || ':' || note, ',' ORDER BY id), '')) FROM ledger"


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _labels(cluster) -> dict[str, list[str]]:
    info = cluster.pgbackrest("info")
    labels = {"full": [], "incr": [], "diff": []}
    for line in info.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "backup:":
            labels[parts[0]].append(parts[2])
    return labels


def test_full_and_incremental_backups_archive_wal_and_verify(cluster):
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    full = cluster.backup("full")
    assert full.returncode == 0, full.stderr
    cluster.pg.psql("INSERT INTO ledger SELECT g, 'row ' || g FROM generate_series(1, 5000) g", "real_estate")
    incr = cluster.backup("incr")
    assert incr.returncode == 0, incr.stderr
    labels = _labels(cluster)
    assert len(labels["full"]) == 1 and len(labels["incr"]) == 1
    assert labels["incr"][0].startswith(labels["full"][0] + "_")
    assert "wal archive min/max" in cluster.pgbackrest("info")

    verify = cluster.script("pg-verify.sh")
    assert verify.returncode == 0, verify.stderr
    assert _json_lines(verify.stdout)[-1]["valid_backups"] == 2


def test_point_in_time_restore_returns_exactly_what_existed_then(cluster):
    db = "real_estate"
    cluster.pg.psql("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, note text NOT NULL)", db)
    cluster.pg.psql("INSERT INTO ledger SELECT g, 'step one ' || g FROM generate_series(100001, 101000) g", db)
    at_step_one = cluster.pg.psql(CHECKSUM, db)
    between = cluster.pg.psql("SELECT clock_timestamp()", db)
    time.sleep(1.5)
    cluster.pg.psql("UPDATE ledger SET note = note || ' changed' WHERE id % 2 = 0", db)
    cluster.pg.psql("DELETE FROM ledger WHERE id % 7 = 0", db)
    at_step_two = cluster.pg.psql(CHECKSUM, db)
    time.sleep(1.5)
    cluster.pg.psql("DROP TABLE ledger", db)  # the accident PITR exists for
    cluster.pg.psql("SELECT pg_switch_wal()")
    assert cluster.pgbackrest("check") is not None  # waits until the WAL segment is in the repository
    assert at_step_one != at_step_two

    pgdata = cluster.scratch("pitr") / "pgdata"
    restore = cluster.script("pg-restore.sh", "--pgdata", str(pgdata), "--target", between)
    assert restore.returncode == 0, restore.stderr
    assert _json_lines(restore.stdout)[-1]["target"] == between
    restored = cluster.start_restored(pgdata)
    try:
        assert restored.psql(CHECKSUM) == at_step_one
    finally:
        restored.stop()


def test_restore_to_latest_has_every_committed_transaction(cluster):
    db = "real_estate"
    cluster.pg.psql("CREATE TABLE IF NOT EXISTS latest_check (id int PRIMARY KEY)", db)
    cluster.pg.psql("INSERT INTO latest_check SELECT generate_series(1, 777)", db)
    cluster.pg.psql("SELECT pg_switch_wal()")
    cluster.pgbackrest("check")
    pgdata = cluster.scratch("latest") / "pgdata"
    assert cluster.script("pg-restore.sh", "--pgdata", str(pgdata)).returncode == 0
    restored = cluster.start_restored(pgdata)
    try:
        assert restored.psql("SELECT count(*) FROM latest_check") == "777"
    finally:
        restored.stop()


def test_restore_refuses_a_running_cluster_and_a_bad_target(cluster):
    running = cluster.script("pg-restore.sh", "--pgdata", str(cluster.pg.data))
    assert running.returncode == 1 and "stop PostgreSQL before restoring" in running.stderr
    bad = cluster.script("pg-restore.sh", "--pgdata", str(cluster.pg.base / "x"), "--target", "yesterday-ish")
    assert bad.returncode == 2 and "is not a timestamp" in bad.stderr


def test_restore_drill_restores_checks_and_leaves_the_repository_alone(cluster):
    cluster.pg.psql("CREATE TABLE IF NOT EXISTS drill_table (id int PRIMARY KEY)", "real_estate")
    assert cluster.backup("incr").returncode == 0
    archive_before = cluster.pgbackrest("info").split("wal archive min/max")[1].splitlines()[0]
    drill = cluster.script(
        "pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate", DRILL_MIN_TABLES="2"
    )
    assert drill.returncode == 0, drill.stderr
    report = _json_lines(drill.stdout)[-1]
    assert report["status"] == "ok" and report["step"] == "done" and report["tables"] >= 2
    assert report["estimated_rows"] >= 0
    archive_after = cluster.pgbackrest("info").split("wal archive min/max")[1].splitlines()[0]
    assert archive_after == archive_before
    assert not (cluster.pg.base / "drill" / "pgdata").exists()


def test_restore_drill_fails_when_the_application_database_is_missing(cluster):
    drill = cluster.script("pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill-missing")), DRILL_DATABASE="no_such_db")
    assert drill.returncode == 1
    assert "FAILED at step 'database'" in drill.stderr
    assert _json_lines(drill.stdout)[-1]["status"] == "failed"


def test_the_clusters_options_reach_the_repository(cluster):
    """Compression, bundling and retention are the stack's: what the cluster's repository host would write."""
    info = cluster.pgbackrest("info", "--output=json")
    import json as _json

    (stanza,) = _json.loads(info)
    assert stanza["name"] == "db" and stanza["status"]["message"] == "ok"
    assert any(cluster.repo.glob("archive/db/*/*/*.zst")), "WAL is not compressed with zst"
    assert any(cluster.repo.glob("backup/db/*/bundle/*")), "backup files are not bundled"


@pytest.mark.parametrize("target", ["backup file", "wal segment"])
def test_corruption_is_reported_by_verify_and_by_the_drill(fresh_cluster, target):
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 20000) g", "real_estate")
    assert cluster.backup("full").returncode == 0
    if target == "backup file":
        # Bundled: the data files of the backup live in a few large bundle files.
        victims = sorted((p for p in (cluster.repo / "backup").rglob("bundle/*") if p.stat().st_size > 4096), key=lambda p: p.stat().st_size)
    else:
        victims = sorted(p for p in (cluster.repo / "archive").rglob("*.zst") if p.stat().st_size > 4096)
    victim = victims[-1]
    data = bytearray(victim.read_bytes())
    for offset in range(200, min(len(data), 2200), 97):
        data[offset] ^= 0xFF
    victim.write_bytes(bytes(data))

    verify = cluster.script("pg-verify.sh")
    assert verify.returncode != 0
    assert "repository 1 FAILED verification" in verify.stderr
    if target == "backup file":
        assert _labels(cluster)["full"][0] in verify.stderr.split("invalid backups:")[1]
        # JOB_RETRY=0: pgBackRest would retry the damaged file twice (15 s apart) before failing the same way.
        drill = cluster.script(
            "pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate", PGBACKREST_JOB_RETRY="0"
        )
        assert drill.returncode != 0
        assert "FAILED at step 'restore'" in drill.stderr


def test_restore_drill_runs_a_backup_whose_configuration_needs_the_clusters_tls_and_access_rules(fresh_cluster):
    """A Patroni-managed data directory names TLS files under /pgconf and allows only TLS connections;
    neither exists in the drill's pod. The drill must still start the copy and check it."""
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE drill_guard (id int PRIMARY KEY)", "real_estate")
    # Written, not reloaded: the live server keeps running, the backup carries the settings.
    cluster.pg.psql("ALTER SYSTEM SET ssl = on")
    cluster.pg.psql("ALTER SYSTEM SET ssl_cert_file = '/pgconf/tls/tls.crt'")
    cluster.pg.psql("ALTER SYSTEM SET ssl_key_file = '/pgconf/tls/tls.key'")
    (cluster.pg.data / "pg_hba.conf").write_text("hostssl all all all scram-sha-256\n")
    assert cluster.backup("full").returncode == 0
    drill = cluster.script("pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate")
    assert drill.returncode == 0, drill.stderr
    assert _json_lines(drill.stdout)[-1]["status"] == "ok"
