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
repo = next((a.split("=", 1)[1] for a in args if a.startswith("--repo=")), "1")
if os.path.isdir(os.path.join(state, "repo" + repo)):
    state = os.path.join(state, "repo" + repo)
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


@pytest.mark.parametrize("histories, message", [
    ({}, "timeline 2 has WAL but its history file 00000002.history is missing"),
    ({2: "\n"}, "the history file 00000002.history names no parent timeline: it is damaged"),
    # Timeline 3's history names the whole line; timeline 2's own file is still needed for a restore to a time on it.
    ({3: "1\t0/8000060\treason\n2\t0/A000000\treason\n"}, "timeline 2 has WAL but its history file 00000002.history is missing"),
])
def test_a_timeline_without_a_sound_history_file_fails(archive, histories, message):
    segments = {1: range(1, 8), 2: range(8, 11), **({3: range(10, 13)} if 3 in histories else {})}
    done, report = archive([FULL], segments, histories)
    assert done.returncode == 1 and report["status"] == "failed"
    assert f"pg_archive: repository 1: archive 17-1: {message}" in done.stderr


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


def _lag(tmp_path, repositories: dict, *args: str) -> subprocess.CompletedProcess:
    """pg_archive.py lag over repositories {number: (segments, written)} holding FULL, against the fake pgBackRest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pgbackrest").write_text(FAKE)
    (bin_dir / "pgbackrest").chmod(0o755)
    for number, (segments, written, *histories) in repositories.items():
        write_repository(tmp_path / f"repo{number}", [FULL], segments, histories[0] if histories else None, written)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_PGBACKREST": str(tmp_path), "PG_ARCHIVE_EXEC": ""}
    repos = [f"--repo={n}" for n in repositories]
    return subprocess.run([sys.executable, str(SCRIPT), "lag", *repos, "--max-seconds", "900", *args],
                          capture_output=True, text=True, env=env, timeout=30)


def _clock(offset: int = 0, seconds_per_segment: int = 60):
    return lambda timeline, n: 1_795_000_000 + offset + n * seconds_per_segment


FORTY = {1: range(1, 41)}
# Timeline 1's segments written fast and early, timeline 2's a minute apart.
_BRANCHED = lambda timeline, n: 1_795_000_000 + (n * 10 if timeline == 1 else n * 60)  # noqa: E731


@pytest.mark.parametrize("repositories, stale", [
    # The same WAL, the off-site store's clock an hour ahead, then an hour behind: no lag.
    ({1: (FORTY, _clock()), 2: (FORTY, _clock(3600))}, []),
    ({1: (FORTY, _clock()), 2: (FORTY, _clock(-3600))}, []),
    # Repo 2 ends at 24: repo 1 received 25 15 × 60 s = 900 s before its newest (40), the limit; at 23, 960 s.
    ({1: (FORTY, _clock()), 2: ({1: range(1, 25)}, _clock(7200))}, []),
    ({1: (FORTY, _clock()), 2: ({1: range(1, 24)}, _clock(-7200))}, [2]),
    # Either way round: the repository furthest on leads.
    ({1: ({1: range(1, 11)}, _clock()), 2: (FORTY, _clock())}, [1]),
    # Thirty segments in the last 30 s: far behind by position, not by time.
    ({1: (FORTY, _clock(seconds_per_segment=1)), 2: ({1: range(1, 11)}, _clock())}, []),
    # After a failover repo 2 never received the new timeline.
    ({1: ({1: range(1, 9), 2: range(8, 41)}, _clock(), {2: "1\t0/8000060\treason\n"}), 2: ({1: range(1, 9)}, _clock())}, [2]),
    ({1: (FORTY, _clock())}, []),
    # An old primary's abandoned tail on timeline 1 (it went on after 2 branched at 8) that only repo 1 received, long
    # ago: no WAL repo 2 lacks, while repo 2 is one segment behind on timeline 2's line.
    ({1: ({1: range(1, 46), 2: range(8, 41)}, _BRANCHED, {2: "1\t0/8000060\treason\n"}),
      2: ({1: range(1, 9), 2: range(8, 40)}, _BRANCHED, {2: "1\t0/8000060\treason\n"})}, []),
])
def test_a_repository_that_stopped_receiving_wal_is_named(tmp_path, repositories, stale):
    done = _lag(tmp_path, repositories)
    assert done.returncode == (1 if stale else 0), done.stderr
    named = [int(line.split("repository ")[1].split(":")[0]) for line in done.stderr.splitlines()]
    assert named == stale


def test_the_lag_names_the_segment_and_the_leaders_own_times(tmp_path):
    done = _lag(tmp_path, {1: (FORTY, _clock()), 2: ({1: range(1, 24)}, _clock(-86400))})
    assert done.returncode == 1
    assert done.stderr == (
        f"pg_archive: repository 2: its archive ends at {segment(1, 23)}; repository 1 received the next segment, "
        f"{segment(1, 24)}, 960 s before its newest ({segment(1, 40)}), by its own clock: repository 2 is not receiving WAL\n")


def test_an_unreadable_repository_is_left_to_the_check(tmp_path):
    (tmp_path / "repo2").mkdir()
    _lag(tmp_path, {1: (FORTY, _clock())})
    (tmp_path / "repo2" / "fail").write_text("")
    done = subprocess.run([sys.executable, str(SCRIPT), "lag", "--repo=1", "--repo=2", "--max-seconds", "900"], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
                                                      "FAKE_PGBACKREST": str(tmp_path), "PG_ARCHIVE_EXEC": ""})
    assert done.returncode == 0 and done.stderr == ""
