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


def test_bad_backup_type_is_refused(cluster):
    result = cluster.script("pg-backup.sh", "weekly")
    assert result.returncode == 2
    assert "backup type must be full, diff or incr (got 'weekly')" in result.stderr


def test_full_and_incremental_backups_archive_wal_and_verify(cluster):
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    full = cluster.script("pg-backup.sh", "full")
    assert full.returncode == 0, full.stderr
    assert _json_lines(full.stdout)[-1] | {"time": None, "seconds": None} == {
        "time": None, "job": "pg-backup", "type": "full", "repo": 1, "status": "ok", "seconds": None,
    }
    cluster.pg.psql("INSERT INTO ledger SELECT g, 'row ' || g FROM generate_series(1, 5000) g", "real_estate")
    incr = cluster.script("pg-backup.sh", "incr")
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
    assert cluster.script("pg-backup.sh", "incr").returncode == 0
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


def test_incremental_expiry_keeps_fulls(cluster):
    assert cluster.script("pg-backup.sh", "incr").returncode == 0
    before = _labels(cluster)
    assert before["incr"]
    kept = cluster.script("pg-expire-incr.sh", INCR_RETENTION_DAYS="7")
    assert kept.returncode == 0 and _json_lines(kept.stdout)[-1]["expired"] == 0
    assert _labels(cluster) == before
    expired = cluster.script("pg-expire-incr.sh", INCR_RETENTION_DAYS="0")
    assert expired.returncode == 0, expired.stderr
    after = _labels(cluster)
    assert after["incr"] == [] and after["full"] == before["full"]
    bad = cluster.script("pg-expire-incr.sh", INCR_RETENTION_DAYS="a week")
    assert bad.returncode == 2


@pytest.mark.parametrize("target", ["backup file", "wal segment"])
def test_corruption_is_reported_by_verify_and_by_the_drill(fresh_cluster, target):
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 20000) g", "real_estate")
    assert cluster.script("pg-backup.sh", "full").returncode == 0
    if target == "backup file":
        victims = sorted(p for p in (cluster.repo / "backup").rglob("*.gz") if "pg_data/base" in str(p) and p.stat().st_size > 4096)
    else:
        victims = sorted(p for p in (cluster.repo / "archive").rglob("*.gz") if p.stat().st_size > 4096)
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
