"""The Redis component, and its rendered redis.conf run by a real redis-server."""

import time
from pathlib import Path

import pytest
import redis as redis_client

from components.redis import DATA_PATH, SECRET_PATH, Redis, RedisArgs, render_redis_conf
from components.secrets import RedisCredentials, requirepass_conf
from settings import RedisSettings, Storage
from tests.harness import containers, run_component, value
from tests.services import PlatformRedis

def _redis():
    settings = RedisSettings(storage=Storage(size="3Gi"), maxmemory="256Mi")
    credentials = RedisCredentials("redis-credentials", "password", "requirepass.conf", "abc123")
    return Redis("redis", RedisArgs("estate", "test", settings, credentials, protect=True))


def test_statefulset_reads_config_and_password_from_files():
    rendered, component = run_component(_redis)
    assert value(component.service_name) == "redis"
    sts = rendered.find("StatefulSet", "redis")
    container, exporter = containers(sts)
    assert container["args"] == ["/etc/redis/redis.conf"]
    # The exporter beside it: the password from the same Secret, nothing mounted, its port on the Service.
    assert exporter["name"] == "exporter" and "volumeMounts" not in exporter
    env = {e["name"]: e for e in exporter["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-credentials", "key": "password"}
    assert env["REDIS_ADDR"]["value"] == "redis://127.0.0.1:6379"
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9121, "protocol": "TCP"}]
    assert {p["name"]: p["port"] for p in rendered.find("Service", "redis")["spec"]["ports"]} == {"redis": 6379, "metrics": 9121}
    assert "env" not in container or not container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"data": DATA_PATH, "config": "/etc/redis", "credentials": SECRET_PATH, "tmp": "/tmp"}
    conf = rendered.find("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert conf == render_redis_conf(RedisSettings(storage=Storage(size="3Gi"), maxmemory="256Mi"))
    assert "requirepass" not in conf.replace("requirepass.conf", "")
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["real-estate-ai/config-checksum"]) == 64


def test_probes_wait_for_the_aof_and_mounts_are_read_only():
    rendered, _ = run_component(_redis)
    container, exporter = containers(rendered.find("StatefulSet", "redis"))
    timing = lambda probe: {k: v for k, v in probe.items() if k not in ("exec", "tcpSocket")}
    # Five minutes to load the AOF before liveness takes over; then a dead Redis is restarted after 30 s.
    assert timing(container["startupProbe"]) == {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 30}
    assert timing(container["livenessProbe"]) == {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    assert timing(container["readinessProbe"]) == {"initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3}
    assert container["startupProbe"]["exec"] == container["livenessProbe"]["exec"] == container["readinessProbe"]["exec"]
    assert {m["name"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "data": False, "config": True, "credentials": True, "tmp": False}
    # The exporter: out of the Service after 30 s without an answer, restarted after a minute.
    assert timing(exporter["readinessProbe"]) == {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    assert timing(exporter["livenessProbe"]) == {"periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 3}


def test_config_persists_with_aof_every_second():
    conf = render_redis_conf(RedisSettings(maxmemory="256Mi"))
    lines = set(conf.splitlines())
    assert {"appendonly yes", "appendfsync everysec", f"maxmemory {256 * 2**20}", f"include {SECRET_PATH}/requirepass.conf"} <= lines


@pytest.fixture
def real_redis(tmp_path: Path):
    """redis-server started with the component's redis.conf and a password file, paths moved into tmp_path."""
    server = PlatformRedis(tmp_path, "redis", "s3cret-from-the-secret-file")
    server.start()
    yield server.port, server.data
    server.stop()


@pytest.mark.server
def test_real_redis_requires_the_password_and_writes_the_aof(real_redis):
    port, data = real_redis
    anonymous = redis_client.Redis(port=port)
    with pytest.raises(redis_client.AuthenticationError):
        anonymous.set("k", "v")
    client = redis_client.Redis(port=port, password="s3cret-from-the-secret-file")
    client.set("listing:1", "3-bedroom")
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    time.sleep(1.5)
    aof_files = list(data.rglob("*.aof"))
    assert aof_files and any(b"listing:1" in f.read_bytes() for f in aof_files)


# A space, both quotes, a backslash, a comment sign, a line break, a tab, an escape sequence, a non-ASCII letter: each
# would stop Redis at start unquoted (and Redis would print the line, password included, to its log).
HOSTILE_PASSWORDS = ['pass word with spaces', 'quote"d', "single'quoted", 'back\\slash\\', '#not-a-comment',
                     'line\nbreak', 'tab\there', '\x1b[31mred', 'pässwörd-密码', '\\x41 not an escape']


@pytest.mark.server
@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
def test_real_redis_reads_any_password_back_exactly_from_the_secrets_fragment(tmp_path: Path, password):
    server = PlatformRedis(tmp_path, "redis", password)
    try:
        client = server.start()
        assert client.ping()
        assert redis_client.Redis(port=server.port, password=password).set("k", "v")
        with pytest.raises(redis_client.AuthenticationError):
            redis_client.Redis(port=server.port, password=password + "x").set("k", "v")
    finally:
        server.stop()


def test_the_secrets_fragment_is_one_line_whatever_the_password():
    for password in HOSTILE_PASSWORDS:
        fragment = requirepass_conf(password)
        assert fragment.startswith('requirepass "') and fragment.endswith('"\n') and fragment.count("\n") == 1
