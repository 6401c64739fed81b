"""RPO and RTO of the PostgreSQL backups, measured with the platform's scripts, pgBackRest and PostgreSQL.

RPO: a writer commits a row every 50 ms while WAL is archived with the platform's archive_timeout;
PostgreSQL is killed (the data directory counts as lost) and the latest state is restored from the
repository. Reported: seconds of acknowledged commits that did not come back.

RTO: a generated database of at least 1 GB (pgbench) is restored three ways in the same run:
pgBackRest restore + recovery, pg_dump/pg_restore of the same database, and a plain copy of the
stopped data directory (the physical limit). Reported: seconds, ratios, and a linear projection to 100 GB.

    .venv/bin/python -m bench.backup_rpo_rto [--archive-timeout 60] [--rpo-seconds 75] [--scale 70]

Prints numbers; asserts nothing. Runs as root (PostgreSQL runs as the postgres user) or as that user.
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time

import psycopg

from tests.backup.conftest import BackedUpPostgres


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _du(path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def rpo(archive_timeout: int, seconds: int) -> None:
    cluster = BackedUpPostgres(archive_timeout=archive_timeout)
    try:
        url = cluster.pg.url("real_estate")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE heartbeat (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        assert cluster.backup("full").returncode == 0
        acknowledged: list[tuple[int, float]] = []
        stop = threading.Event()

        def writer():
            with psycopg.connect(url, autocommit=True) as conn:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        conn.execute("INSERT INTO heartbeat (id) VALUES (%s)", (i,))
                    except psycopg.Error:
                        return
                    acknowledged.append((i, time.time()))
                    time.sleep(0.05)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(seconds)
        crash_at = time.time()
        # The disaster: the server dies and its data directory is gone; only the repository is left.
        cluster.pg.stop("immediate")
        stop.set()
        thread.join()
        pgdata = cluster.scratch("rpo") / "pgdata"
        restore_seconds = _seconds(lambda: cluster.script("pg-restore.sh", "--pgdata", str(pgdata), check=True))
        started = time.perf_counter()
        restored = cluster.start_restored(pgdata, timeout=3600)
        recovery_seconds = time.perf_counter() - started
        last_restored = int(restored.psql("SELECT coalesce(max(id), 0) FROM heartbeat"))
        restored.stop()
        last_id, last_time = acknowledged[-1]
        restored_time = next((t for i, t in acknowledged if i == last_restored), acknowledged[0][1])
        print(f"RPO  archive_timeout={archive_timeout}s, {seconds}s of writes every 50 ms, then an immediate stop (a crash) and restore latest:")
        print(f"     acknowledged commits {last_id}, restored {last_restored}, lost {last_id - last_restored} "
              f"= {last_time - restored_time:.1f} s of writes (crash {crash_at - last_time:.2f} s after the last commit)")
        print(f"     restore {restore_seconds:.1f} s + recovery {recovery_seconds:.1f} s")
    finally:
        cluster.cleanup()


def rto(scale: int) -> None:
    cluster = BackedUpPostgres()
    try:
        env = cluster.env(PGPASSWORD=cluster.pg.password)
        pgbench = [str(cluster.pg.bin / "pgbench"), "-h", "127.0.0.1", "-p", str(cluster.pg.port), "-U", "postgres"]
        generate = _seconds(lambda: subprocess.run([*pgbench, "-i", "-q", "-s", str(scale), "real_estate"], env=env, check=True, capture_output=True))
        size = int(cluster.pg.psql("SELECT pg_database_size('real_estate')"))
        gib = size / 2**30
        print(f"RTO  pgbench scale {scale}: database {size / 2**30:.2f} GiB (generated in {generate:.0f} s)")
        backup = _seconds(lambda: cluster.backup("full").check_returncode())
        cluster.pg.psql("CHECKPOINT")

        base = cluster.scratch("rto")
        # The physical limit first, while the data directory holds just this database (plus its WAL).
        cluster.pg.stop("fast")
        data_bytes, wal_bytes = _du(cluster.pg.data), _du(cluster.pg.data / "pg_wal")
        raw_copy = _seconds(lambda: subprocess.run(["cp", "-a", str(cluster.pg.data), str(base / "copy")], check=True))
        subprocess.run(["rm", "-rf", str(base / "copy")], check=True)
        cluster.pg.start()
        # Copying the database's own bytes at the measured disk rate: what any restore must at least spend.
        copy_seconds = raw_copy * size / data_bytes
        print(f"     data directory {data_bytes / 2**30:.2f} GiB (pg_wal {wal_bytes / 2**30:.2f} GiB) copied in {raw_copy:.1f} s, "
              f"{data_bytes / raw_copy / 2**20:.0f} MiB/s")

        pgdata = base / "pgbackrest"
        restore = _seconds(lambda: cluster.script("pg-restore.sh", "--pgdata", str(pgdata), check=True))
        started = time.perf_counter()
        restored = cluster.start_restored(pgdata, timeout=3600)
        recovery = time.perf_counter() - started
        restored.stop()
        pgbackrest_total = restore + recovery

        dump = base / "dump"
        dump_seconds = _seconds(lambda: cluster.pg.run(str(cluster.pg.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(cluster.pg.port),
                                                       "-U", "postgres", "-Fd", "-j", "2", "-f", str(dump), "real_estate", env=env))
        cluster.pg.psql("CREATE DATABASE restored")
        pg_restore_seconds = _seconds(lambda: cluster.pg.run(str(cluster.pg.bin / "pg_restore"), "-h", "127.0.0.1", "-p", str(cluster.pg.port),
                                                            "-U", "postgres", "-j", "2", "-d", "restored", str(dump), env=env))

        def line(name: str, seconds: float) -> str:
            return f"     {name:<36}{seconds:>8.1f} s{seconds / copy_seconds:>8.1f}x copy{seconds / gib * 100 / 60:>9.1f} min per 100 GB"

        print(f"     pgBackRest full backup {backup:.1f} s (restore {restore:.1f} s + recovery {recovery:.1f} s); "
              f"pg_dump -Fd -j2 {dump_seconds:.1f} s")
        print(f"     {'restore path':<36}{'time':>10}{'vs copy':>13}{'projected':>22}")
        print(line("copy of the database's bytes", copy_seconds))
        print(line("pgBackRest restore + recovery", pgbackrest_total))
        print(line("pg_restore -j2 of a pg_dump", pg_restore_seconds))
        print(f"     pg_restore / pgBackRest = {pg_restore_seconds / pgbackrest_total:.2f}")
    finally:
        cluster.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive-timeout", type=int, default=60)
    parser.add_argument("--rpo-seconds", type=int, default=75)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale; 70 is about 1 GiB")
    parser.add_argument("--skip-rto", action="store_true")
    parser.add_argument("--skip-rpo", action="store_true")
    args = parser.parse_args()
    if not args.skip_rpo:
        rpo(args.archive_timeout, args.rpo_seconds)
    if not args.skip_rto:
        rto(args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
