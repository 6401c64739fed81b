"""RPO and RTO of the PostgreSQL backups, measured with the platform's scripts, pgBackRest and PostgreSQL.

RPO, as a distribution over crash times: a writer commits a row every 50 ms, recording each commit's WAL position
and acknowledgement time, while WAL is archived with the platform's archive_timeout and options (asynchronous push,
zst). Every 0.5 s over at least two archive periods, the repository's newest archived segment is read: a restore to
"latest" at that instant gets back exactly the commits inside archived segments (the tests prove a restore reaches
the archive's end), so the loss at that instant is the acknowledged time not covered. Three of those instants are
then checked by a real crash and restore. A transient repository outage in the middle shows the worst case with a
failed push: PostgreSQL's archiver retries three times, then waits for its next cycle.

RTO: a generated database of at least 1 GB (pgbench) is backed up, then written to for --replay-seconds more (the
WAL a restore has to replay), and restored three ways in the same run: pgBackRest restore + WAL replay to the
archive's end, pg_dump/pg_restore of the same database, and a plain copy of the stopped data directory (the physical
limit). Reported: seconds (restore and replay apart), ratios, and a linear projection to 100 GB.

    .venv/bin/python -m bench.backup_rpo_rto [--archive-timeout 60] [--periods 3] [--outage 120] [--scale 70] [--replay-seconds 90]

Prints numbers; asserts nothing. Runs as root (PostgreSQL runs as the postgres user) or as that user.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time

import psycopg

from tests.backup.conftest import BackedUpPostgres

SEGMENT = 16 * 2**20


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _du(path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _archived_end(cluster) -> int:
    """The byte position up to which the repository holds WAL: the end of its newest archived segment."""
    names = [p.name[:24] for p in cluster.repo.glob("archive/*/*/*/*") if len(p.name) > 24 and p.name[24] == "-"]
    if not names:
        return 0
    newest = max(names)
    return (int(newest[8:16], 16) << 32) + (int(newest[16:24], 16) + 1) * SEGMENT


class Writer(threading.Thread):
    """Commits a row every 50 ms; keeps (commit end LSN, acknowledged at) for each."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.commits, self.stop = url, [], threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    conn.execute("INSERT INTO heartbeat (id) VALUES (%s)", (i,))
                    # The commit record ends before this position: a restore that reaches it has the row.
                    lsn = _lsn(conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])
                except psycopg.Error:
                    return
                self.commits.append((i, lsn, time.time()))
                time.sleep(0.05)

    def loss_at(self, instant: float, archived_end: int) -> float:
        """Seconds of acknowledged commits a restore from the repository would not bring back at that instant."""
        acknowledged = [c for c in self.commits if c[2] <= instant]
        if not acknowledged:
            return 0.0
        kept = [c for c in acknowledged if c[1] <= archived_end]
        return acknowledged[-1][2] - (kept[-1][2] if kept else acknowledged[0][2])


def _distribution(values: list[float]) -> str:
    ordered = sorted(values)
    pct = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return (f"n={len(ordered)}  mean {statistics.mean(ordered):.1f} s  p50 {pct(0.5):.1f}  p90 {pct(0.9):.1f}  "
            f"p99 {pct(0.99):.1f}  max {ordered[-1]:.1f} s")


def rpo(archive_timeout: int, periods: int, outage: int) -> None:
    cluster = BackedUpPostgres(archive_timeout=archive_timeout)
    try:
        url = cluster.pg.url("real_estate")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE heartbeat (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        assert cluster.backup("full").returncode == 0
        writer = Writer(url)
        writer.start()
        samples: list[tuple[float, int, str]] = []  # (instant, archived end, phase)

        def sample_for(seconds: float, phase: str) -> None:
            deadline = time.time() + seconds
            while time.time() < deadline:
                samples.append((time.time(), _archived_end(cluster), phase))
                time.sleep(0.5)

        sample_for(periods * archive_timeout, "steady")
        if outage:
            # The repository refuses writes for a while (a store outage), then comes back.
            directories = [cluster.repo, *(p for p in cluster.repo.rglob("*") if p.is_dir())]
            for d in directories:
                os.chmod(d, 0o500)
            sample_for(outage, "outage")
            for d in directories:
                os.chmod(d, 0o700)
            sample_for(archive_timeout + 30, "after outage")
        sample_for(archive_timeout, "steady")

        # Three real disasters at the end of the run: crash, restore latest, count.
        checks = []
        for n in range(3):
            if n:
                time.sleep(archive_timeout * n / 3)
            crash_at = time.time()
            end = _archived_end(cluster)
            predicted = writer.loss_at(crash_at, end)
            pgdata = cluster.scratch(f"rpo-{n}") / "pgdata"
            snapshot = cluster.scratch(f"rpo-{n}-repo")
            # The repository as it was at the crash (a copy), so the running cluster can go on for the next check.
            subprocess.run(["cp", "-a", f"{cluster.repo}/.", str(snapshot)], check=True)
            acknowledged = [c for c in writer.commits if c[2] <= crash_at]
            restore_conf = cluster.checks_conf.read_text().replace(f"repo1-path={cluster.repo}\n", f"repo1-path={snapshot}\n")
            conf = cluster.pg.base / f"rpo-{n}.conf"
            conf.write_text(restore_conf)
            cluster.pg.give(conf)
            cluster.pg.run(str(cluster.scripts / "pg-restore.sh"), "--pgdata", str(pgdata), "--archive-mode", "off",
                           env=cluster.env(PGBACKREST_CONFIG=str(conf)))
            cluster.checks_conf, saved = conf, cluster.checks_conf
            try:
                restored = cluster.start_restored(pgdata, timeout=3600)
            finally:
                cluster.checks_conf = saved
            last = int(restored.psql("SELECT coalesce(max(id), 0) FROM heartbeat"))
            restored.stop()
            kept_at = next((c[2] for c in acknowledged if c[0] == last), acknowledged[0][2])
            checks.append((predicted, acknowledged[-1][2] - kept_at))
        writer.stop.set()
        writer.join()

        print(f"RPO  archive_timeout={archive_timeout}s, a commit every 50 ms, asynchronous push, zst; loss of a restore to latest")
        print("     if the cluster and its volumes were lost at each instant (sampled every 0.5 s):")
        for phase in ("steady", "outage", "after outage"):
            values = [writer.loss_at(t, end) for t, end, p in samples if p == phase]
            if values:
                print(f"     {phase:<13} {_distribution(values)}")
        print("     real crash + restore vs. predicted: " + ", ".join(f"{real:.1f} s vs {pred:.1f} s" for pred, real in checks))
    finally:
        cluster.cleanup()


def rto(scale: int, replay_seconds: int) -> None:
    cluster = BackedUpPostgres()
    try:
        env = cluster.env(PGPASSWORD=cluster.pg.password)
        pgbench = [str(cluster.pg.bin / "pgbench"), "-h", "127.0.0.1", "-p", str(cluster.pg.port), "-U", "postgres"]
        generate = _seconds(lambda: subprocess.run([*pgbench, "-i", "-q", "-s", str(scale), "real_estate"], env=env, check=True, capture_output=True))
        size = int(cluster.pg.psql("SELECT pg_database_size('real_estate')"))
        gib = size / 2**30
        print(f"RTO  pgbench scale {scale}: database {size / 2**30:.2f} GiB (generated in {generate:.0f} s)")
        backup = _seconds(lambda: cluster.backup("full").check_returncode())
        # Writes after the backup: the WAL a restore to latest replays on top of it.
        backup_end = _lsn(cluster.pg.psql("SELECT pg_current_wal_lsn()"))
        subprocess.run([*pgbench, "-n", "-c", "2", "-T", str(replay_seconds), "real_estate"], env=env, check=True, capture_output=True)
        wal_to_replay = _lsn(cluster.pg.psql("SELECT pg_current_wal_lsn()")) - backup_end
        cluster.pg.psql("SELECT pg_switch_wal()")
        cluster.pgbackrest("check")
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

        print(f"     pgBackRest full backup {backup:.1f} s; then {replay_seconds} s of pgbench writes: {wal_to_replay / 2**20:.0f} MiB of WAL to replay")
        print(f"     restore to latest: files {restore:.1f} s + WAL replay to the archive's end {recovery:.1f} s "
              f"({wal_to_replay / 2**20 / recovery:.0f} MiB/s); pg_dump -Fd -j2 {dump_seconds:.1f} s")
        print(f"     {'restore path':<36}{'time':>10}{'vs copy':>13}{'projected':>22}")
        print(line("copy of the database's bytes", copy_seconds))
        print(line("pgBackRest restore (the files)", restore))
        print(line("pg_restore -j2 of a pg_dump", pg_restore_seconds))
        # Replay scales with the WAL written since the backup, not with the database's size.
        print(f"     WAL replay {wal_to_replay / 2**20 / recovery:.0f} MiB/s: an hour of WAL written at 10 MiB/s "
              f"replays in {3600 * 10 / (wal_to_replay / 2**20 / recovery) / 60:.1f} min")
        print(f"     this run: pgBackRest restore + replay {pgbackrest_total:.1f} s vs pg_restore {pg_restore_seconds:.1f} s "
              f"(which has no WAL to replay and loses everything since the dump)")
    finally:
        cluster.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive-timeout", type=int, default=60)
    parser.add_argument("--periods", type=int, default=3, help="archive periods sampled in steady state (at least 2)")
    parser.add_argument("--outage", type=int, default=120, help="seconds the repository refuses writes (0: none)")
    parser.add_argument("--replay-seconds", type=int, default=90, help="pgbench writes after the backup, replayed by the restore")
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale; 70 is about 1 GiB")
    parser.add_argument("--skip-rto", action="store_true")
    parser.add_argument("--skip-rpo", action="store_true")
    args = parser.parse_args()
    if not args.skip_rpo:
        rpo(args.archive_timeout, max(2, args.periods), args.outage)
    if not args.skip_rto:
        rto(args.scale, args.replay_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
