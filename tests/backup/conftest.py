"""PostgreSQL with WAL archiving to a pgBackRest repository, and the repo's scripts run as the server's user."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import PostgresServer, free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "ops" / "backup"


class RestoredCluster:
    """A restored data directory running on its own port, archiving off (it must not write to the repository)."""

    def __init__(self, owner: "BackedUpPostgres", pgdata: Path, port: int):
        self.owner, self.pgdata, self.port = owner, pgdata, port

    def psql(self, sql: str, database: str = "real_estate") -> str:
        pg = self.owner.pg
        return pg.run(
            str(pg.bin / "psql"), "-X", "-At", "-h", str(self.pgdata.parent), "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql
        ).stdout.strip()

    def stop(self) -> None:
        self.owner.pg.run(str(self.owner.pg.bin / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)


class BackedUpPostgres:
    """A cluster archiving WAL to repo1 with the project's scripts copied where its user can run them."""

    def __init__(self, archive_timeout: int = 60):
        self.pg = PostgresServer()
        base = self.pg.base
        self.repo = base / "repo1"
        self.scripts = base / "scripts"
        self.conf = base / "pgbackrest.conf"
        self.repo.mkdir()
        (base / "log").mkdir()
        shutil.copytree(SCRIPTS, self.scripts)
        self.conf.write_text(
            "[global]\n"
            f"repo1-path={self.repo}\n"
            "repo1-retention-full-type=time\nrepo1-retention-full=30\n"
            "start-fast=y\ncompress-type=gz\nlog-level-console=warn\nlog-level-file=info\n"
            f"log-path={base / 'log'}\nlock-path={base / 'lock'}\nspool-path={base / 'spool'}\n"
            "[main]\n"
            f"pg1-path={self.pg.data}\npg1-port={self.pg.port}\npg1-socket-path={self.pg.socket_dir}\n"
        )
        for path in (self.repo, self.scripts, self.conf, base / "log"):
            self.pg.give(path)
        self.pg.init(
            extra_conf=(
                "wal_level = replica\narchive_mode = on\n"
                f"archive_command = 'pgbackrest --config={self.conf} --stanza=main archive-push %p'\n"
                f"archive_timeout = {archive_timeout}\n"
            )
        ).start()
        # As the platform's backup-init Job does right after deployment: archiving works from the start.
        self.pg.run("pgbackrest", "stanza-create", env=self.env())
        self.pg.psql("CREATE DATABASE real_estate")

    def env(self, **extra: str) -> dict:
        return {
            **os.environ,
            "PATH": f"{self.pg.bin}:{os.environ['PATH']}",
            "PGBACKREST_CONFIG": str(self.conf),
            "PGBACKREST_STANZA": "main",
            **extra,
        }

    def script(self, name: str, *args: str, check: bool = False, **env: str) -> subprocess.CompletedProcess:
        return self.pg.run(str(self.scripts / name), *args, check=check, env=self.env(**env))

    def pgbackrest(self, *args: str) -> str:
        return self.pg.run("pgbackrest", *args, env=self.env()).stdout

    def start_restored(self, pgdata: Path, timeout: float = 120) -> RestoredCluster:
        """Start a restored data directory and wait until WAL replay has ended and it has promoted."""
        port = free_port()
        options = f"-p {port} -c listen_addresses='127.0.0.1' -c unix_socket_directories='{pgdata.parent}' -c archive_mode=off"
        log = pgdata.parent / f"{pgdata.name}.log"
        started = self.pg.run(
            str(self.pg.bin / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", str(int(timeout)), "-o", options, "start",
            check=False, env=self.env(),
        )
        assert started.returncode == 0, log.read_text() if log.exists() else started.stderr
        restored = RestoredCluster(self, pgdata, port)
        deadline = time.monotonic() + timeout
        while restored.psql("SELECT pg_is_in_recovery()", "postgres") != "f":
            assert time.monotonic() < deadline, "restored cluster did not finish recovery"
            time.sleep(0.1)
        return restored

    def scratch(self, name: str) -> Path:
        path = self.pg.base / name
        path.mkdir()
        self.pg.give(path)
        return path

    def cleanup(self) -> None:
        self.pg.cleanup()


@pytest.fixture(scope="module")
def cluster():
    instance = BackedUpPostgres()
    yield instance
    instance.cleanup()


@pytest.fixture
def fresh_cluster():
    instance = BackedUpPostgres()
    yield instance
    instance.cleanup()
