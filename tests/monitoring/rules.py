"""The stack's alert rules as the tests read them: rendered by components/alert_rules.py for the tests' namespace
(every source present, the escalation of a given routing), written where promtool and Prometheus read them."""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path
from typing import Optional

import yaml

from components.alert_rules import SOURCES, job_source, platform_rules
from settings.monitoring import AlertingSettings
from settings.postgres import PatroniSettings, PostgresSettings
from settings.slo import SloSettings

NAMESPACE = "real-estate"
OTHER_NAMESPACE = "other-team"
JOBS = ("api", "patroni", "envoy", "milvus", "redis", "postgres-exporter", "blackbox")
# Three instances, synchronous, like prod: every replication alert exists.
POSTGRES = PostgresSettings(instances=3, patroni=PatroniSettings(synchronous=True))
ALL_SOURCES = (*JOBS, *SOURCES)


def rendered(alerting: Optional[AlertingSettings] = None, namespace: str = NAMESPACE,
             slos: Optional[SloSettings] = None) -> dict[str, dict]:
    return platform_rules(namespace, alerting or AlertingSettings(notify=False), ALL_SOURCES, slos or SloSettings(), POSTGRES)


def write(groups: dict[str, dict], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rules in groups.items():
        path = directory / f"{name}.rules.yml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        paths.append(path)
    return paths


@cache
def rule_files() -> list[Path]:
    """Every group rendered for the tests' namespace with default escalation, as files (once per session)."""
    return write(rendered(), Path(tempfile.mkdtemp(prefix="re-rules-")))


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_ALERTS_READ = re.compile(r'ALERTS\{[^}]*alertname="([^"]+)"')


@cache
def rule_files_for(alert: str) -> tuple[Path, ...]:
    """The files an alert's evaluation needs: its own, those recording a series it reads, those raising an alert it
    reads (ALERTS{alertname=...}), and so on: the rest only costs promtool time (every rule is evaluated at every
    step; a 210-hour case took 8 s with every file, 0.7 s with its own). Their order is rule_files()'."""
    files = rule_files()
    content = {path: yaml.safe_load(path.read_text()) for path in files}
    defined: dict[str, Path] = {}
    for path, rules in content.items():
        for group in rules["groups"]:
            for rule in group["rules"]:
                defined.setdefault(rule.get("record") or rule["alert"], path)
    needed, pending = set(), [defined[alert]]
    while pending:
        path = pending.pop()
        if path in needed:
            continue
        needed.add(path)
        for group in content[path]["groups"]:
            for rule in group["rules"]:
                expr = str(rule["expr"])
                names = set(_NAME.findall(expr)) | set(_ALERTS_READ.findall(expr))
                pending += [defined[name] for name in names if name in defined]
    return tuple(path for path in files if path in needed)


@cache
def alerts() -> dict[str, dict]:
    """Each alerting rule by name (those generated more than once, MetricsSourceMissing per source, ErrorBudgetBurn
    per SLO and window, the escalations per wait: the first)."""
    found: dict[str, dict] = {}
    for rules in rendered().values():
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    repeated = rule["alert"] in ("MetricsSourceMissing", "ErrorBudgetBurn") or rule["alert"].startswith("Escalation")
                    assert rule["alert"] not in found or repeated, f"{rule['alert']} defined twice"
                    found.setdefault(rule["alert"], rule)
    return found


def source_series(but: str = "", values: str = "1x30") -> dict[str, str]:
    """One series from every source the alerts read (the scrape jobs and alert_rules.SOURCES) but `but`, as promtool
    input: with them, no MetricsSourceMissing fires."""
    selectors = {**{job: job_source(job) for job in JOBS}, **{name: s.split(" or ")[0] for name, s in SOURCES.items()}}
    return {s.replace("$namespace", NAMESPACE): values for name, s in selectors.items() if name != but}
