"""ops/backup/pg_archive.py over archives shaped as pgBackRest lists them: timelines, switches, abandoned
branches, point-in-time targets. pgBackRest is a fake on PATH here; tests/backup runs the script against the real one."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.archive_fixture import FULL, INCR, backup, segment, write_repository

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "backup" / "pg_archive.py"
FAKE = f"""#!{sys.executable}
import json, os, sys
state = os.environ["FAKE_PGBACKREST"]
args = sys.argv[1:]
with open(os.path.join(state, "calls"), "a") as log:
    log.write(" ".join(args) + "\\n")
if os.path.exists(os.path.join(state, "fail")):
    print("ERROR: [039]: HTTP request failed with 503 Service Unavailable", file=sys.stderr)
    sys.exit(39)
if args[0] == "info":
    print(open(os.path.join(state, "info.json")).read())
elif args[0] == "repo-ls":
    print(open(os.path.join(state, "ls.json")).read())
elif args[0] == "repo-get":
    print(open(os.path.join(state, args[-1].rsplit("/", 1)[-1])).read(), end="")
"""


@pytest.fixture
def archive(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pgbackrest").write_text(FAKE)
    (bin_dir / "pgbackrest").chmod(0o755)

    def run(backups: list, segments: dict, histories: dict = None, *args: str):
        write_repository(tmp_path, backups, segments, histories)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_PGBACKREST": str(tmp_path), "PG_ARCHIVE_EXEC": ""}
        done = subprocess.run([sys.executable, str(SCRIPT), "check", *args], capture_output=True, text=True, env=env, timeout=30)
        report = json.loads(done.stdout) if done.stdout.strip() else {}
        return done, report

    run.path = tmp_path
    return run


def test_a_continuous_archive_passes_and_reports_its_end(archive):
    done, report = archive([FULL, INCR], {1: range(1, 12)})
    assert done.returncode == 0, done.stderr
    assert report["status"] == "ok" and report["backups_checked"] == 2
    assert report["end"] == segment(1, 11) and report["end_lsn"] == "0/B000000" and report["timeline"] == "00000001"
    assert report["newest_backup"] == INCR["label"] and report["newest_backup_stop"] == INCR["timestamp"]["stop"]


def test_a_gap_names_every_missing_segment_and_the_backups_that_need_them(archive):
    done, report = archive([FULL, INCR], {1: [n for n in range(1, 12) if n not in (4, 9)]})
    assert done.returncode == 1 and report["status"] == "failed"
    assert (f"pg_archive: repository 1: archive 17-1: 2 segment(s) missing after backup {FULL['label']}: "
            f"{segment(1, 4)}, {segment(1, 9)}\n") in done.stderr
    assert f"1 segment(s) missing after backup {INCR['label']}: {segment(1, 9)}\n" in done.stderr


def test_segments_before_the_oldest_backup_are_not_needed(archive):
    done, _ = archive([FULL], {1: range(2, 6)})
    assert done.returncode == 0, done.stderr


def test_a_backup_whose_own_wal_never_arrived_fails(archive):
    done, _ = archive([FULL, INCR], {1: range(1, 7)})
    assert done.returncode == 1 and f"after backup {INCR['label']}: {segment(1, 7)}\n" in done.stderr


def test_after_a_promotion_the_archive_is_followed_onto_the_new_timeline(archive):
    # Timeline 2 branched at 0/8000060: segment 8 onward comes from timeline 2; timeline 1's own 8 is not needed.
    history = {2: "1\t0/8000060\tno recovery target specified\n"}
    done, report = archive([FULL], {1: range(1, 8), 2: range(8, 13)}, history)
    assert done.returncode == 0, done.stderr
    assert report["timeline"] == "00000002" and report["end"] == segment(2, 12)
    done, _ = archive([FULL], {1: range(1, 8), 2: [8, 10, 11, 12]}, history)
    assert done.returncode == 1 and f": {segment(2, 9)}\n" in done.stderr
    done, _ = archive([FULL], {1: [1, 2, 3, 5, 6, 7], 2: range(8, 13)}, history)
    assert done.returncode == 1 and f": {segment(1, 4)}\n" in done.stderr


def test_a_backup_on_an_abandoned_timeline_needs_only_its_own_branch(archive):
    # Timeline 3 branched from 2 at segment 10; a backup taken on 2 after that lives on 2's abandoned branch.
    history = {2: "1\t0/8000060\treason\n", 3: "1\t0/8000060\treason\n2\t0/A000000\treason\n"}
    stray = backup("20261128-120000F", segment(2, 11), segment(2, 11), 1_795_040_000)
    segments = {1: range(1, 8), 2: range(8, 14), 3: range(10, 16)}
    done, report = archive([FULL, stray], segments, history)
    assert done.returncode == 0, done.stderr
    segments[2] = [n for n in range(8, 14) if n != 12]
    done, _ = archive([FULL, stray], segments, history)
    assert done.returncode == 1 and f"after backup {stray['label']}: {segment(2, 12)}\n" in done.stderr
    # FULL follows 1 → 2 → 3 and never needs 2's segment 12.
    assert f"after backup {FULL['label']}" not in done.stderr


def test_a_target_time_uses_the_newest_backup_that_ended_before_it(archive):
    segments = {1: [n for n in range(1, 12) if n != 4]}
    done, report = archive([FULL, INCR], segments, None, "--target-time", str(INCR["timestamp"]["stop"] + 1))
    assert done.returncode == 0 and report["newest_backup"] == INCR["label"], done.stderr
    done, _ = archive([FULL, INCR], segments, None, "--target-time", str(INCR["timestamp"]["stop"] - 1))
    assert done.returncode == 1 and segment(1, 4) in done.stderr


def test_a_target_time_before_every_backup_is_refused_with_the_earliest_possible(archive):
    done, report = archive([FULL, INCR], {1: range(1, 12)}, None, "--target-time", str(FULL["timestamp"]["stop"] - 1))
    assert done.returncode == 1
    assert "the target time is before the end of the oldest backup in repository 1; the earliest time it can restore is 2026-11-18 " in done.stderr


def test_set_checks_that_backup_only_and_refuses_an_unknown_one(archive):
    segments = {1: [n for n in range(1, 12) if n != 4]}
    done, report = archive([FULL, INCR], segments, None, "--set", INCR["label"])
    assert done.returncode == 0 and report["backups_checked"] == 1, done.stderr
    done, _ = archive([FULL, INCR], segments, None, "--set", "20990101-000000F")
    assert done.returncode == 1 and "backup set 20990101-000000F is not in repository 1" in done.stderr


def test_newest_checks_only_what_a_restore_to_latest_reads(archive):
    segments = {1: [n for n in range(1, 12) if n != 4]}
    done, report = archive([FULL, INCR], segments, None, "--newest")
    assert done.returncode == 0 and report["backups_checked"] == 1 and report["newest_backup"] == INCR["label"], done.stderr
    done, _ = archive([FULL, INCR], segments, None)
    assert done.returncode == 1 and segment(1, 4) in done.stderr


def test_an_empty_repository_fails(archive):
    done, report = archive([], {1: range(1, 3)})
    assert done.returncode == 1 and "repository 1 holds no backup" in done.stderr


def test_an_unreadable_repository_is_its_own_exit_code(archive):
    (archive.path / "fail").write_text("")
    done, report = archive([FULL], {1: range(1, 4)}, None, "--repo", "2")
    assert done.returncode == 3 and report["status"] == "unreadable" and report["repo"] == 2
    assert "repository 2: could not read the archive: ERROR: [039]: HTTP request failed with 503" in done.stderr
    assert "--repo=2" in (archive.path / "calls").read_text()


@pytest.mark.parametrize("args", [["--repo", "x"], ["--segment-size", "3000000"], ["--set", "a", "--target-time", "1"], []])
def test_bad_usage_exits_2(archive, args):
    done, _ = archive([FULL], {1: range(1, 4)}, None, *args) if args else (
        subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True), None)
    assert done.returncode == 2


def test_runs_on_the_python_the_postgresql_image_ships():
    # UBI 9's python3 is 3.9 (Patroni's interpreter in the Percona image).
    ast.parse(SCRIPT.read_text(), feature_version=(3, 9))


def _report(repo: int, end: str, written: int, timeline: str = "00000001") -> str:
    return json.dumps({"repo": repo, "status": "ok", "end": end, "end_written": written, "timeline": timeline})


@pytest.mark.parametrize("reports, stale", [
    ([_report(1, segment(1, 40), 10_000), _report(2, segment(1, 39), 10_000 - 900)], []),
    ([_report(1, segment(1, 40), 10_000), _report(2, segment(1, 4), 10_000 - 901)], [2]),
    ([_report(1, segment(1, 4), 1_000), _report(2, segment(1, 40), 10_000)], [1]),
    ([_report(1, segment(2, 9), 1_000, "00000002"), _report(2, segment(1, 40), 10_000)], [2]),
    ([_report(1, segment(1, 40), 10_000)], []),
])
def test_a_repository_that_stopped_receiving_wal_is_named(reports, stale):
    done = subprocess.run([sys.executable, str(SCRIPT), "lag", "--max-seconds", "900"], input="\n".join(reports) + "\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == (1 if stale else 0), done.stderr
    named = [int(line.split("repository ")[1].split(":")[0]) for line in done.stderr.splitlines()]
    assert named == stale
    if stale == [2] and "00000002" not in reports[0]:
        assert f"repository 2: its archive ends at {segment(1, 4)} (written 1970-01-01 02:31:39+00), 901 s behind repository 1's" in done.stderr
