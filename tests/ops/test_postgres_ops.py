"""ops/postgres/restore.sh and switchover.sh with kubectl replaced by a fake on PATH: their checks, the resource
they apply, and their failure exits. Nothing here reaches a cluster."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.crd_schemas import errors

OPS = Path(__file__).resolve().parents[2] / "ops" / "postgres"
BACKUP_OPS = OPS.parent / "backup"
FAKE = Path(__file__).resolve().parent / "fake_kubectl.py"


@pytest.fixture
def kube(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(FAKE)
    state = tmp_path / "state"
    state.mkdir()
    (state / "cluster").write_text("")

    def run(script, *args, **files):
        for name, text in files.items():
            (state / name).write_text(text)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_KUBE": str(state),
               "RESTORE_POLL_SECONDS": "0", "SWITCHOVER_POLL_SECONDS": "0"}
        env["JOB_POLL_SECONDS"] = "0"
        path = OPS / script if (OPS / script).exists() else BACKUP_OPS / script
        return subprocess.run([str(path), *args], capture_output=True, text=True, env=env, timeout=60)

    run.state = state
    return run


def _applied(kube):
    """The resource the script applied; it must pass the operator's own CRD schema."""
    restore = yaml.safe_load((kube.state / "applied.yaml").read_text())
    assert errors(restore) == []
    return restore


def test_latest_restore_applies_a_restore_waits_and_verifies(kube):
    result = kube("restore.sh", "real-estate", "--latest", states="Starting\nRunning\nSucceeded\n", primaries="pod/postgres-instance1-a-0\n")
    assert result.returncode == 0, result.stderr
    restore = _applied(kube)
    assert restore["kind"] == "PerconaPGRestore" and restore["apiVersion"] == "pgv2.percona.com/v2"
    assert restore["spec"] == {"pgCluster": "postgres", "repoName": "repo1", "options": []}
    assert "primary postgres-instance1-a-0 accepts writes" in result.stdout
    calls = (kube.state / "calls").read_text()
    # Never touches what Pulumi owns: no scale, no patch, no delete.
    assert not any(verb in calls for verb in (" scale ", " patch ", " delete ", " edit "))


def test_point_in_time_restore_from_the_offsite_repository(kube):
    result = kube("restore.sh", "real-estate", "--time", "2026-11-28 10:15:00+00", "--repo", "repo2",
                  states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert _applied(kube)["spec"] == {
        # Quoted: the operator passes the options through a shell (`bash -c "pgbackrest restore ${opts}"`).
        "pgCluster": "postgres", "repoName": "repo2", "options": ["--type=time", '--target="2026-11-28 10:15:00+00"'],
    }


def test_a_failed_restore_is_reported_at_once(kube):
    result = kube("restore.sh", "real-estate", "--latest", "--timeout", "3600", states="Running\nFailed\n")
    assert result.returncode == 1
    assert "reports restore restore-" in result.stderr and "failed" in result.stderr
    # Three polls, not an hour of them.
    assert (kube.state / "calls").read_text().count("perconapgrestore restore-") <= 4


@pytest.mark.parametrize("args,message", [
    (["--time", "yesterday"], "is not a time like"),
    (["--time", "2026-11-28 10:15:00"], "is not a time like"),  # no offset
    (["--time", "2099-01-01 00:00:00+00"], "is in the future"),
    (["--time", "2026-02-30 10:00:00+00"], "is not a valid time"),
    (["--latest", "--repo", "repo3"], "--repo must be repo1"),
    (["--latest", "--timeout", "soon"], "--timeout must be"),
    ([], "usage:"),
])
def test_bad_arguments_are_refused_before_anything_is_applied(kube, args, message):
    result = kube("restore.sh", "real-estate", *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (kube.state / "applied.yaml").exists()


@pytest.mark.parametrize("restores", ["postgres=Running\n", "other=Succeeded\npostgres=\n"])
def test_a_second_restore_is_refused_while_one_runs_or_waits(kube, restores):
    result = kube("restore.sh", "real-estate", "--latest", restores=restores)
    assert result.returncode == 1 and "already running" in result.stderr
    assert not (kube.state / "applied.yaml").exists()


def test_two_primaries_after_a_restore_fail_the_verification(kube):
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/a-0 pod/b-0\n")
    assert result.returncode == 1 and "more than one primary" in result.stderr


def test_a_missing_cluster_is_named(kube):
    (kube.state / "cluster").unlink()
    result = kube("restore.sh", "real-estate", "--latest")
    assert result.returncode == 1 and "no PerconaPGCluster 'postgres' in namespace 'real-estate'" in result.stderr


def test_a_primary_still_in_recovery_fails_the_verification(kube):
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n", in_recovery="t\n")
    assert result.returncode == 1 and "still in recovery" in result.stderr


def test_switchover_triggers_the_operator_and_waits_for_a_new_primary(kube):
    result = kube("switchover.sh", "real-estate", primaries="pod/a-0\npod/a-0\npod/a-0\npod/b-0\n", replicas="pod/b-0\npod/c-0\n")
    assert result.returncode == 0, result.stderr
    assert "b-0 is primary and accepts writes" in result.stdout
    calls = (kube.state / "calls").read_text()
    assert "annotate perconapgcluster postgres --overwrite pgv2.percona.com/trigger-switchover=" in calls


def test_switchover_without_a_replica_is_refused(kube):
    result = kube("switchover.sh", "real-estate", primaries="pod/a-0\n", replicas="")
    assert result.returncode == 1 and "no replica" in result.stderr
    assert "annotate" not in (kube.state / "calls").read_text()


def test_switchover_that_never_happens_times_out(kube):
    result = kube("switchover.sh", "real-estate", "--timeout", "1", primaries="pod/a-0\n", replicas="pod/b-0\n")
    assert result.returncode == 1 and "still a-0" in result.stderr


@pytest.mark.parametrize("script,args", [("k8s-recover-milvus.sh", ["real-estate", "daily_20261128030000"]),
                                         ("k8s-recover-redis.sh", ["real-estate"])])
def test_recovery_jobs_that_fail_are_reported_at_once(kube, script, args):
    result = kube(script, *args, job_succeeded="", job_failed="1")
    assert result.returncode == 1 and "failed" in result.stderr
    ok = kube(script, *args, job_succeeded="1", job_failed="")
    assert ok.returncode == 0, ok.stderr
