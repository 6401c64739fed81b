#!/usr/bin/env python3
"""Continuity of a pgBackRest WAL archive: every segment a retained backup needs to reach the archive's end.

    pg_archive.py check [--repo N] [--set LABEL | --newest | --target-time EPOCH] [--segment-size BYTES]
    pg_archive.py wal [--repo N] --scratch DIR [--segment-size BYTES]
    pg_archive.py lag --repo N --repo M ... --max-seconds S

pgBackRest's own `verify` checks the files that are there; a segment that was never archived, or was deleted,
leaves no file to check, and a restore to "latest" stops at the gap and promotes. This walks the archive instead:
for each retained backup (or the one given with --set), every segment from the backup's start, along the
timelines the newest timeline's history names, to the last archived segment. A gap fails, naming the repository,
the timeline and the missing segments. --newest checks what a restore to "latest" uses, the newest backup only (an
old gap that only older backups cross does not stop it); --target-time what a point-in-time restore to that time
would use: the newest backup that ended before it (none: the time is before the oldest backup, and fails).

pgBackRest is run as `$PG_ARCHIVE_EXEC pgbackrest ...` (PG_ARCHIVE_EXEC empty in the verify job; a `kubectl exec`
prefix when a restore checks a cluster's repository from outside). Stanza and configuration come from pgBackRest's
own environment (PGBACKREST_STANZA, PGBACKREST_CONFIG).

`wal` reads what `check` only lists: every archived segment a restore to latest replays, its content compared with
the checksum pgBackRest named it after (see read_wal). Exit as `check`'s.

A timeline with segments but no history file fails too: a restore finds a timeline only through its history file,
and without it replays the parent to its end and promotes without what the lost timeline committed.

`lag` compares repositories by WAL position: the one furthest on leads, and another that lacks a segment the leader
received more than S seconds before its own newest has stopped receiving WAL (an unreachable store, say), which no
gap inside its own archive can show. Both times are the leader's, so clocks that differ between stores do not count; it exits 1 naming each
lagging repository (an unreadable one is left to `check`).

`check` prints one JSON line; exit 0 continuous, 1 gap or no backup, 2 bad usage, 3 the repository could not be read.
Runs on the Python the PostgreSQL image ships (3.9): standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-([0-9a-f]{40})(\.(gz|bz2|lz4|zst|xz))?$")
HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
# How many missing segments a report names before it counts the rest.
NAMED = 20


class RepositoryError(Exception):
    """pgBackRest could not read the repository (unreachable, no stanza, bad credentials)."""


class Archive:
    """The segments of one archive id (one database system and version) in one repository."""

    def __init__(self, segment_size: int):
        self.segment_size = segment_size
        self.per_log = 0x100000000 // segment_size
        self.segments: Dict[int, Set[int]] = {}
        self.written: Dict[Tuple[int, int], int] = {}
        # The SHA-1 of each segment's content, as pgBackRest names the file after it.
        self.checksums: Dict[Tuple[int, int], str] = {}
        self.histories: Set[int] = set()
        # What the newest backup checked needs, in replay order: (timeline, segment), archived or not.
        self.needed: List[Tuple[int, int]] = []

    def segno(self, name: str) -> Tuple[int, int]:
        timeline, log, seg = int(name[0:8], 16), int(name[8:16], 16), int(name[16:24], 16)
        return timeline, log * self.per_log + seg

    def name(self, timeline: int, segno: int) -> str:
        return f"{timeline:08X}{segno // self.per_log:08X}{segno % self.per_log:08X}"

    def lsn(self, segno: int) -> str:
        position = segno * self.segment_size
        return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"

    def segno_of_lsn(self, lsn: str) -> int:
        high, low = lsn.split("/")
        return ((int(high, 16) << 32) + int(low, 16)) // self.segment_size

    def add(self, relative: str, written: int = 0) -> None:
        base = relative.rsplit("/", 1)[-1]
        found = SEGMENT.match(base)
        if found:
            timeline, segno = self.segno(base)
            self.segments.setdefault(timeline, set()).add(segno)
            self.written[(timeline, segno)] = written
            self.checksums[(timeline, segno)] = found.group(4)
            return
        history = HISTORY.match(base)
        if history:
            self.histories.add(int(history.group(1), 16))


def pgbackrest(*args: str) -> str:
    command = [*shlex.split(os.environ.get("PG_ARCHIVE_EXEC", "")), "pgbackrest", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=float(os.environ.get("PG_ARCHIVE_TIMEOUT", "1800")))
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RepositoryError(f"{' '.join(command[:3])}...: {error}") from None
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RepositoryError(detail[-1] if detail else f"pgbackrest {args[0]} exited {done.returncode}")
    return done.stdout


def timeline_path(archive: Archive, read_history) -> List[Tuple[int, int, Optional[int]]]:
    """The newest timeline's ancestry as (timeline, first segment, last segment or None for 'to the end').

    A timeline's last segment is the one before its switch point's: the segment holding the switch point is
    read from the new timeline (PostgreSQL copies the old timeline's part of it there when it promotes)."""
    newest = max([*archive.segments, *archive.histories] or [1])
    switches: List[Tuple[int, int]] = []
    if newest in archive.histories:
        for line in read_history(newest).splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0].isdigit() and "/" in fields[1]:
                switches.append((int(fields[0]), archive.segno_of_lsn(fields[1])))
    path: List[Tuple[int, int, Optional[int]]] = []
    first = 0
    for timeline, switch in switches:
        path.append((timeline, first, switch - 1))
        first = switch
    path.append((newest, first, None))
    return path


def history_problems(archive: Archive, path) -> List[str]:
    """Timelines the segments prove but no history file describes. A restore finds a timeline only through its
    history file: without it, it replays the parent to its end, says it reached the archive's end, and promotes
    without what was committed on the lost timeline."""
    problems = []
    for timeline in sorted(t for t in archive.segments if t > 1 and t not in archive.histories):
        problems.append(
            f"timeline {timeline} has WAL but its history file {timeline:08X}.history is missing: a restore would not follow "
            f"timeline {timeline} and would lose what was committed on it; the cluster's pg_wal keeps the file: push it again "
            f"(pgbackrest archive-push pg_wal/{timeline:08X}.history)")
    newest = path[-1][0]
    if newest > 1 and newest in archive.histories and len(path) == 1:
        problems.append(f"the history file {newest:08X}.history names no parent timeline: it is damaged")
    return problems


def missing_for(archive: Archive, path, start: Tuple[int, int], stop_segno: int) -> Tuple[List[Tuple[int, int]], int, int]:
    """Segments missing between a backup's start and the end of its line of timelines, and that end (timeline, segment)."""
    needed, end_timeline, end = needed_for(archive, path, start, stop_segno)
    return [(t, n) for t, n in needed if n not in archive.segments.get(t, ())], end_timeline, end


def needed_for(archive: Archive, path, start: Tuple[int, int], stop_segno: int) -> Tuple[List[Tuple[int, int]], int, int]:
    """Every segment a restore from a backup replays, from its start along its line of timelines, and the end."""
    timeline, segno = start
    on_path = [p for p in path if p[0] == timeline and (p[2] is None or segno <= p[2])]
    if on_path:
        steps = path[path.index(on_path[0]):]
    else:
        # A backup on a timeline, or a part of one, that a later promotion abandoned: that branch to its end.
        steps = [(timeline, segno, None)]
    needed: List[Tuple[int, int]] = []
    end = (timeline, segno)
    for index, (tli, first, last) in enumerate(steps):
        have = archive.segments.get(tli, set())
        low = max(first, segno) if index == 0 else first
        if last is None:
            last = max([*have, low - 1])
            if index == 0:
                # The backup itself needs its WAL up to its stop segment, archived or not.
                last = max(last, stop_segno)
        needed += [(tli, n) for n in range(low, last + 1)]
        end = (tli, last)
    return needed, end[0], end[1]


def check(repo: str, only_set: Optional[str], segment_size: int, target_time: Optional[int] = None, newest: bool = False) -> dict:
    return inspect(repo, only_set, segment_size, target_time, newest)[0]


def inspect(repo: str, only_set: Optional[str], segment_size: int, target_time: Optional[int] = None,
            newest: bool = False) -> Tuple[dict, Optional[Archive]]:
    """check's report, and the archive its newest backup reads (None when there is none)."""
    info = json.loads(pgbackrest("info", "--output=json", f"--repo={repo}"))
    if not info:
        raise RepositoryError("no stanza in the repository")
    stanza = info[0]
    status = stanza.get("status", {})
    # 0 ok (a backup running shows as a lock beside it), 2 no valid backup; anything else cannot be read.
    if status.get("code", 0) not in (0, 2):
        raise RepositoryError(f"stanza status {status.get('code')}: {status.get('message', 'not ok')}")
    backups = stanza.get("backup", [])
    if only_set:
        backups = [b for b in backups if b["label"] == only_set]
        if not backups:
            return {"status": "failed", "problems": [f"backup set {only_set} is not in repository {repo}"]}, None
    if not backups:
        return {"status": "failed", "problems": [f"repository {repo} holds no backup"]}, None
    if target_time is not None:
        # pgBackRest restores to a time from the newest backup that ended before it.
        before = [b for b in backups if b["timestamp"]["stop"] < target_time]
        if not before:
            oldest = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(min(b["timestamp"]["stop"] for b in backups)))
            return {"status": "failed", "problems": [
                f"the target time is before the end of the oldest backup in repository {repo}; the earliest time it can restore is {oldest}"]}, None
        backups = before[-1:]
    elif newest:
        backups = backups[-1:]
    archive_ids = {a["database"]["id"]: a["id"] for a in stanza.get("archive", [])}
    problems: List[str] = []
    result: dict = {"backups_checked": len(backups), "missing": 0}
    newest_archive: Optional[Archive] = None
    archives: Dict[str, Tuple[Archive, list]] = {}
    for backup in backups:
        archive_id = archive_ids.get(backup["database"]["id"])
        if archive_id is None:
            problems.append(f"backup {backup['label']}: its WAL archive (database id {backup['database']['id']}) is gone")
            continue
        if archive_id not in archives:
            archive = Archive(segment_size)
            listing = json.loads(pgbackrest("repo-ls", f"--repo={repo}", "--recurse", "--output=json", f"archive/{stanza['name']}/{archive_id}"))
            for relative, entry in listing.items():
                if entry.get("type") == "file":
                    archive.add(relative, int(entry.get("time", 0)))
            path = timeline_path(
                archive, lambda tli: pgbackrest("repo-get", f"--repo={repo}", f"archive/{stanza['name']}/{archive_id}/{tli:08X}.history"))
            archives[archive_id] = (archive, path)
            problems += [f"archive {archive_id}: {problem}" for problem in history_problems(archive, path)]
        archive, path = archives[archive_id]
        start = archive.segno(backup["archive"]["start"])
        stop = archive.segno(backup["archive"]["stop"])[1]
        missing, end_timeline, end = missing_for(archive, path, start, stop)
        if missing:
            result["missing"] = max(result["missing"], len(missing))
            names = [archive.name(t, n) for t, n in missing]
            more = f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
            problems.append(
                f"archive {archive_id}: {len(names)} segment(s) missing after backup {backup['label']}: {', '.join(names[:NAMED])}{more}")
        if backup is backups[-1]:
            newest_archive = archive
            archive.needed = needed_for(archive, path, start, stop)[0]
            result.update({"end_segno": end, "archive_id": archive_id, "timeline": f"{end_timeline:08X}", "end": archive.name(end_timeline, end),
                           "end_lsn": archive.lsn(end), "end_written": archive.written.get((end_timeline, end), 0),
                           "newest_backup": backup["label"],
                           "newest_backup_stop": backup["timestamp"]["stop"]})
    result["status"] = "failed" if problems else "ok"
    if problems:
        # One line per gap, deduplicated: several backups usually share the same one.
        result["problems"] = list(dict.fromkeys(problems))
    return result, newest_archive


def lagging(ends: Dict[str, Tuple[dict, Archive]], max_seconds: int) -> List[str]:
    """Repositories whose archive stopped while another's went on, judged by WAL position.

    The repository furthest on (timeline, then segment) leads. Another one lags by how long ago the leader received
    the first segment it lacks past its end, both times read from the leader's own store: a clock that differs
    between two stores never counts."""
    leader_repo = max(ends, key=lambda r: (ends[r][0]["timeline"], ends[r][0]["end_segno"]))
    leader, archive = ends[leader_repo]
    problems = []
    for repo, (report, other) in ends.items():
        if repo == leader_repo:
            continue
        position = (report["end_segno"], int(report["timeline"], 16))
        # Only what the leader's own line of timelines needs: a branch an old primary left in one repository is no
        # WAL the other one lacks.
        line = set(archive.needed)
        lacking = [(written, tli, segno) for (tli, segno), written in archive.written.items()
                   if (tli, segno) in line and (segno, tli) > position and segno not in other.segments.get(tli, ())]
        if not lacking:
            continue
        first_written, tli, segno = min(lacking)
        behind = leader["end_written"] - first_written
        if behind > max_seconds:
            problems.append(
                f"repository {repo}: its archive ends at {report['end']}; repository {leader_repo} received the next segment, "
                f"{archive.name(tli, segno)}, {behind} s before its newest ({leader['end']}), by its own clock: "
                f"repository {repo} is not receiving WAL")
    return problems


def system_databases(repo: str, newest: str) -> Tuple[str, List[str]]:
    """A backup of the newest one's database system whose databases pgBackRest can list, and the options that leave
    its user databases out of a restore. Any backup of the same system has the pg_control archive-get matches;
    one whose manifest is gone (its copy still restores) cannot be described, so an older one serves."""
    stanza = json.loads(pgbackrest("info", "--output=json", f"--repo={repo}"))[0]
    backups = stanza.get("backup", [])
    system = next(b["database"]["id"] for b in backups if b["label"] == newest)
    for backup in reversed([b for b in backups if b["database"]["id"] == system]):
        described = json.loads(pgbackrest("info", "--output=json", f"--repo={repo}", f"--set={backup['label']}"))
        sets = described[0].get("backup", []) if described else []
        if sets and isinstance(sets[-1].get("database-ref"), list):
            # Object ids from 16384 on are user databases; pgBackRest always restores the system ones.
            return backup["label"], [f"--db-exclude={db['name']}" for db in sets[-1]["database-ref"] if db["oid"] >= 16384]
    raise RepositoryError(f"no backup of backup {newest}'s database system lists its databases (pgbackrest info --set)")


def read_wal(repo: str, scratch: str, segment_size: int) -> dict:
    """Fetch every archived segment a restore to latest replays (the newest backup's start to the archive's end) and
    compare its content with the SHA-1 pgBackRest named it after, and its size with a segment's.

    pgBackRest's own verify reads only the newest backup's WAL once it is given --set (2.55 on): a segment damaged
    after it would wait for the weekly full pass. archive-get decompresses and decrypts what repo-get leaves
    compressed, but needs a pg_control to match the archive: the newest backup's system databases are restored
    into the scratch directory for it (user databases excluded: sparse empty files)."""
    report, archive = inspect(repo, None, segment_size, newest=True)
    if archive is None:
        return {**report, "segments_read": 0}
    label = report["newest_backup"]
    source, excluded = system_databases(repo, label)
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    pgdata = os.path.join(scratch, "pg_control")
    segment_file = os.path.join(scratch, "segment")
    if os.path.exists(pgdata):
        shutil.rmtree(pgdata)
    damaged: List[str] = []
    read = 0
    try:
        pgbackrest("restore", f"--repo={repo}", f"--set={source}", f"--pg1-path={pgdata}", "--type=none", *excluded)
        for tli, segno in archive.needed:
            if (tli, segno) not in archive.checksums:
                continue  # never archived: `check` names the gap
            name = archive.name(tli, segno)
            try:
                pgbackrest("archive-get", f"--repo={repo}", f"--pg1-path={pgdata}", name, segment_file)
                with open(segment_file, "rb") as segment:
                    content = segment.read()
                os.unlink(segment_file)
            except (RepositoryError, OSError) as error:
                damaged.append(f"{name} ({error})")
                continue
            read += 1
            if len(content) != segment_size:
                damaged.append(f"{name} ({len(content)} bytes, not {segment_size})")
            elif hashlib.sha1(content).hexdigest() != archive.checksums[(tli, segno)]:
                damaged.append(f"{name} (its content is not what was archived)")
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)
    result = {"newest_backup": label, "end": report.get("end"), "segments_read": read, "damaged": len(damaged)}
    problems = list(report.get("problems", []))
    if damaged:
        more = f" and {len(damaged) - NAMED} more" if len(damaged) > NAMED else ""
        problems.append(f"{len(damaged)} segment(s) after backup {label} cannot be restored: {', '.join(damaged[:NAMED])}{more}")
    result["status"] = "failed" if problems else "ok"
    if problems:
        result["problems"] = problems
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="pg_archive.py", description="Check a pgBackRest WAL archive for gaps.")
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check")
    checker.add_argument("--repo", default=os.environ.get("BACKUP_REPO", "1"), choices=[str(n) for n in range(1, 257)], metavar="N")
    which = checker.add_mutually_exclusive_group()
    which.add_argument("--set", dest="only_set", help="check only this backup set")
    which.add_argument("--target-time", type=int, metavar="EPOCH", help="check what a restore to this time would use")
    which.add_argument("--newest", action="store_true", help="check only the newest backup (what a restore to latest uses)")
    checker.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT_SIZE)
    wal = sub.add_parser("wal")
    wal.add_argument("--repo", default=os.environ.get("BACKUP_REPO", "1"), choices=[str(n) for n in range(1, 257)], metavar="N")
    wal.add_argument("--scratch", required=True, help="an empty directory for the newest backup's system databases")
    wal.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT_SIZE)
    lag = sub.add_parser("lag")
    lag.add_argument("--repo", dest="repos", action="append", required=True, choices=[str(n) for n in range(1, 257)], metavar="N")
    lag.add_argument("--max-seconds", type=int, required=True)
    lag.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT_SIZE)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if args.segment_size < 1024 * 1024 or args.segment_size & (args.segment_size - 1):
        print("pg_archive: --segment-size must be a power of two of at least 1 MiB", file=sys.stderr)
        return 2
    if args.command == "lag":
        ends: Dict[str, Tuple[dict, Archive]] = {}
        for repo in dict.fromkeys(args.repos):
            try:
                report, archive = inspect(repo, None, args.segment_size, newest=True)
            except RepositoryError:
                continue  # unreadable: check reports it; there is nothing to compare
            if archive is not None:
                ends[repo] = (report, archive)
        problems = lagging(ends, args.max_seconds) if len(ends) > 1 else []
        for problem in problems:
            print(f"pg_archive: {problem}", file=sys.stderr)
        return 1 if problems else 0
    base = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "job": "pg-archive" if args.command == "check" else "pg-archive-wal", "repo": int(args.repo)}
    try:
        if args.command == "wal":
            result = read_wal(args.repo, args.scratch, args.segment_size)
        else:
            result = check(args.repo, args.only_set, args.segment_size, args.target_time, args.newest)
    except (RepositoryError, ValueError, LookupError, StopIteration) as error:
        # Unreachable, or answers of a shape this script does not know: loud either way, never a traceback.
        print(f"pg_archive: repository {args.repo}: could not read the archive: {error!r}" if not isinstance(error, RepositoryError)
              else f"pg_archive: repository {args.repo}: could not read the archive: {error}", file=sys.stderr)
        print(json.dumps({**base, "status": "unreadable"}))
        return 3
    for problem in result.get("problems", []):
        print(f"pg_archive: repository {args.repo}: {problem}", file=sys.stderr)
    print(json.dumps({**base, **result}))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
