"""The Redis component, and its rendered redis.conf run by a real redis-server."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_client

from components.redis import DATA_PATH, PORT, SECRET_PATH, Redis, RedisArgs, render_redis_conf
from components.secrets import RedisCredentials
from settings import RedisSettings, Storage
from tests.harness import containers, run_component, value

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _redis():
    settings = RedisSettings(storage=Storage(size="3Gi"), maxmemory="256Mi")
    credentials = RedisCredentials("redis-credentials", "password", "requirepass.conf")
    return Redis("redis", RedisArgs("estate", "test", settings, credentials, protect=True))


def test_statefulset_reads_config_and_password_from_files():
    rendered, component = run_component(_redis)
    assert value(component.service_name) == "redis"
    sts = rendered.find("StatefulSet", "redis")
    (container,) = containers(sts)
    assert container["args"] == ["/etc/redis/redis.conf"]
    assert "env" not in container or not container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"data": DATA_PATH, "config": "/etc/redis", "credentials": SECRET_PATH, "tmp": "/tmp"}
    conf = rendered.find("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert conf == render_redis_conf(RedisSettings(storage=Storage(size="3Gi"), maxmemory="256Mi"))
    assert "requirepass" not in conf.replace("requirepass.conf", "")
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["real-estate-ai/config-checksum"]) == 64


def test_config_persists_with_aof_every_second():
    conf = render_redis_conf(RedisSettings(maxmemory="256Mi"))
    lines = set(conf.splitlines())
    assert {"appendonly yes", "appendfsync everysec", f"maxmemory {256 * 2**20}", f"include {SECRET_PATH}/requirepass.conf"} <= lines


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def real_redis(tmp_path: Path):
    """redis-server started with the component's redis.conf, paths moved into tmp_path."""
    port = _free_port()
    (tmp_path / "data").mkdir()
    (tmp_path / "requirepass.conf").write_text("requirepass s3cret-from-the-secret-file\n")
    conf = render_redis_conf(RedisSettings(maxmemory="64Mi"))
    conf = conf.replace(f"port {PORT}", f"port {port}").replace(f"dir {DATA_PATH}", f"dir {tmp_path / 'data'}")
    conf = conf.replace(f"{SECRET_PATH}/requirepass.conf", str(tmp_path / "requirepass.conf"))
    (tmp_path / "redis.conf").write_text(conf + "bind 127.0.0.1\n")
    process = subprocess.Popen([REDIS_SERVER, str(tmp_path / "redis.conf")], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, tmp_path
    process.terminate()
    process.wait(10)


def test_real_redis_requires_the_password_and_writes_the_aof(real_redis):
    port, tmp_path = real_redis
    anonymous = redis_client.Redis(port=port)
    with pytest.raises(redis_client.AuthenticationError):
        anonymous.set("k", "v")
    client = redis_client.Redis(port=port, password="s3cret-from-the-secret-file")
    client.set("listing:1", "3-bedroom")
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    time.sleep(1.5)
    aof_files = list((tmp_path / "data").rglob("*.aof"))
    assert aof_files and any(b"listing:1" in f.read_bytes() for f in aof_files)
