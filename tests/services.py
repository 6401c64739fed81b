"""Real servers for the tests, on free loopback ports: Debian's PostgreSQL and Redis, and milvus-lite.

Each can be stopped and started again, so tests can take a dependency away and bring it back.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import redis

from components.redis import DATA_PATH, PORT, SECRET_PATH, render_redis_conf
from components.secrets import requirepass_conf
from settings import RedisSettings


# Whether the running test may start a server. tests/conftest.py sets it from the test's `server` mark before each
# test's setup; every server here listens on a port from free_port(), so an unmarked test that starts one fails at once
# instead of slipping into `make check`, the tier without servers. Programs outside pytest (bench/) are unaffected.
SERVERS_ALLOWED = True


def free_port() -> int:
    if not SERVERS_ALLOWED:
        raise RuntimeError("this test starts a server on loopback but is not marked `server` "
                           "(add `pytestmark = pytest.mark.server` to its module): make check runs only unmarked tests")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server installed from Debian's packages."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found; install Debian's postgresql package")
    return Path(found[-1]).parent


class PostgresServer:
    """A throwaway cluster. As root, the server runs as the `postgres` user, as initdb requires.

    Like the official image: the local socket trusts (for pgBackRest and probes), TCP needs the password."""

    def __init__(self, password: str = "test-password-0123456789abcdef", base: Optional[Path] = None):
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.password = password
        self.base = Path(tempfile.mkdtemp(prefix="re-pg-", dir=base or "/tmp"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "run"
        self.socket_dir.mkdir()
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(self, *command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run as the server's user, from a directory it can read (PostgreSQL tools resolve the cwd)."""
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        kwargs.setdefault("cwd", self.base)
        return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, **kwargs)

    def give(self, path: Path) -> None:
        """Hand a file or directory tree to the server's user."""
        if self._user:
            entry = pwd.getpwnam(self._user)
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                os.chown(item, entry.pw_uid, entry.pw_gid)

    def init(self, extra_conf: str = "") -> "PostgresServer":
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.socket_dir}'\n")
            conf.write("fsync = on\n" + extra_conf)
        return self

    def start(self) -> "PostgresServer":
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
            capture_output=True, text=True, env={**os.environ, "PGPASSWORD": self.password}, check=True,
        )
        return result.stdout.strip()

    def _processes(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, walwriter, …)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # pid (comm) state ppid …: comm may hold spaces, so split after its closing parenthesis.
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def _signal(self, signal_number: int) -> None:
        for pid in self._processes():
            # A child may exit between the listing and the signal (the archiver retrying a failing command does).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)

    def pause(self) -> None:
        """Hang the whole server (SIGSTOP to every process): connections stay open and nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.resume()
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class _ProcessServer:
    """A server this test run started as a child process, with a scratch directory of its own."""

    process: Optional[subprocess.Popen] = None
    dir: Path

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def cleanup(self) -> None:
        self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pause(self) -> None:
        """Hang the server (SIGSTOP): connections stay open and nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGCONT)


class RedisServer(_ProcessServer):
    def __init__(self, password: str = "redis-test-password-0123456789", base: Optional[Path] = None):
        self.port = free_port()
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="re-redis-", dir=base or "/tmp"))
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--requirepass", self.password, "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def restart_empty(self) -> None:
        """A restart that lost the data (no volume, or a new pod): same port, nothing in it."""
        self.stop()
        for path in self.dir.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()


class PlatformRedis(_ProcessServer):
    """redis-server with the platform's rendered redis.conf (AOF on), its paths moved under `root/name`."""

    def __init__(self, root: Path, name: str, password: str):
        self.port = free_port()
        self.password = password
        self.dir = root / name
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        secret = self.dir / "requirepass.conf"
        secret.write_text(requirepass_conf(password))
        conf = render_redis_conf(RedisSettings(maxmemory="64Mi"))
        conf = conf.replace(f"port {PORT}", f"port {self.port}").replace(f"dir {DATA_PATH}", f"dir {self.data}")
        conf = conf.replace(f"{SECRET_PATH}/requirepass.conf", str(secret))
        self.conf = self.dir / "redis.conf"
        self.conf.write_text(conf + "bind 127.0.0.1\n")

    def start(self):
        """Start and wait until the dataset is loaded; returns a client logged in with the password."""
        self.process = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", str(self.conf)], stdout=subprocess.DEVNULL)
        wait_for_port(self.port)
        client = redis.Redis(port=self.port, password=self.password)
        deadline = time.monotonic() + 30
        while client.info("persistence")["loading"]:
            assert time.monotonic() < deadline, "redis-server did not finish loading"
            time.sleep(0.1)
        return client


class MilvusLiteServer(_ProcessServer):
    """milvus-lite's gRPC server: the Milvus protocol pymilvus speaks, from PyPI."""

    def __init__(self, base: Optional[Path] = None):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="re-milvus-", dir=base or "/tmp"))
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "MilvusLiteServer":
        executable = Path(sys.executable).parent / "milvus-lite"
        self.process = subprocess.Popen(
            [str(executable), "server", "--data-dir", str(self.dir / "data"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 60)
        return self

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
