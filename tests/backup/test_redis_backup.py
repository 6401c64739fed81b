"""Redis snapshot and restore with ops/backup scripts, against real redis-server processes."""

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import PlatformRedis, free_port

pytestmark = pytest.mark.server

SCRIPTS = Path(__file__).resolve().parents[2] / "ops" / "backup"
PASSWORD = "redis-backup-test-password-0123456789"


@pytest.fixture
def source(tmp_path):
    server = PlatformRedis(tmp_path, "source", PASSWORD)
    client = server.start()
    yield server, client
    server.stop()


def _run(script, *args, **env):
    return subprocess.run([str(SCRIPTS / script), *args], capture_output=True, text=True, env={**os.environ, **env})


def _snapshot(client) -> dict:
    """Every key with its type-aware value and TTL presence: equal snapshots mean equal datasets."""
    result = {}
    for key in client.scan_iter():
        kind = client.type(key).decode()
        value = {
            "string": lambda: client.get(key),
            "hash": lambda: client.hgetall(key),
            "list": lambda: client.lrange(key, 0, -1),
            "set": lambda: sorted(client.smembers(key)),
            "zset": lambda: client.zrange(key, 0, -1, withscores=True),
        }[kind]()
        result[key] = (kind, value, client.ttl(key) > 0)
    return result


def _fill(client):
    for i in range(2000):
        client.set(f"listing:{i}", json.dumps({"id": i, "price": 1000 * i}))
    client.hset("user:42", mapping={"name": "Li", "city": "Shanghai"})
    client.rpush("recent", *[f"listing:{i}" for i in range(50)])
    client.sadd("cities", "Shanghai", "Beijing", "Shenzhen")
    client.zadd("popular", {"listing:1": 9.5, "listing:2": 7.25})
    client.set("session:abc", "token", ex=3600)


def test_snapshot_restores_into_a_fresh_server_with_the_same_data(source, tmp_path):
    server, client = source
    _fill(client)
    expected = _snapshot(client)
    backups = tmp_path / "backups"
    backups.mkdir()
    (tmp_path / "pw").write_text(PASSWORD)
    backup = _run("redis-backup.sh", REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port),
                  REDIS_PASSWORD_FILE=str(tmp_path / "pw"), BACKUP_DIR=str(backups))
    assert backup.returncode == 0, backup.stderr
    report = json.loads(backup.stdout.splitlines()[-1])
    archive = backups / report["file"]
    assert archive.exists() and (backups / f"{report['file']}.sha256").exists()
    assert gzip.decompress(archive.read_bytes())[:5] == b"REDIS"
    assert PASSWORD not in backup.stdout + backup.stderr

    client.flushall()  # the disaster
    target = PlatformRedis(tmp_path, "restored", PASSWORD)
    # Given the backup directory, the newest snapshot is restored.
    older = backups / "dump-20200101T000000Z.rdb.gz"
    older.write_bytes(b"not even gzip")
    restore = _run("redis-restore.sh", str(backups), str(target.data))
    assert restore.returncode == 0, restore.stderr
    assert json.loads(restore.stdout.splitlines()[-1])["keys"] == len(expected)
    restored = target.start()
    try:
        assert _snapshot(restored) == expected
        # appendonly stays on: the restored dataset is persisted in a new AOF.
        assert restored.config_get("appendonly") == {"appendonly": "yes"}
        restored.set("after-restore", "1")
        time.sleep(1.2)
        assert any(b"after-restore" in f.read_bytes() for f in (target.data / "appendonlydir").glob("*.aof"))
    finally:
        target.stop()


def test_restore_refuses_a_damaged_backup_and_changes_nothing(source, tmp_path):
    server, client = source
    client.set("k", "v")
    backups = tmp_path / "backups"
    backups.mkdir()
    (tmp_path / "pw").write_text(PASSWORD)
    report = json.loads(_run("redis-backup.sh", REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port),
                             REDIS_PASSWORD_FILE=str(tmp_path / "pw"), BACKUP_DIR=str(backups)).stdout.splitlines()[-1])
    archive = backups / report["file"]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    target = tmp_path / "target"
    target.mkdir()
    (target / "dump.rdb").write_bytes(b"existing")
    result = _run("redis-restore.sh", str(archive), str(target))
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert (target / "dump.rdb").read_bytes() == b"existing"


def test_backup_prunes_snapshots_past_retention(source, tmp_path):
    server, _ = source
    backups = tmp_path / "backups"
    backups.mkdir()
    (tmp_path / "pw").write_text(PASSWORD)
    old = backups / "dump-20260101T000000Z.rdb.gz"
    recent = backups / "dump-20261127T000000Z.rdb.gz"
    for path, age_days in ((old, 8), (recent, 6)):
        path.write_bytes(b"x")
        Path(f"{path}.sha256").write_text("x")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    result = _run("redis-backup.sh", REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port),
                  REDIS_PASSWORD_FILE=str(tmp_path / "pw"), BACKUP_DIR=str(backups), RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["pruned"] == 1
    assert not old.exists() and not Path(f"{old}.sha256").exists() and recent.exists()


def test_backup_fails_clearly_when_redis_is_unreachable(tmp_path):
    result = _run("redis-backup.sh", REDIS_HOST="127.0.0.1", REDIS_PORT=str(free_port()), BACKUP_DIR=str(tmp_path))
    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []
