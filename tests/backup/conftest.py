"""PostgreSQL archiving WAL to a pgBackRest repository with the cluster's own pgBackRest options, and the
repository's check scripts run as the server's user.

Two configurations, as in the cluster: the instance's (what the operator writes: archive-async, spool, and the
stack's `spec.backups.pgbackrest.global`), used by archive-push and by backups; and the checks' (what the verify
and drill jobs mount: `components.pgbackrest.job_conf`), used by the scripts. Both read the same repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from components import pgbackrest
from settings import BackupSettings, OffsiteSettings
from tests.harness import decoded_config
from tests.services import PostgresServer, free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "ops" / "backup"
STANZA = pgbackrest.STANZA


def prod_backup_settings() -> BackupSettings:
    """The prod stack's backup settings, without the off-site repository this machine cannot reach."""
    settings = BackupSettings.model_validate(decoded_config("prod")["real-estate-ai:backups"])
    return settings.model_copy(update={"offsite": OffsiteSettings()})


def instance_conf(settings: BackupSettings, repo: Path, base: Path, pg: PostgresServer) -> str:
    """pgbackrest.conf as the operator writes it for an instance (internal/pgbackrest/config.go, v3.0.0)."""
    options = {
        "repo1-path": str(repo),
        "archive-async": "y",
        "spool-path": str(base / "spool"),
        "log-path": str(base / "log"),
        "log-level-console": "warn",
        "log-level-file": "info",
        "lock-path": str(base / "lock"),
        **pgbackrest.global_options(settings),
    }
    lines = ["[global]", *(f"{k}={v}" for k, v in options.items()), f"[{STANZA}]",
             f"pg1-path={pg.data}", f"pg1-port={pg.port}", f"pg1-socket-path={pg.socket_dir}"]
    return "\n".join(lines) + "\n"


def checks_conf(settings: BackupSettings, repo: Path, base: Path, drill_pgdata: str = "/nonexistent") -> str:
    """The verify and drill jobs' pgbackrest.conf, with this machine's repository and lock paths."""
    conf = pgbackrest.job_conf(settings, drill_pgdata)
    conf = conf.replace(f"repo1-path={pgbackrest.REPO1_PATH}\n", f"repo1-path={repo}\n")
    return conf.replace("lock-path=/tmp/pgbackrest\n", f"lock-path={base / 'check-lock'}\n")


def _with_repo2(conf: str, repo2: Path | None) -> str:
    if repo2 is None:
        return conf
    return conf.replace("[global]\n", f"[global]\nrepo2-path={repo2}\nrepo2-retention-full-type=time\nrepo2-retention-full=30\n", 1)


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

    def __init__(self, archive_timeout: int = 60, settings: BackupSettings | None = None, repo2: bool = False):
        self.pg = PostgresServer()
        base = self.pg.base
        self.settings = settings or prod_backup_settings()
        self.repo = base / "repo1"
        # A second repository standing in for the off-site one (a directory: this machine has no S3 store).
        self.repo2 = base / "repo2" if repo2 else None
        self.scripts = base / "scripts"
        self.conf = base / "pgbackrest.conf"
        self.checks_conf = base / "checks.conf"
        self.repo.mkdir()
        (base / "log").mkdir()
        shutil.copytree(SCRIPTS, self.scripts)
        self.conf.write_text(_with_repo2(instance_conf(self.settings, self.repo, base, self.pg), self.repo2))
        self.checks_conf.write_text(_with_repo2(checks_conf(self.settings, self.repo, base), self.repo2))
        for path in (self.repo, self.scripts, self.conf, self.checks_conf, base / "log", *([self.repo2] if repo2 else [])):
            if not path.exists():
                path.mkdir()
            self.pg.give(path)
        self.pg.init(
            extra_conf=(
                "wal_level = replica\narchive_mode = on\n"
                f"archive_command = 'pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p'\n"
                f"archive_timeout = {archive_timeout}\n"
            )
        ).start()
        # The operator creates the stanza once, when the cluster starts: archiving works from the start.
        self.pg.run("pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", "stanza-create", env=self.env())
        self.pg.psql("CREATE DATABASE real_estate")

    def backup(self, kind: str, repo: int = 1) -> subprocess.CompletedProcess:
        """What the operator's backup Job runs on the repository host (one Job per repository)."""
        return self.pg.run(
            "pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", "backup", f"--repo={repo}", f"--type={kind}",
            check=False, env=self.env()
        )

    def env(self, **extra: str) -> dict:
        return {
            **os.environ,
            "PATH": f"{self.pg.bin}:{os.environ['PATH']}",
            # The scripts run with the checks' configuration, as in the verify and drill jobs.
            "PGBACKREST_CONFIG": str(self.checks_conf),
            "PGBACKREST_STANZA": STANZA,
            **extra,
        }

    def script(self, name: str, *args: str, check: bool = False, **env: str) -> subprocess.CompletedProcess:
        return self.pg.run(str(self.scripts / name), *args, check=check, env=self.env(**env))

    def pgbackrest(self, *args: str) -> str:
        return self.pg.run("pgbackrest", f"--config={self.conf}", *args, env=self.env()).stdout

    def start_restored(self, pgdata: Path, timeout: float = 120) -> RestoredCluster:
        """Start a data directory pg-restore.sh restored and promote it once it has replayed what it should:
        paused at its target time, or (restored to latest, as a standby) at the last segment the archive holds."""
        port = free_port()
        options = f"-p {port} -c listen_addresses='127.0.0.1' -c unix_socket_directories='{pgdata.parent}' -c archive_mode=off"
        log = pgdata.parent / f"{pgdata.name}.log"
        started = self.pg.run(
            str(self.pg.bin / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", str(int(timeout)), "-o", options, "start",
            check=False, env=self.env(),
        )
        assert started.returncode == 0, log.read_text() if log.exists() else started.stderr
        restored = RestoredCluster(self, pgdata, port)
        end_lsn = self.archive_check()["end_lsn"]
        deadline = time.monotonic() + timeout
        while restored.psql("SELECT pg_is_in_recovery()", "postgres") != "f":
            assert time.monotonic() < deadline, "restored cluster did not finish recovery"
            try:
                state = restored.psql(
                    f"SELECT pg_get_wal_replay_pause_state(), pg_last_wal_replay_lsn() >= '{end_lsn}'::pg_lsn", "postgres").split("|")
            except subprocess.CalledProcessError:
                # Recovery ended since the check above (the last resume promoted it): these functions now refuse.
                continue
            if state[0] == "paused":
                restored.psql("SELECT pg_wal_replay_resume()", "postgres")
            elif (pgdata / "standby.signal").exists() and state[1] == "t":
                restored.psql("SELECT pg_promote()", "postgres")
            time.sleep(0.1)
        return restored

    def archive_check(self, *args: str) -> dict:
        """ops/backup/pg_archive.py's report on repo1 (it must pass)."""
        done = self.script("pg_archive.py", "check", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

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
