"""ops/postgres/restore.sh and switchover.sh with kubectl replaced by a fake on PATH: their checks, the resource
they apply, and their failure exits. Nothing here reaches a cluster."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.crd_schemas import errors
from tests.ops.archive_fixture import FULL, INCR, segment, write_repository

OPS = Path(__file__).resolve().parents[2] / "ops" / "postgres"
BACKUP_OPS = OPS.parent / "backup"
FAKE = Path(__file__).resolve().parent / "fake_kubectl.py"


@pytest.fixture
def kube(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(FAKE)
    # The fake's `#!/usr/bin/env python3` (and the scripts' python3) finds an interpreter that starts fast: the
    # system's (11 ms), else this one's, never a version manager's shim (pyenv's costs ~80 ms a call, and a restore
    # calls kubectl dozens of times).
    (bin_dir / "python3").symlink_to("/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys._base_executable)
    state = tmp_path / "state"
    state.mkdir()
    (state / "cluster").write_text("")
    # A cluster that can be restored: both repositories continuous to segment 10, snapshots supported, and the
    # restore's promotion just past the archive's end.
    for repo in ("repo1", "repo2"):
        write_repository(state / repo, [FULL, INCR], {1: range(1, 11)})
    (state / "snapshot_api").write_text("volumesnapshots.snapshot.storage.k8s.io\n")
    (state / "pvcs").write_text("postgres-instance1-abcd-pgdata\npostgres-instance1-efgh-pgdata\n")
    (state / "history").write_text("1\t0/A000060\tno recovery target specified\n")

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
    # Pinned to the timeline the archive check walked (1 here), so a second attempt cannot follow the first's.
    assert restore["spec"] == {"pgCluster": "postgres", "repoName": "repo1",
                               "options": ["--recovery-option=recovery_target_timeline=1"]}
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
    (["--latest", "--no-snapshot", "--snapshot-class", "x"], "not with --no-snapshot"),
    (["--latest", "--snapshot-class", "Bad_Class"], "--snapshot-class must be"),
    (["--latest", "--cluster", "pg;rm"], "is not a resource name"),
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


def _snapshots(kube) -> list:
    path = kube.state / "snapshots.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d] if path.exists() else []


def _restores(kube) -> list:
    path = kube.state / "applied-restores.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d] if path.exists() else []


def _gap(kube, repo: str, *missing: int) -> None:
    write_repository(kube.state / repo, [FULL, INCR], {1: [n for n in range(1, 11) if n not in missing]})


def test_every_data_volume_is_snapshotted_before_the_operator_restores_over_it(kube):
    result = kube("restore.sh", "real-estate", "--latest", "--snapshot-class", "csi-snapclass",
                  states="Succeeded\n", primaries="pod/p-0\n", snapshot_states="false|\ntrue|\ntrue|\n")
    assert result.returncode == 0, result.stderr
    snapshots = _snapshots(kube)
    assert [s["spec"]["source"]["persistentVolumeClaimName"] for s in snapshots] == [
        "postgres-instance1-abcd-pgdata", "postgres-instance1-efgh-pgdata"]
    assert all(s["apiVersion"] == "snapshot.storage.k8s.io/v1" and s["spec"]["volumeSnapshotClassName"] == "csi-snapclass"
               for s in snapshots)
    calls = (kube.state / "calls").read_text()
    # Both snapshots ready before the restore is applied.
    assert calls.index("volumesnapshot postgres-instance1-efgh-pgdata-before-") < calls.index("apply -f -\n", calls.rindex("volumesnapshot"))
    assert "restored from repo1 to the archive's end (recovery ended at 0/A000060)" in result.stdout


def test_without_a_snapshot_api_the_restore_is_refused_unless_told_to_go_without(kube):
    (kube.state / "snapshot_api").unlink()
    refused = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n")
    assert refused.returncode == 1 and "no VolumeSnapshot API" in refused.stderr and "--no-snapshot" in refused.stderr
    assert _restores(kube) == []
    deliberate = kube("restore.sh", "real-estate", "--latest", "--no-snapshot", states="Succeeded\n", primaries="pod/p-0\n")
    assert deliberate.returncode == 0, deliberate.stderr
    assert len(_restores(kube)) == 1 and _snapshots(kube) == []


def test_a_failed_snapshot_stops_before_anything_is_restored(kube):
    result = kube("restore.sh", "real-estate", "--latest", snapshot_states="false|\nfalse|volume is busy\n")
    assert result.returncode == 1 and "snapshot of postgres-instance1-abcd-pgdata failed: volume is busy" in result.stderr
    assert _restores(kube) == []


def test_a_gap_in_the_chosen_repository_restores_from_the_other(kube):
    _gap(kube, "repo1", 8)
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert f"segment(s) missing after backup {INCR['label']}: {segment(1, 8)}" in result.stderr
    assert "repo1 cannot reach the target" in result.stderr and "repo2 can reach the target" in result.stdout
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo2"]
    assert "--repo=2" in (kube.state / "calls").read_text()


def test_gaps_in_both_repositories_change_nothing(kube):
    _gap(kube, "repo1", 8)
    _gap(kube, "repo2", 9)
    result = kube("restore.sh", "real-estate", "--latest")
    assert result.returncode == 1 and "no repository can restore 'postgres'" in result.stderr and "nothing was changed" in result.stderr
    assert _restores(kube) == [] and _snapshots(kube) == []


def test_an_unreachable_offsite_store_does_not_stop_a_restore_from_repo1(kube):
    (kube.state / "repo2" / "unreachable").write_text("")
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert "repo2 could not be read" in result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo1"]


def test_a_recovery_that_stops_short_of_the_archive_is_restored_again_from_the_other_repository(kube):
    # The first restore's promotion happened in segment 7 (a damaged segment 8 the listing could not show).
    (kube.state / "history").write_text("1\t0/7FFFF00\tno recovery target specified\n")
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 1
    assert "recovery from repo1 ended at 0/7FFFF00 on timeline 1, before the archive's end 0/A000000" in result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo1", "repo2"]
    assert "VolumeSnapshots labelled real-estate-ai/restore=restore-" in result.stderr


def test_the_other_repository_is_used_when_the_first_recovery_stopped_short(kube):
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n",
                  history="1\t0/7FFFF00\tx\n1\t0/A000060\tx\n")
    assert result.returncode == 0, result.stderr
    restores = _restores(kube)
    assert [r["spec"]["repoName"] for r in restores] == ["repo1", "repo2"]
    # The second attempt follows the archive's timeline, not the short one the first attempt created.
    assert restores[1]["spec"]["options"] == ["--recovery-option=recovery_target_timeline=1"]
    assert "restored from repo2 to the archive's end (recovery ended at 0/A000060)" in result.stdout


def test_a_recovery_that_ended_on_another_timeline_does_not_count_as_reaching_the_end(kube):
    # Past the end's position, but having left timeline 2 (a former attempt's), not the archive's timeline 1.
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n",
                  history="2\t0/B000000\tx\n")
    assert result.returncode == 1
    assert "ended at 0/B000000 on timeline 2, before the archive's end 0/A000000 on timeline 1" in result.stderr


def test_latest_restores_from_the_repository_whose_archive_goes_further(kube):
    """repo2 received two segments repo1 never did (repo1's store was down a while): restoring from repo1 first would
    succeed, reach repo1's end and lose them."""
    write_repository(kube.state / "repo2", [FULL, INCR], {1: range(1, 13)})
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n",
                  history="1\t0/C000060\tx\n")
    assert result.returncode == 0, result.stderr
    assert "repo2's archive goes further (0/C000000) than repo1's (0/A000000): restoring from repo2 first" in result.stdout
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo2"]


def test_a_repository_asked_for_is_used_with_a_warning_when_the_other_goes_further(kube):
    write_repository(kube.state / "repo2", [FULL, INCR], {1: range(1, 13)})
    result = kube("restore.sh", "real-estate", "--latest", "--repo", "repo1", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert ("repo2's archive goes further (0/C000000 on timeline 1) than repo1's (0/A000000); restoring from repo1 as asked "
            "loses what lies between") in result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo1"]


def test_a_latest_restore_is_not_stopped_by_a_gap_only_older_backups_cross(kube):
    # Segment 4 lies between the full and the newest (incremental) backup: a restore to latest never reads it.
    _gap(kube, "repo1", 4)
    result = kube("restore.sh", "real-estate", "--latest", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo1"]


def test_a_time_before_the_oldest_backup_is_refused_with_the_earliest_possible(kube):
    result = kube("restore.sh", "real-estate", "--time", "2026-11-01 00:00:00+00")
    assert result.returncode == 1
    assert "the earliest time it can restore is 2026-11-18 " in result.stderr
    assert _restores(kube) == [] and _snapshots(kube) == []


def test_a_time_restore_prefers_a_repository_without_a_gap_and_accepts_one_with_a_warning(kube):
    _gap(kube, "repo1", 9)
    result = kube("restore.sh", "real-estate", "--time", "2026-11-28 10:15:00+00", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo2"]
    _gap(kube, "repo2", 9)
    (kube.state / "applied-restores.yaml").unlink()
    result = kube("restore.sh", "real-estate", "--time", "2026-11-28 10:15:00+00", states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert "usable only if '2026-11-28 10:15:00+00' lies before it" in result.stderr
    assert [r["spec"]["repoName"] for r in _restores(kube)] == ["repo1"]


def test_an_older_backup_set_is_restored_when_asked(kube):
    result = kube("restore.sh", "real-estate", "--latest", "--set", FULL["label"], states="Succeeded\n", primaries="pod/p-0\n")
    assert result.returncode == 0, result.stderr
    assert _applied(kube)["spec"]["options"] == [f"--set={FULL['label']}", "--recovery-option=recovery_target_timeline=1"]
    assert "repo-ls --repo=1" in (kube.state / "calls").read_text()
    bad = kube("restore.sh", "real-estate", "--latest", "--set", "latest")
    assert bad.returncode == 2 and "is not a backup label" in bad.stderr


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


# --- promote-standby.sh ---------------------------------------------------------------------------------------------

STANDBY_LEADER = 'postgres-instance1-b-0\t{"role":"standby_leader","state":"streaming"}\npostgres-instance1-c-0\t{"role":"replica"}\n'


def _archive_written(kube, seconds_ago: int, timelines=None, histories=None) -> None:
    now = int(time.time())
    write_repository(kube.state / "repo2", [FULL, INCR], timelines or {1: range(1, 11)}, histories,
                     written=lambda timeline, n: now - seconds_ago - (10 - n) * 60)


def test_a_standby_whose_primary_stopped_archiving_is_ready_to_promote(kube):
    _archive_written(kube, 900)
    result = kube("promote-standby.sh", "real-estate", "check", instance_statuses=STANDBY_LEADER, replay="0/A000060|1795000000|901\n")
    assert result.returncode == 0, result.stderr
    assert "standby leader postgres-instance1-b-0 replayed to 0/A000060; its newest commit is 901 s old" in result.stdout
    assert f"the off-site archive ends at {segment(1, 10)} (0/A000000), written 9" in result.stdout
    assert "Set postgres.standby.enabled: false in the stack file, run pulumi up" in result.stdout
    calls = (kube.state / "calls").read_text()
    assert not any(verb in calls for verb in (" patch ", " apply", " delete ", " edit ", " scale "))


def test_a_primary_that_still_archives_stops_the_promotion_unless_forced(kube):
    _archive_written(kube, 20)
    result = kube("promote-standby.sh", "real-estate", "check", instance_statuses=STANDBY_LEADER)
    assert result.returncode == 1
    assert re.search(r"the primary archived 2\d s ago \(under 300 s\): it may be alive", result.stderr) and "Fence it first" in result.stderr
    forced = kube("promote-standby.sh", "real-estate", "check", "--force", instance_statuses=STANDBY_LEADER)
    assert forced.returncode == 0, forced.stderr


def test_a_standby_behind_the_archive_says_what_promoting_now_loses(kube):
    _archive_written(kube, 900)
    result = kube("promote-standby.sh", "real-estate", "check", instance_statuses=STANDBY_LEADER, replay="0/8000000|1795000000|1200\n")
    assert result.returncode == 0
    assert "promoting now loses what lies between 0/8000000 and 0/A000000" in result.stderr


@pytest.mark.parametrize("files, message", [
    ({"standby_enabled": "false"}, "'postgres' is not a standby (spec.standby.enabled is 'false'): nothing to promote"),
    ({"instance_statuses": 'postgres-instance1-b-0\t{"role":"replica"}\n'}, "'postgres' has no standby leader"),
])
def test_check_refuses_what_cannot_be_promoted(kube, files, message):
    result = kube("promote-standby.sh", "real-estate", "check", **files)
    assert result.returncode == 1 and message in result.stderr


def test_verify_proves_a_primary_that_commits_and_wal_reaching_the_offsite_archive(kube):
    history = {2: "1\t0/A000060\tno recovery target specified\n"}
    _archive_written(kube, 5, {1: range(1, 11), 2: range(10, 12)}, history)
    result = kube("promote-standby.sh", "real-estate", "verify", standby_enabled="false", primaries="pod/postgres-instance1-b-0\n")
    assert result.returncode == 0, result.stderr
    assert "postgres-instance1-b-0 is the primary and commits (transaction 745), timeline 2" in result.stdout
    assert "the off-site archive follows timeline 2" in result.stdout


def test_verify_fails_while_the_archive_stays_on_the_old_timeline(kube):
    _archive_written(kube, 5)
    result = kube("promote-standby.sh", "real-estate", "verify", "--timeout", "0", standby_enabled="false",
                  primaries="pod/postgres-instance1-b-0\n")
    assert result.returncode == 1
    assert "the off-site archive is still on timeline 00000001, not 2: WAL does not reach it yet" in result.stderr


def test_verify_before_the_setting_changed_says_what_to_do(kube):
    result = kube("promote-standby.sh", "real-estate", "verify")
    assert result.returncode == 1
    assert "set postgres.standby.enabled: false and run pulumi up first" in result.stderr


def test_an_unreadable_archive_stops_the_check_unless_forced(kube):
    (kube.state / "repo2" / "unreachable").write_text("")
    result = kube("promote-standby.sh", "real-estate", "check", instance_statuses=STANDBY_LEADER)
    assert result.returncode == 1 and "nothing shows whether the old primary still writes" in result.stderr
    forced = kube("promote-standby.sh", "real-estate", "check", "--force", instance_statuses=STANDBY_LEADER)
    assert forced.returncode == 0 and "--force: promoting what was replayed (0/A000000)" in forced.stderr
