"""A pgBackRest repository as `info --output=json`, `repo-ls --recurse --output=json` and history files show it,
for the fakes that stand in for pgBackRest in tests/ops."""

from __future__ import annotations

import json
from pathlib import Path

SHA = "0" * 40


def segment(timeline: int, segno: int) -> str:
    """A WAL segment name, 16 MiB segments."""
    return f"{timeline:08X}{segno // 256:08X}{segno % 256:08X}"


def backup(label: str, start: str, stop: str, stopped_at: int) -> dict:
    return {"label": label, "archive": {"start": start, "stop": stop}, "database": {"id": 1, "repo-key": 1},
            "timestamp": {"start": stopped_at - 60, "stop": stopped_at}, "type": "full" if label.endswith("F") else "incr"}


FULL = backup("20261128-010002F", segment(1, 2), segment(1, 2), 1_795_000_000)
INCR = backup("20261128-010002F_20261128-093002I", segment(1, 6), segment(1, 7), 1_795_030_000)


def write_repository(directory: Path, backups: list, segments: dict, histories: dict | None = None, written=None) -> None:
    """info.json, ls.json and the history files of one repository's archive 17-1; `written(timeline, segno)` gives
    the time the store reports for a segment (none without it)."""
    directory.mkdir(parents=True, exist_ok=True)
    listing = {".": {"type": "path"}}
    for timeline, numbers in segments.items():
        for n in numbers:
            entry = {"type": "file", "size": 100}
            if written:
                entry["time"] = written(timeline, n)
            listing[f"{timeline:08X}{n // 256:08X}/{segment(timeline, n)}-{SHA}.zst"] = entry
        # What pgBackRest also keeps there: a backup's history file.
        listing[f"{timeline:08X}00000000/{segment(timeline, 2)}.00000028.backup"] = {"type": "file"}
    for timeline, text in (histories or {}).items():
        listing[f"{timeline:08X}.history"] = {"type": "file"}
        (directory / f"{timeline:08X}.history").write_text(text)
    info = [{"name": "db", "status": {"code": 0, "message": "ok"}, "backup": backups,
             "archive": [{"id": "17-1", "database": {"id": 1, "repo-key": 1}}]}]
    (directory / "info.json").write_text(json.dumps(info))
    (directory / "ls.json").write_text(json.dumps(listing))
