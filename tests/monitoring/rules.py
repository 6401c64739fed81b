"""The alert rules as the tests read them: the files in monitoring/rules and each alerting rule by name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))


@cache
def alerts() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in found, f"{rule['alert']} defined twice"
                    found[rule["alert"]] = rule
    return found
