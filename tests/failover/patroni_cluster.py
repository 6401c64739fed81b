"""A real Patroni cluster on loopback: Debian's etcd, Patroni and PostgreSQL, three members.

The members get the Patroni settings a stack's PerconaPGCluster sets (`components.postgres_cluster.patroni_dcs`),
so a failover here behaves as the prod cluster's would, with etcd standing in for the Kubernetes API that the
operator's Patroni uses as its consensus store (both expire the leader lease after `ttl`).

A "kill" is a hard loss of a member, as when its node dies: Patroni and the whole PostgreSQL process tree get
SIGKILL at once, nothing is shut down cleanly.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psycopg
import yaml

from tests.services import free_port, postgres_bin_dir, wait_for_port

SUPERUSER_PASSWORD = "failover-superuser-0123456789abcdef"
REPLICATION_PASSWORD = "failover-replication-0123456789abcdef"


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


class Etcd:
    def __init__(self, base: Path):
        self.dir = base / "etcd"
        self.client_port, self.peer_port = free_port(), free_port()
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Etcd":
        self.process = subprocess.Popen(
            [
                shutil.which("etcd") or "/usr/bin/etcd", "--name", "dcs", "--data-dir", str(self.dir),
                "--listen-client-urls", f"http://127.0.0.1:{self.client_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster", f"dcs=http://127.0.0.1:{self.peer_port}",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.client_port)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@dataclass
class Member:
    name: str
    base: Path
    pg_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def config(self) -> Path:
        return self.base / "patroni.yml"

    def status(self) -> dict:
        """Patroni's REST API view of this member ({} when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/patroni", timeout=1) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return {}

    def start(self) -> None:
        log = open(self.base / "patroni.log", "ab")
        self.process = subprocess.Popen(
            [*_as_postgres(), shutil.which("patroni") or "/usr/bin/patroni", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.base,
        )

    def kill(self) -> None:
        """SIGKILL Patroni and every PostgreSQL process of this member at the same instant."""
        victims = []
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            postmaster = int(pid_file.read_text().split()[0])
            children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
            victims = [postmaster, *map(int, children)]
        if self.process:
            patroni_pids = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
            victims += [self.process.pid, *map(int, patroni_pids)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process:
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


class PatroniCluster:
    """etcd + three Patroni members; `dcs` is the dynamic configuration bootstrapped into the cluster."""

    def __init__(self, dcs: dict, members: int = 3, scope: str = "failover"):
        self.base = Path(tempfile.mkdtemp(prefix="re-patroni-"))
        self.dcs = dcs
        self.scope = scope
        self.bin = postgres_bin_dir()
        self.etcd = Etcd(self.base)
        self.members = [Member(f"member{i}", self.base / f"member{i}") for i in range(members)]
        for member in self.members:
            member.base.mkdir()
            member.config.write_text(yaml.safe_dump(self._member_config(member), sort_keys=False))
        _chown(self.base)

    def _member_config(self, member: Member) -> dict:
        return {
            "scope": self.scope,
            "name": member.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{member.api_port}", "connect_address": f"127.0.0.1:{member.api_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd.client_port}"]},
            "bootstrap": {
                "dcs": self.dcs,
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{member.pg_port}",
                "connect_address": f"127.0.0.1:{member.pg_port}",
                "data_dir": str(member.data),
                "bin_dir": str(self.bin),
                "pgpass": str(member.base / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": SUPERUSER_PASSWORD},
                    "replication": {"username": "replicator", "password": REPLICATION_PASSWORD},
                    "rewind": {"username": "postgres", "password": SUPERUSER_PASSWORD},
                },
                "parameters": {"unix_socket_directories": str(member.base), "password_encryption": "scram-sha-256"},
            },
        }

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> "PatroniCluster":
        self.etcd.start()
        self.members[0].start()
        self.wait_for(lambda: self.leader() is not None, timeout, "no leader was elected")
        for member in self.members[1:]:
            member.start()
        self.wait_for(lambda: len(self.streaming_replicas()) == len(self.members) - 1, timeout, "replicas did not start streaming")
        if self.dcs.get("synchronous_mode"):
            self.wait_for(lambda: self.sync_standby() is not None, timeout, "no synchronous standby was chosen")
        return self

    def wait_healthy(self, timeout: float = 120) -> None:
        """A primary, every other member streaming, and (in synchronous mode) a synchronous standby chosen."""
        self.wait_for(lambda: self.leader() is not None, timeout, "no primary")
        self.wait_for(lambda: len(self.streaming_replicas()) == len(self.members) - 1, timeout, "replicas are not streaming")
        if self.dcs.get("synchronous_mode"):
            self.wait_for(lambda: self.sync_standby() is not None, timeout, "no synchronous standby")

    def cleanup(self) -> None:
        for member in self.members:
            member.kill()
        self.etcd.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def wait_for(condition, timeout: float, message: str, interval: float = 0.2) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{message} within {timeout:.0f} s")
            time.sleep(interval)
        return time.monotonic() - started

    # --- state ----------------------------------------------------------------------------------

    def _roles(self) -> dict[str, dict]:
        return {m.name: m.status() for m in self.members}

    def leader(self) -> Optional[Member]:
        for member in self.members:
            status = member.status()
            if status.get("role") in ("master", "primary") and status.get("state") == "running":
                return member
        return None

    def streaming_replicas(self) -> list[Member]:
        return [
            m for m in self.members
            if (s := m.status()).get("role") == "replica" and s.get("state") in ("running", "streaming")
            and s.get("replication_state", "streaming") == "streaming" and s.get("xlog", {}).get("received_location") is not None
        ]

    def sync_standby(self) -> Optional[str]:
        leader = self.leader()
        if leader is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{leader.api_port}/cluster", timeout=1) as response:
                cluster = json.loads(response.read())
        except (OSError, ValueError):
            return None
        for member in cluster.get("members", []):
            if member.get("role") in ("sync_standby", "quorum_standby") and member.get("state") in ("running", "streaming"):
                return member["name"]
        return None

    def conninfo(self, connect_timeout: int = 1) -> str:
        """libpq's multi-host form: the client lands on whichever member accepts writes, as the primary Service does."""
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m.pg_port) for m in self.members)
        return (
            f"host={hosts} port={ports} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres "
            f"target_session_attrs=read-write connect_timeout={connect_timeout}"
        )


@dataclass
class WriteLog:
    """What a writer saw: ids whose COMMIT was acknowledged, and when each attempt ended."""

    acknowledged: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)


class Writer(threading.Thread):
    """Commits one row at a time as fast as the cluster allows, reconnecting after any failure."""

    def __init__(self, cluster: PatroniCluster, table: str = "ledger"):
        super().__init__(daemon=True)
        self.cluster, self.table = cluster, table
        self.log = WriteLog()
        self._halt = threading.Event()
        self._next = 1

    def run(self) -> None:
        conn = None
        while not self._halt.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.cluster.conninfo(), autocommit=True)
                    # A commit must wait for the synchronous standby when the cluster asks for one.
                    conn.execute("SET statement_timeout = '5s'")
                conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (self._next,))
                self.log.acknowledged.append(self._next)
                self.log.ack_times.append(time.monotonic())
            except psycopg.Error:
                self.log.error_times.append(time.monotonic())
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                time.sleep(0.05)
            self._next += 1
        if conn is not None:
            conn.close()

    def stop(self) -> WriteLog:
        self._halt.set()
        self.join(30)
        return self.log


@dataclass
class FailoverResult:
    write_outage_seconds: float
    acknowledged: int
    lost: int
    old_primary: str
    new_primary: str
    rejoin_seconds: float


def _start_load(cluster: PatroniCluster, settle_seconds: float) -> tuple[Member, Writer]:
    """From a healthy cluster: an empty ledger and a writer committing into it for `settle_seconds`."""
    cluster.wait_healthy()
    leader = cluster.leader()
    assert leader is not None, "no primary"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY)")
        conn.execute("TRUNCATE ledger")
    writer = Writer(cluster)
    writer.start()
    time.sleep(settle_seconds)
    return leader, writer


def failover_once(cluster: PatroniCluster, settle_seconds: float = 3.0, rejoin_timeout: float = 180) -> FailoverResult:
    """Kill the primary under a steady write load; measure the outage, the lost commits and the rejoin."""
    leader, writer = _start_load(cluster, settle_seconds)
    leader.kill()
    # Measured from the moment every process of the old primary is gone.
    killed_at = time.monotonic()
    try:
        cluster.wait_for(
            lambda: writer.log.error_times and writer.log.ack_times[-1] > writer.log.error_times[-1] > killed_at,
            120, "writes did not resume after the failover", 0.05,
        )
        time.sleep(1.0)
    finally:
        log = writer.stop()
    # A reply already on its way when the primary died is not a resumption: count from the first failed write.
    first_error = next(t for t in log.error_times if t > killed_at)
    resumed_at = next(t for t in log.ack_times if t > first_error)
    cluster.wait_for(lambda: cluster.leader() not in (None, leader), 30, "no new primary reported itself")
    new_leader = cluster.leader()
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM ledger")}
    lost = [i for i in log.acknowledged if i not in present]

    rejoin_started = time.monotonic()
    leader.start()
    cluster.wait_for(lambda: leader in cluster.streaming_replicas(), rejoin_timeout, f"{leader.name} did not rejoin as a replica")
    rejoin_seconds = time.monotonic() - rejoin_started
    return FailoverResult(
        write_outage_seconds=resumed_at - killed_at,
        acknowledged=len(log.acknowledged),
        lost=len(lost),
        old_primary=leader.name,
        new_primary=new_leader.name,
        rejoin_seconds=rejoin_seconds,
    )


def prod_dcs() -> dict:
    """The prod stack's Patroni settings, with the values the operator always forces (use_slots off, pg_rewind on)."""
    from components.postgres import patroni_dcs
    from settings import PostgresSettings
    from tests.harness import decoded_config

    settings = PostgresSettings.model_validate(decoded_config("prod")["real-estate-ai:postgres"])
    return {**patroni_dcs(settings), "postgresql": {"use_slots": False, "use_pg_rewind": True,
                                                    "parameters": {"wal_log_hints": "on", "hot_standby": "on"}}}


def switchover_once(cluster: PatroniCluster, settle_seconds: float = 2.0) -> FailoverResult:
    """A planned switchover under write load, as the operator's spec.patroni.switchover asks Patroni for one."""
    leader, writer = _start_load(cluster, settle_seconds)
    request = urllib.request.Request(
        f"http://127.0.0.1:{leader.api_port}/switchover", data=json.dumps({"leader": leader.name}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200, response.read()
    try:
        cluster.wait_for(lambda: cluster.leader() not in (None, leader), 60, "the switchover named no new primary")
        cluster.wait_for(lambda: any(t > started for t in writer.log.ack_times[-5:]), 60, "writes did not resume", 0.05)
        time.sleep(1.0)
    finally:
        log = writer.stop()
    assert any(t > started for t in log.ack_times), "no write succeeded after the switchover"
    gaps = [b - a for a, b in zip(log.ack_times, log.ack_times[1:]) if b > started]
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM ledger")}
    rejoin = cluster.wait_for(lambda: leader in cluster.streaming_replicas(), 120, f"{leader.name} did not follow the new primary")
    return FailoverResult(
        write_outage_seconds=max(gaps) if gaps else 0.0,
        acknowledged=len(log.acknowledged),
        lost=len([i for i in log.acknowledged if i not in present]),
        old_primary=leader.name,
        new_primary=cluster.leader().name,
        rejoin_seconds=rejoin,
    )
