"""Faults around a failover's new timeline, injected into a real pgBackRest repository that real PostgreSQL
archived to: what the checks must refuse before anyone restores from it."""

import json

import pytest

from tests.backup.conftest import STANZA, BackedUpPostgres

pytestmark = pytest.mark.server


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _failover(cluster: BackedUpPostgres) -> None:
    """The primary comes back as a standby of its own archive and is promoted: a new timeline, as a failover
    to a replica makes one (history file first, then the new timeline's segments)."""
    cluster.pg.psql(
        f"ALTER SYSTEM SET restore_command = 'pgbackrest --config={cluster.conf} --stanza={STANZA} archive-get %f \"%p\"'")
    cluster.pg.stop()
    cluster.pg.run("touch", str(cluster.pg.data / "standby.signal"))
    cluster.pg.start()
    assert cluster.pg.psql("SELECT pg_promote(true, 60)") == "t"


@pytest.fixture
def failed_over():
    """A full backup on timeline 1, rows on timeline 1, a failover, then rows only timeline 2 holds."""
    cluster = BackedUpPostgres()
    cluster.pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, timeline int NOT NULL)", "real_estate")
    assert cluster.backup("full").returncode == 0
    cluster.pg.psql("INSERT INTO ledger SELECT g, 1 FROM generate_series(1, 100) g", "real_estate")
    cluster.pg.psql("SELECT pg_switch_wal()")
    _failover(cluster)
    cluster.pg.psql("INSERT INTO ledger SELECT g, 2 FROM generate_series(101, 200) g", "real_estate")
    cluster.pg.psql("SELECT pg_switch_wal()")
    cluster.pgbackrest(f"--stanza={STANZA}", "check")  # waits until the newest segment is in the repository
    archive = next(p for p in (cluster.repo / "archive" / STANZA).iterdir() if p.is_dir())
    assert (archive / "00000002.history").exists() and any(archive.glob("0000000200000000/*"))
    yield cluster, archive
    cluster.cleanup()


def test_the_new_timeline_is_followed_and_its_rows_restored(failed_over):
    cluster, _ = failed_over
    report = cluster.archive_check("--newest")
    assert report["timeline"] == "00000002"
    drill = cluster.script("pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate")
    assert drill.returncode == 0, drill.stderr
    assert _json_lines(drill.stdout)[-1]["status"] == "ok"


def test_a_lost_history_file_fails_the_check_and_the_drill_naming_it(failed_over):
    """Without 00000002.history a restore cannot find timeline 2: it replays timeline 1 to its end, reports the
    archive's end reached and promotes without the rows committed after the failover."""
    cluster, archive = failed_over
    (archive / "00000002.history").unlink()

    check = cluster.script("pg_archive.py", "check")
    assert check.returncode == 1
    assert f"repository 1: archive {archive.name}: timeline 2 has WAL but its history file 00000002.history is missing" in check.stderr
    assert json.loads(check.stdout)["status"] == "failed"

    verify = cluster.script("pg-verify.sh", VERIFY_SCOPE="latest")
    assert verify.returncode == 1 and "00000002.history is missing" in verify.stderr

    drill = cluster.script("pg-restore-drill.sh", DRILL_DIR=str(cluster.scratch("drill")), DRILL_DATABASE="real_estate")
    assert drill.returncode == 1
    assert "FAILED at step 'archive'" in drill.stderr and "00000002.history" in drill.stderr

