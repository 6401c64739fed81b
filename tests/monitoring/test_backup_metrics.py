"""Backup freshness from what the Percona operator v3.0.0 really writes: PerconaPGBackup objects as its schedule creates
them (percona/controller/pgcluster/schedule.go: generateName <cluster>-<repo>-<type>-, spec.pgCluster, spec.repoName,
spec.options) and as its backup controller finishes them (status.state, status.completed from the Job's completion,
status.backupType from pgBackRest), turned into metrics by kube-state-metrics' own code (gotools/ksm-crs) with
monitoring/kube-state-metrics/percona-backups.yaml, and those metrics fed to the backup alerts in promtool."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tests.gotools import binary
from tests.monitoring.rules import NAMESPACE, rule_files

CONFIG = Path(__file__).resolve().parents[2] / "monitoring" / "kube-state-metrics" / "percona-backups.yaml"
HOUR = 3600
SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>.*)\} (?P<value>\S+)$')


def _at(seconds: float) -> str:
    """A timestamp in promtool's test time (which starts at the Unix epoch), as Kubernetes writes it."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _backup(repo: str, kind: str, suffix: str, created_h: float, state: str = "", completed_h: float | None = None) -> dict:
    status: dict = {}
    if state:
        status = {"state": state, "storageType": "s3" if repo == "repo2" else "filesystem", "jobName": f"postgres-backup-{suffix}"}
    if completed_h is not None:
        # The controller's success path: the Job's completion time, pgBackRest's own word for the type, and the
        # latest restorable time in the operator's own (non-RFC 3339) format.
        status.update({"completed": _at(completed_h * HOUR), "backupType": kind,
                       "latestRestorableTime": "1970-01-02 03:04:05.000000+0000"})
    return {"apiVersion": "pgv2.percona.com/v2", "kind": "PerconaPGBackup",
            "metadata": {"name": f"postgres-{repo}-{kind}-{suffix}", "namespace": NAMESPACE, "uid": f"uid-{suffix}",
                         "creationTimestamp": _at(created_h * HOUR)},
            "spec": {"pgCluster": "postgres", "repoName": repo, "options": [f"--type={kind}"]},
            **({"status": status} if status else {})}


def _metrics(objects: list[dict], tmp_path: Path) -> list[tuple[str, str, float]]:
    path = tmp_path / "backups.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    done = subprocess.run([binary("ksm-crs"), "--config", str(CONFIG), "--objects", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [(m["name"], m["labels"], float(m["value"])) for m in map(SAMPLE.match, done.stdout.splitlines()) if m]


def test_kube_state_metrics_reports_completion_creation_and_state_per_repository(tmp_path):
    metrics = _metrics([_backup("repo1", "full", "a", created_h=2, state="Succeeded", completed_h=3),
                        _backup("repo2", "incr", "b", created_h=4, state="Failed"),
                        _backup("repo1", "incr", "c", created_h=5)], tmp_path)
    completed = [(labels, value) for name, labels, value in metrics if name == "kube_customresource_perconapgbackup_completed_timestamp_seconds"]
    assert len(completed) == 1 and completed[0][1] == 3 * HOUR
    for label in (f'namespace="{NAMESPACE}"', 'name="postgres-repo1-full-a"', 'cluster="postgres"', 'repo="repo1"', 'backup_type="full"'):
        assert label in completed[0][0]
    created = {re.search(r'name="([^"]+)"', labels)[1]: value for name, labels, value in metrics
               if name == "kube_customresource_perconapgbackup_created_timestamp_seconds"}
    assert created == {"postgres-repo1-full-a": 2 * HOUR, "postgres-repo2-incr-b": 4 * HOUR, "postgres-repo1-incr-c": 5 * HOUR}
    states = {(re.search(r'name="([^"]+)"', labels)[1], re.search(r'state="([^"]+)"', labels)[1]) for name, labels, value in metrics
              if name == "kube_customresource_perconapgbackup_state" and value == 1}
    assert states == {("postgres-repo1-full-a", "Succeeded"), ("postgres-repo2-incr-b", "Failed")}
    # The latest restorable time is in a format kube-state-metrics cannot read as a number: no series of it.
    assert not [m for m in metrics if "restorable" in m[0]]


def _promtool(metrics: list[tuple[str, str, float]], at_hours: int, alert: str, tmp_path: Path) -> str:
    samples = at_hours * 4 + 1
    test = {"rule_files": [str(p) for p in rule_files()], "evaluation_interval": "15m", "tests": [{
        "interval": "15m",
        "input_series": [{"series": f"{name}{{{labels}}}", "values": f"{value:.0f}x{samples}"} for name, labels, value in metrics],
        "alert_rule_test": [{"eval_time": f"{at_hours}h", "alertname": alert, "exp_alerts": []}]}]}
    path = tmp_path / "backups.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    return "" if done.returncode == 0 else (done.stdout + done.stderr).split("got:")[-1]


def test_the_backup_alerts_read_what_kube_state_metrics_reports(tmp_path):
    # At 30 h: repo1's last full completed 27 h ago (fires); repo2's 25 h ago (silent); repo1's last backup of any
    # type is an incremental 1 h ago (silent); repo2's newest run failed 2 h ago (fires).
    metrics = _metrics([_backup("repo1", "full", "a", created_h=2.9, state="Succeeded", completed_h=3),
                        _backup("repo2", "full", "b", created_h=4.9, state="Succeeded", completed_h=5),
                        _backup("repo1", "incr", "c", created_h=28.9, state="Succeeded", completed_h=29),
                        _backup("repo2", "full", "d", created_h=28, state="Failed")], tmp_path)
    full = _promtool(metrics, 30, "PostgresFullBackupTooOld", tmp_path)
    assert 'repo="repo1"' in full and 'repo="repo2"' not in full and 'severity="P1"' in full
    assert _promtool(metrics, 30, "PostgresIncrementalBackupTooOld", tmp_path) == ""
    failed = _promtool(metrics, 30, "PostgresBackupFailed", tmp_path)
    assert 'name="postgres-repo2-full-d"' in failed and 'repo="repo1"' not in failed
