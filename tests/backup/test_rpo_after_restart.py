"""The WAL a crash can lose right after PostgreSQL restarts: archive_timeout must bound it from the first minute,
with real PostgreSQL archiving through pgBackRest and ops/postgres/checkpoint-after-start.sh beside it."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.backup.conftest import BackedUpPostgres

pytestmark = pytest.mark.server

GUARD = Path(__file__).resolve().parents[2] / "ops" / "postgres" / "checkpoint-after-start.sh"
ARCHIVE_TIMEOUT = 10
GUARD_INTERVAL = 2


@pytest.fixture
def guarded():
    cluster = BackedUpPostgres(archive_timeout=ARCHIVE_TIMEOUT)
    env = {**os.environ, "PGHOST": str(cluster.pg.socket_dir), "PGPORT": str(cluster.pg.port), "PGUSER": "postgres",
           "PATH": f"{cluster.pg.bin}:{os.environ['PATH']}", "CHECKPOINT_GUARD_INTERVAL": str(GUARD_INTERVAL)}
    guard = subprocess.Popen(["bash", str(GUARD)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield cluster, guard
    guard.kill()
    guard.wait()
    cluster.cleanup()


def _seconds_until_archived(cluster: BackedUpPostgres, limit: float) -> float:
    """One commit, then the time until the segment holding it is archived (at most `limit`)."""
    cluster.pg.psql("CREATE TABLE IF NOT EXISTS heartbeat (at timestamptz)", "real_estate")
    cluster.pg.psql("INSERT INTO heartbeat VALUES (now())", "real_estate")
    segment = cluster.pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    started = time.monotonic()
    while time.monotonic() - started < limit:
        archived = cluster.pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if archived[:24] >= segment:
            return time.monotonic() - started
        time.sleep(0.5)
    return float("inf")


def _kill_a_backend(cluster: BackedUpPostgres) -> None:
    """One backend SIGKILLed (an OOM kill, say): PostgreSQL restarts every child and recovers, the postmaster stays."""
    started = cluster.pg.psql("SELECT pg_postmaster_start_time()")
    sleeper = subprocess.Popen([str(cluster.pg.bin / "psql"), "-X", "-h", "127.0.0.1", "-p", str(cluster.pg.port), "-U", "postgres",
                                "-c", "SELECT pg_sleep(60)"], env={**os.environ, "PGPASSWORD": cluster.pg.password},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (pid := cluster.pg.psql("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")) != "0":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(int(pid), 9)
    sleeper.wait(10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if cluster.pg.psql("SELECT pg_is_in_recovery()") == "f":
                break
        except subprocess.CalledProcessError:
            pass
        assert time.monotonic() < deadline, "PostgreSQL did not come back from the crash restart"
        time.sleep(0.2)
    assert cluster.pg.psql("SELECT pg_postmaster_start_time()") == started  # the same postmaster


@pytest.mark.parametrize("stop", ["fast", "immediate", "backend killed"])
def test_archive_timeout_holds_right_after_a_restart(guarded, stop):
    """Without the guard, PostgreSQL 15's first forced switch after a start waits for checkpoint_timeout (5 min):
    a crash in those minutes loses everything since the start."""
    cluster, guard = guarded
    if stop == "backend killed":
        _kill_a_backend(cluster)
    else:
        cluster.pg.stop(stop)
        cluster.pg.start()
    time.sleep(GUARD_INTERVAL + 1)
    bound = ARCHIVE_TIMEOUT + GUARD_INTERVAL + 8
    waited = _seconds_until_archived(cluster, bound)
    assert waited <= bound, f"a commit after the restart was not archived within {bound} s"
    # The next window too: the checkpointer keeps to archive_timeout once woken.
    time.sleep(1)
    assert _seconds_until_archived(cluster, bound) <= bound


def test_the_guard_wakes_the_checkpointer_once_per_start_and_survives_a_server_that_is_down(guarded):
    cluster, guard = guarded
    time.sleep(GUARD_INTERVAL + 1)
    cluster.pg.stop("fast")
    time.sleep(GUARD_INTERVAL + 1)  # the guard finds nobody to ask, and goes on
    cluster.pg.start()
    time.sleep(2 * GUARD_INTERVAL + 2)
    guard.kill()
    lines = [line for line in guard.communicate()[0].splitlines() if line]
    assert len(lines) == 2 and all(line.startswith("checkpoint-after-start: checkpointer started at ") for line in lines), lines
    assert lines[0] != lines[1]
