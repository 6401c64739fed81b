"""The PostgreSQL backup scripts in ops/backup, run for real against PostgreSQL and pgBackRest."""

import json
import time

import pytest

pytestmark = pytest.mark.server


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


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--pgdata", "{data}"], 1, "holds a data directory (postmaster.pid present)"),
        (["--pgdata", "{nonempty}"], 1, "never overwrites a data directory"),
        (["--pgdata", "{new}", "--target", "yesterday-ish"], 2, "is not a timestamp"),
        (["--pgdata", "{new}", "--target", "2026-11-28 10:15:00"], 2, "is not a timestamp"),
        (["--pgdata", "{new}", "--target", "2999-01-01 00:00:00+00"], 2, "is in the future"),
        (["--pgdata", "{new}", "--set", "20261128-010002F_latest"], 2, "is not a backup label"),
        (["--pgdata", "{new}", "--repo", "1;rm"], 2, "--repo must be a repository number"),
        (["--pgdata"], 2, "usage:"),
    ],
)
def test_restore_refuses_what_would_overwrite_data_or_misread_a_target(cluster, args, code, message):
    nonempty = cluster.pg.base / "nonempty"
    nonempty.mkdir(exist_ok=True)
    (nonempty / "PG_VERSION").write_text("15\n")
    paths = {"data": cluster.pg.data, "nonempty": nonempty, "new": cluster.pg.base / "never-created"}
    result = cluster.script("pg-restore.sh", *(a.format(**{k: str(v) for k, v in paths.items()}) for a in args))
    assert result.returncode == code and message in result.stderr, result.stderr
    assert (nonempty / "PG_VERSION").read_text() == "15\n" and not (cluster.pg.base / "never-created").exists()


def test_an_older_backup_set_can_be_chosen_when_the_newest_is_damaged(cluster):
    assert cluster.backup("full").returncode == 0
    older = _labels(cluster)["full"][-1]
    assert cluster.backup("full").returncode == 0
    newest = _labels(cluster)["full"][-1]
    assert newest != older
    pgdata = cluster.scratch("older-set") / "pgdata"
    restore = cluster.script("pg-restore.sh", "--pgdata", str(pgdata), "--set", older)
    assert restore.returncode == 0, restore.stderr
    assert f"restore backup set {older}" in restore.stdout + restore.stderr
    assert _json_lines(restore.stdout)[-1]["set"] == older
    restored = cluster.start_restored(pgdata)
    try:
        # From the older set, WAL replay still brings everything archived since.
        assert restored.psql("SELECT count(*) FROM latest_check") == "777"
    finally:
        restored.stop()


def test_restore_drill_restores_checks_and_leaves_the_repository_alone(cluster):
    cluster.pg.psql("CREATE TABLE IF NOT EXISTS drill_table (id int PRIMARY KEY)", "real_estate")
    assert cluster.backup("incr").returncode == 0
    # A commit after the backup: the drill must replay it from the archive.
    cluster.pg.psql("INSERT INTO latest_check VALUES (0)", "real_estate")
    cluster.pg.psql("DELETE FROM latest_check WHERE id = 0", "real_estate")
    cluster.pg.psql("SELECT pg_switch_wal()")
    cluster.pgbackrest("check")
    archive_before = cluster.pgbackrest("info").split("wal archive min/max")[1].splitlines()[0]
    drill = cluster.script(
        "pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate", DRILL_MIN_TABLES="2"
    )
    assert drill.returncode == 0, drill.stderr
    report = _json_lines(drill.stdout)[-1]
    assert report["status"] == "ok" and report["step"] == "done" and report["tables"] >= 2
    # Exact counts, not planner estimates (those are 0 for a table nobody analysed).
    assert report["table_rows"]["public.latest_check"] == 777 and report["table_rows"]["public.drill_table"] == 0
    assert report["rows"] == sum(report["table_rows"].values())
    # Replayed to the archive's end: the newest restored commit is after the backup it started from.
    assert report["replayed_to"] and report["archive_end"]
    assert report["newest_commit_after_backup_seconds"] >= 0 and report["backup"] == _labels(cluster)["incr"][-1]
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


def _segments_after(cluster, label: str) -> list:
    """Archived segment files written after a backup started, oldest first."""
    (backup,) = [b for b in json.loads(cluster.pgbackrest("info", "--output=json"))[0]["backup"]
                 if b["label"] == label]
    start = backup["archive"]["start"]
    return sorted(p for p in (cluster.repo / "archive").rglob("0000*-*.zst") if p.name[:24] > start)


def _write_segments(cluster, count: int) -> None:
    for step in range(count):
        cluster.pg.psql(f"INSERT INTO ledger SELECT g, 'step {step}' FROM generate_series(1, 2000) g ON CONFLICT (id) DO UPDATE SET note = excluded.note", "real_estate")
        cluster.pg.psql("SELECT pg_switch_wal()")
    cluster.pgbackrest("check")


def test_a_missing_wal_segment_fails_verify_and_the_drill_naming_segment_and_repository(fresh_cluster):
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    assert cluster.backup("full").returncode == 0
    full = _labels(cluster)["full"][0]
    _write_segments(cluster, 4)
    ok = cluster.script("pg-verify.sh", VERIFY_SCOPE="latest")
    assert ok.returncode == 0, ok.stderr
    report = _json_lines(ok.stdout)[-1]
    assert report["scope"] == "latest" and report["newest_backup"] == full and report["archive"]["status"] == "ok"

    victim = _segments_after(cluster, full)[1]
    victim.unlink()
    missing = victim.name[:24]
    verify = cluster.script("pg-verify.sh", VERIFY_SCOPE="latest")
    assert verify.returncode == 1
    archive_id = victim.parent.parent.name
    assert f"repository 1: archive {archive_id}: 1 segment(s) missing after backup {full}: {missing}\n" in verify.stderr
    assert _json_lines(verify.stdout)[-1]["status"] == "failed"

    drill = cluster.script("pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill-gap")), DRILL_DATABASE="real_estate")
    assert drill.returncode == 1
    assert "FAILED at step 'archive'" in drill.stderr and missing in drill.stderr


def test_a_segment_that_cannot_be_fetched_stops_the_drill_before_it_promotes(fresh_cluster):
    """A segment present but unreadable passes the listing; replay stops short of the archive's end, and the
    drill says where instead of promoting a copy that lacks the rest."""
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    assert cluster.backup("full").returncode == 0
    _write_segments(cluster, 4)
    victim = _segments_after(cluster, _labels(cluster)["full"][0])[2]
    victim.write_bytes(b"not zstd" * 64)
    drill = cluster.script(
        "pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill-stall")), DRILL_DATABASE="real_estate", DRILL_STALL="5"
    )
    assert drill.returncode == 1
    assert "FAILED at step 'replay'" in drill.stderr and "before the archive's end" in drill.stderr, drill.stderr
    report = _json_lines(drill.stdout)[-1]
    assert report["status"] == "failed" and report["step"] == "replay"


@pytest.mark.parametrize("lost", [("backup.manifest", "backup.manifest.copy"), ("backup.manifest",)])
def test_a_backup_without_its_manifest_fails_verify_naming_it(fresh_cluster, lost):
    """pgBackRest restores nothing from a backup it has no manifest for; its verify reports "manifest missing" and
    still says the repository is ok. With the copy left, pgBackRest uses the copy: the backup stays valid."""
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    assert cluster.backup("full").returncode == 0
    _write_segments(cluster, 1)
    assert cluster.backup("incr").returncode == 0
    newest = _labels(cluster)["incr"][0]
    for name in lost:
        (cluster.repo / "backup" / "db" / newest / name).unlink()
    for scope in ("latest", "full"):
        verify = cluster.script("pg-verify.sh", VERIFY_SCOPE=scope)
        if len(lost) == 1:
            assert verify.returncode == 0, verify.stderr
            continue
        assert verify.returncode == 1, verify.stdout
        assert f"pg-verify: repository 1 FAILED verification; invalid backups: {newest} (manifest missing)" in verify.stderr


@pytest.mark.parametrize("damage", ["bytes flipped", "another segment's content"])
def test_the_daily_check_reads_back_the_wal_after_the_newest_backup(fresh_cluster, damage):
    """pgBackRest's verify of the newest set (2.55 on) reads that set's own WAL only; a restore to latest replays
    everything after it. The daily check reads every segment back and names the one that does not match."""
    cluster = fresh_cluster
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)", "real_estate")
    assert cluster.backup("full").returncode == 0
    full = _labels(cluster)["full"][0]
    _write_segments(cluster, 4)
    sound = cluster.script("pg_archive.py", "wal", "--scratch", str(cluster.scratch("wal-sound")))
    assert sound.returncode == 0, sound.stderr
    report = json.loads(sound.stdout)
    assert report["job"] == "pg-archive-wal" and report["newest_backup"] == full and report["segments_read"] >= 5

    after = _segments_after(cluster, full)
    victim = after[2]
    if damage == "bytes flipped":
        data = bytearray(victim.read_bytes())
        for offset in range(40, len(data), 97):
            data[offset] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.write_bytes(after[1].read_bytes())  # a sound segment, under another's name
    check = cluster.script("pg_archive.py", "wal", "--scratch", str(cluster.scratch("wal-damaged")))
    assert check.returncode == 1
    assert f"1 segment(s) after backup {full} cannot be restored: {victim.name[:24]} (" in check.stderr
    if damage != "bytes flipped":
        assert f"{victim.name[:24]} (its content is not what was archived)" in check.stderr
    verify = cluster.script("pg-verify.sh", VERIFY_SCOPE="latest", VERIFY_SCRATCH=str(cluster.scratch("verify")))
    assert verify.returncode == 1 and victim.name[:24] in verify.stderr
