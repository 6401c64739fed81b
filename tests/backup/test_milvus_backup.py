"""ops/backup/milvus-backup.sh run for real with a stand-in for the milvus-backup binary (the real one needs a
Milvus server): naming, retention by name, refusals, and the JSON report."""

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "backup" / "milvus-backup.sh"

FAKE = """#!/bin/sh
# Logs every call; `list` prints $FAKE_DIR/list as the real tool does (a banner on stdout, the names through
# cobra's Println, i.e. on stderr); FAKE_FAIL names a subcommand that fails.
echo "$*" >> "$FAKE_DIR/calls"
[ "$1" = "${FAKE_FAIL:-none}" ] && { echo "fake: $1 failed" >&2; exit 1; }
[ "$1" = list ] && { echo "milvus-backup v0.5.16"; { echo ">> Backups:"; cat "$FAKE_DIR/list"; } >&2; }
exit 0
"""


@pytest.fixture
def tool(tmp_path):
    fake = tmp_path / "milvus-backup"
    fake.write_text(FAKE)
    fake.chmod(0o755)

    def run(*args, listing="", **env):
        (tmp_path / "list").write_text(listing)
        result = subprocess.run(
            ["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
            env={**os.environ, "MILVUS_BACKUP": str(fake), "MILVUS_BACKUP_CONFIG": "/etc/backup.yaml", "FAKE_DIR": str(tmp_path), **env},
        )
        calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
        return result, calls

    return run


def _stamp(days_ago: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return "daily_" + moment.strftime("%Y%m%d%H%M%S")


def test_create_names_the_backup_and_deletes_only_its_own_old_ones(tool):
    old, older, recent = _stamp(8), _stamp(30), _stamp(6.9)
    listing = "\n".join([older, old, recent, "manual_before_upgrade", "daily_garbage"]) + "\n"
    result, calls = tool("create", listing=listing, RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    created = calls[0].split()
    assert created[:2] == ["create", "-n"] and created[2].startswith("daily_") and created[3:] == ["--config", "/etc/backup.yaml"]
    deleted = sorted(c.split()[2] for c in calls if c.startswith("delete"))
    assert deleted == sorted([old, older])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report | {"time": None, "seconds": None} == {
        "time": None, "job": "milvus-backup", "action": "create", "status": "ok", "backup": created[2],
        "seconds": None, "deleted": 2, "retention_days": 7,
    }


def test_a_failed_backup_deletes_nothing(tool):
    result, calls = tool("create", listing=_stamp(30) + "\n", FAKE_FAIL="create")
    assert result.returncode == 1
    assert not [c for c in calls if c.startswith(("list", "delete"))]
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "failed"


@pytest.mark.parametrize("args,env,message", [
    (["create"], {"RETENTION_DAYS": "a week"}, "RETENTION_DAYS must be a whole number"),
    (["create"], {"RETENTION_DAYS": "0"}, "RETENTION_DAYS must be at least 1"),
    (["restore"], {}, "restore needs a backup name"),
    (["restore", "x; rm -rf /"], {}, "restore needs a backup name"),
    (["restore", "daily_1\nother"], {}, "restore needs a backup name"),
    (["weekly"], {}, "usage:"),
])
def test_bad_requests_are_refused_before_the_tool_runs(tool, args, env, message):
    result, calls = tool(*args, **env)
    assert result.returncode == 2 and message in result.stderr
    assert calls == []


def test_restore_runs_the_named_backup(tool):
    result, calls = tool("restore", "daily_20261101020000")
    assert result.returncode == 0, result.stderr
    assert calls == ["restore -n daily_20261101020000 --rebuild_index --config /etc/backup.yaml"]
