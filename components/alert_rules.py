"""The stack's Prometheus rules: the files of monitoring/rules, scoped to the stack's namespace, plus the groups its
settings decide (escalation, the check that every metrics source answers, the heartbeat).

The rule files are plain Prometheus files whose selectors name `namespace="$namespace"`; rendering puts the stack's
namespace there, so another tenant's `api` or volume never raises our alert (tests/monitoring/test_rule_scope.py
checks every selector with Prometheus' own parser). Rendering also gives every alert the label `incident` (its own
name, inherited by its escalations): one silence on `incident=<alert>, namespace=<ns>` acknowledges the incident,
its reminders and its escalations alike (docs/runbooks/escalation.md).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Iterable, Optional

import yaml

from components.slo_rules import slo_rules
from settings.monitoring import AlertingSettings
from settings.postgres import PostgresSettings
from settings.slo import SloSettings, window_minutes
from settings.values import byte_count

RULES_DIR = Path(__file__).resolve().parent.parent / "monitoring" / "rules"
NAMESPACE = "$namespace"
RUNBOOKS_PREFIX = "docs/runbooks/"
INCIDENT_LABEL = "incident"
# Alerts that mark a moment (a rollback happened) rather than a state: told once, never escalated.
EVENT_LABEL = ("kind", "event")
HEARTBEAT_ALERT = "Watchdog"

# Where each source's series come from, as the selector that exists whenever Prometheus has that source for the
# namespace. Without it the alerts that read the source cannot fire: its absence is itself an alert.
SOURCES = {
    "kube-state-metrics": 'kube_pod_info{namespace="$namespace"}',
    "cadvisor": 'container_cpu_usage_seconds_total{namespace="$namespace", metrics_path="/metrics/cadvisor"}',
    "kubelet-volume-stats": 'kubelet_volume_stats_capacity_bytes{namespace="$namespace"}',
    "flagger": ('flagger_canary_status{exported_namespace="$namespace", name="api"}'
                ' or flagger_canary_status{namespace="$namespace", exported_namespace="", name="api"}'),
    "cert-manager": ('certmanager_certificate_expiration_timestamp_seconds{exported_namespace="$namespace"}'
                     ' or certmanager_certificate_expiration_timestamp_seconds{namespace="$namespace", exported_namespace=""}'),
    # kube-state-metrics with monitoring/kube-state-metrics/percona-backups.yaml.
    "postgres-backups": 'kube_customresource_perconapgbackup_created_timestamp_seconds{namespace="$namespace"}',
}


def job_source(job: str) -> str:
    return f'up{{job="{job}", namespace="$namespace"}}'


@cache
def _rule_files() -> dict[str, dict]:
    return {path.name.removesuffix(".rules.yml"): yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.rules.yml"))}


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def _duration(minutes: float) -> str:
    return f"{minutes:g}m" if minutes == int(minutes) else f"{minutes * 60:g}s"


def escalation_rules(settings: AlertingSettings, groups: dict[str, dict]) -> dict:
    """A group that re-announces each P0 and P1 alert of `groups` with escalation="2" and "3" once it has been firing
    the configured minutes (an acknowledgement silences the escalation in Alertmanager; Prometheus keeps counting).

    The rules read the alert while pending as well as firing, and wait its own `for:` more: the count is the minutes
    since the page, and a Prometheus restart does not start it over. After a restart an alert is pending again for its
    `for:` (Prometheus restores only `for:` of 10 minutes or more), so a rule on firing alone would see it vanish and
    lose its own count, which Prometheus restores from ALERTS_FOR_STATE only if the rule is active at once."""
    e = settings.escalation
    levels = {"P0": [("2", e.p0_level2_minutes), ("3", e.p0_level3_minutes)],
              "P1": [("2", e.p1_level2_minutes), ("3", e.p1_level3_minutes)]}
    # Severity → the alerts' own `for:` → their names (events never escalate).
    waits: dict[str, dict[float, list[str]]] = {"P0": {}, "P1": {}}
    for rules in groups.values():
        for group in rules["groups"]:
            for rule in group["rules"]:
                severity = rule.get("labels", {}).get("severity")
                if "alert" in rule and severity in waits and rule["labels"].get(EVENT_LABEL[0]) != EVENT_LABEL[1]:
                    names = waits[severity].setdefault(window_minutes(rule.get("for", "0m")), [])
                    if rule["alert"] not in names:
                        names.append(rule["alert"])
    rules = []
    for severity, steps in levels.items():
        for level, minutes in steps:
            for wait, names in sorted(waits[severity].items()):
                # ALERTS carries the original alert's labels; its name moves to `escalated`, its state label is dropped.
                source = (f'ALERTS{{namespace="$namespace", alertname=~"{"|".join(sorted(names))}", '
                          f'alertstate=~"pending|firing", severity="{severity}", escalation=""}}')
                # One row per alert whatever its state: just after a restart the alert's old firing row (no stale
                # marker at shutdown) sits beside its new pending one, and dropping the label would collide them.
                expr = f'max without (alertstate) (label_replace({source}, "escalated", "$1", "alertname", "(.+)"))'
                rules.append({
                    "alert": f"Escalation{severity}Level{level}",
                    "expr": expr,
                    "for": _duration(minutes + wait),
                    "labels": {"escalation": level},
                    "annotations": {
                        "summary": f"{{{{ $labels.escalated }}}} ({severity}) has been firing for {minutes} minutes unacknowledged: escalated to level {level}",
                        "runbook_url": "docs/runbooks/escalation.md",
                    },
                })
    return {"groups": [{"name": "escalation", "rules": rules}]}


def source_rules(sources: Iterable[str]) -> dict:
    """One alert per metrics source the stack's alerts read, firing while Prometheus has none of its series, or (a
    scrape job) while none of its targets answers: a Probe's or a PodMonitor's targets exist with `up` 0 when what
    they scrape is down or refused, and the alerts on their series then go silent. The API's own targets all down is
    ApiDown (P0), not this."""
    rules = []
    for name in sorted(sources):
        selector = SOURCES.get(name) or job_source(name)
        expr = f"absent({selector})" if " or " not in selector else f"absent(({selector}))"
        if name not in SOURCES and name != "api":
            expr += f" or max by (namespace) ({selector}) == 0"
        rules.append({
            "alert": "MetricsSourceMissing",
            "expr": expr,
            "for": "15m",
            "keep_firing_for": "5m",
            # Acknowledging one missing source is not acknowledging the others.
            "labels": {"severity": "P1", "service": "monitoring", "source": name, "namespace": NAMESPACE,
                       INCIDENT_LABEL: f"MetricsSourceMissing-{name}"},
            "annotations": {
                "summary": f"Prometheus has no series from {name} for {{{{ $labels.namespace }}}}: the alerts that read it cannot fire",
                "runbook_url": "docs/runbooks/metrics-source-missing.md",
            },
        })
    return {"groups": [{"name": "sources", "rules": rules}]}


def postgres_rules(postgres: PostgresSettings) -> dict:
    """The replication alerts whose thresholds are the stack's Patroni settings and instance count."""
    lag = byte_count(postgres.patroni.maximum_lag_on_failover)
    # A replica the primary sends WAL to, catching up or streaming (postgres_exporter's pg_stat_replication rows).
    replicas = 'pg_stat_replication_pg_wal_lsn_diff{job="postgres-exporter", namespace="$namespace", state=~"streaming|catchup"}'
    rules = [{
        "alert": "PostgresReplicaLagging",
        # Measured by the primary in one query (postgres_exporter: pg_current_wal_lsn() - replay_lsn per standby), so
        # no scrape skew between members reads as lag. Patroni never promotes a replica this far behind.
        "expr": f"max by (namespace, application_name) ({replicas}) > {lag}",
        "for": "5m",
        "labels": {"severity": "P2", "service": "postgres"},
        "annotations": {
            "summary": (f"Replica {{{{ $labels.application_name }}}} replays {{{{ $value | humanize1024 }}}}B behind the "
                        f"primary in {{{{ $labels.namespace }}}}: past {postgres.patroni.maximum_lag_on_failover}, it "
                        f"cannot be promoted"),
            "runbook_url": "docs/runbooks/postgres-replica-lagging.md",
        },
    }]
    standby_cluster = postgres.standby is not None and postgres.standby.enabled
    if postgres.instances > 1 and not standby_cluster:
        expected = postgres.instances - 1
        rules.append({
            "alert": "PostgresReplicaNotStreaming",
            # Fewer replicas receiving WAL from the primary than the cluster has: one is down, disconnected, or
            # replaying from the archive because it fell too far behind (no pg_stat_replication row at all). Judged
            # only while the exporter answers (else MetricsSourceMissing).
            "expr": (f"(count by (namespace) ({replicas}) < {expected} or absent({replicas}) - 1)\n"
                     f'  and on (namespace) max by (namespace) (up{{job="postgres-exporter", namespace="$namespace"}}) == 1'),
            "for": "10m",
            "labels": {"severity": "P2", "service": "postgres"},
            "annotations": {
                "summary": f"{{{{ $value }}}} of {expected} PostgreSQL replicas receive WAL from the primary in {{{{ $labels.namespace }}}}",
                "runbook_url": "docs/runbooks/postgres-replica-not-streaming.md",
            },
        })
    # A standby cluster replicates from another region, never synchronously; one instance has no standby to choose.
    if postgres.patroni.synchronous and postgres.instances > 1 and not standby_cluster:
        rules.append({
            "alert": "PostgresSynchronousStandbyMissing",
            # A leader and no synchronous standby: Patroni lets commits go on without one (not strict mode), so a
            # failover now can lose acknowledged commits. It picks another replica within a loop when one remains.
            "expr": ('sum by (namespace) (patroni_sync_standby{job="patroni", namespace="$namespace"}) == 0\n'
                     '  and on (namespace) sum by (namespace) (patroni_primary{job="patroni", namespace="$namespace"}) >= 1'),
            "for": "5m",
            "labels": {"severity": "P2", "service": "postgres"},
            "annotations": {
                "summary": "No synchronous standby in {{ $labels.namespace }}: commits are not protected against a failover",
                "runbook_url": "docs/runbooks/postgres-synchronous-standby-missing.md",
            },
        })
    return {"groups": [{"name": "postgres.replication", "rules": rules}]}


def heartbeat_rules() -> dict:
    """Always firing: its arrival at an external heartbeat receiver proves the whole path (rules loaded, Prometheus
    evaluating, Alertmanager routing this namespace, egress); its silence there is the page."""
    return {"groups": [{"name": "heartbeat", "rules": [{
        "alert": HEARTBEAT_ALERT,
        "expr": "vector(1)",
        "labels": {"severity": "heartbeat", "namespace": NAMESPACE},
        "annotations": {"summary": "Always firing: the external heartbeat receiver pages when it stops arriving",
                        "runbook_url": "docs/runbooks/watchdog.md"},
    }]}]}


def _render(rules: dict, namespace: str, runbook_base: Optional[str], incident: bool = True) -> dict:
    rules = copy.deepcopy(rules)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = rule["expr"].replace(NAMESPACE, namespace)
            labels = rule.get("labels", {})
            for key, value in labels.items():
                labels[key] = value.replace(NAMESPACE, namespace)
            if incident and "alert" in rule:
                rule["labels"] = {INCIDENT_LABEL: rule["alert"], **labels}
            url = rule.get("annotations", {}).get("runbook_url", "")
            if runbook_base and url.startswith(RUNBOOKS_PREFIX):
                rule["annotations"]["runbook_url"] = f"{runbook_base.rstrip('/')}/{url[len(RUNBOOKS_PREFIX):]}"
    return rules


def platform_rules(namespace: str, alerting: AlertingSettings, sources: Iterable[str], slos: SloSettings,
                   postgres: PostgresSettings, runbook_base: Optional[str] = None) -> dict[str, dict]:
    """Every rule group of the stack by PrometheusRule name (without its '-rules' suffix), rendered for `namespace`."""
    groups = {**_rule_files(), "sources": source_rules(sources), "heartbeat": heartbeat_rules(),
              "postgres": postgres_rules(postgres)}
    if slos.objectives():
        groups["slo"] = slo_rules(slos)
    rendered = {name: _render(rules, namespace, runbook_base) for name, rules in groups.items()}
    # An escalation keeps the incident label of the alert it escalates (from ALERTS): the same silence acknowledges both.
    rendered["escalation"] = _render(escalation_rules(alerting, groups), namespace, runbook_base, incident=False)
    return rendered
