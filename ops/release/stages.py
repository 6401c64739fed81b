"""The order a version is released in (ops/release/stages.txt): the first stage builds and tests it, the later ones
run the same digest after it.

    python -m ops.release.stages [--later]   the stages (or only those after the first), one per line
    python -m ops.release.stages --matrix    a GitHub Actions matrix: each stage with its drift check's environment

Standard library only: CI's drift workflow runs it before any virtualenv exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES_FILE = Path(__file__).resolve().parent / "stages.txt"


def configured_stages() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in STAGES_FILE.read_text().splitlines())
    return [line for line in lines if line]


def drift_environment(index: int) -> str:
    """The GitHub environment the drift check of a stage runs in (.github/workflows/drift.yml): one that runs main's
    code only, since a refresh reads every object the state holds, Secrets included. test's own for the first stage,
    production's read-only one for every later stage."""
    return "test" if index == 0 else "production-plan"


if __name__ == "__main__":
    stages = configured_stages()
    if sys.argv[1:] == ["--matrix"]:
        print(json.dumps([{"stack": s, "environment": drift_environment(i)} for i, s in enumerate(stages)]))
    else:
        print("\n".join(stages[1:] if sys.argv[1:] == ["--later"] else stages))
