"""The stack's alert rules as rendered for its namespace, by Prometheus' own tools (promtool of the chart's version):
`promtool check rules` on every group, and `promtool test rules` with, for every alert, series just past its
threshold (it fires, with its severity, service and incident label) and series just short of it (it stays silent);
the same firing series from another namespace stay silent too (another tenant never raises our alert)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.gotools import binary
from tests.monitoring.rules import NAMESPACE, OTHER_NAMESPACE, alerts, rule_files, rule_files_for, source_series

NS = NAMESPACE
HOUR = 3600


@dataclass
class Case:
    alert: str
    fires: dict[str, str]
    silent: dict[str, str]
    at: str
    labels: dict[str, str] = field(default_factory=dict)
    # Sampling and evaluation step: coarse for the day-long backup windows (their `for:` is 15 min).
    step: str = "1m"


def _requests(ok: int, errors: int, probe_errors: int = 0) -> dict[str, str]:
    base = f'job="api", namespace="{NS}", method="POST"'
    series = {
        f'http_requests_total{{{base}, route="/v1/recommendations", status="200"}}': f"0+{ok}x30",
        f'http_requests_total{{{base}, route="/v1/recommendations", status="503"}}': f"0+{errors}x30",
    }
    if probe_errors:
        # Readiness probes failing during a cache outage are not users: they must not count.
        series[f'http_requests_total{{job="api", namespace="{NS}", method="GET", route="/ready", status="503"}}'] = f"0+{probe_errors}x30"
    return series


def _latency(fast: int, slow: int) -> dict[str, str]:
    base = f'job="api", namespace="{NS}", route="/v1/valuations"'
    return {
        f'http_request_duration_seconds_bucket{{{base}, le="1"}}': f"0+{fast}x30",
        f'http_request_duration_seconds_bucket{{{base}, le="2.5"}}': f"0+{fast + slow}x30",
        f'http_request_duration_seconds_bucket{{{base}, le="+Inf"}}': f"0+{fast + slow}x30",
    }


def _dependency(name: str, *values: int) -> dict[str, str]:
    return {f'dependency_up{{job="api", namespace="{NS}", pod="api-{i}", dependency="{name}"}}': f"{v}x20" for i, v in enumerate(values)}


def _ratio(metric_ok: str, metric_all: str, ok: float, total: float, extra: str = "") -> dict[str, str]:
    return {
        f'{metric_ok}{{job="api", namespace="{NS}"{extra}}}': f"0+{ok}x130",
        f'{metric_all}{{job="api", namespace="{NS}"{extra}}}': f"0+{total}x130",
    }


def _feedback(accurate: float, inaccurate: float) -> dict[str, str]:
    return {
        f'valuation_feedback_total{{job="api", namespace="{NS}", outcome="accurate"}}': f"0+{accurate}x130",
        f'valuation_feedback_total{{job="api", namespace="{NS}", outcome="inaccurate"}}': f"0+{inaccurate}x130",
    }


def _container(metric: str, usage: str, limit_resource: str, limit: float) -> dict[str, str]:
    pod = f'namespace="{NS}", pod="api-0", container="api"'
    return {
        f'{metric}{{{pod}, job="kubelet", metrics_path="/metrics/cadvisor"}}': usage,
        # Two kube-state-metrics replicas report the same limit: it must not count twice.
        f'kube_pod_container_resource_limits{{{pod}, resource="{limit_resource}", instance="ksm-0"}}': f"{limit}x30",
        f'kube_pod_container_resource_limits{{{pod}, resource="{limit_resource}", instance="ksm-1"}}': f"{limit}x30",
    }


def _ready(*states: int) -> dict[str, str]:
    return {f'kube_pod_status_ready{{namespace="{NS}", pod="postgres-instance1-{i}-0", condition="true"}}': f"{s}x20"
            for i, s in enumerate(states)}


def _cronjob(name: str, succeeded_hours_ago: float | None, at_hours: float, created_hours_ago: float = 1000) -> dict[str, str]:
    """kube-state-metrics' view of a CronJob; a job that never succeeded has no last-success series at all."""
    labels = f'namespace="{NS}", cronjob="{name}"'
    samples = int(at_hours * 60 / 15) + 1
    created = max(0.0, (at_hours - created_hours_ago) * HOUR)
    series = {f"kube_cronjob_created{{{labels}}}": f"{created:.0f}x{samples}"}
    if succeeded_hours_ago is not None:
        success = (at_hours - succeeded_hours_ago) * HOUR
        series[f"kube_cronjob_status_last_successful_time{{{labels}}}"] = f"{success:.0f}x{samples}"
    return series


def _pgbackups(repo: str, kind: str, completed_hours_ago: float | None, at_hours: float, created_hours_ago: float | None = None,
               name: str = "a") -> dict[str, str]:
    """kube-state-metrics' view of one PerconaPGBackup (monitoring/kube-state-metrics/percona-backups.yaml): created,
    its state, and its completion once it succeeded (a failed run has no completion time and no backup_type)."""
    created_ago = created_hours_ago if created_hours_ago is not None else (completed_hours_ago or 0) + 0.2
    samples = int(at_hours * 4) + 1
    base = f'namespace="{NS}", name="postgres-{repo}-{kind}-{name}", cluster="postgres", repo="{repo}"'
    typed = f'{base}, backup_type="{kind}"' if completed_hours_ago is not None else base
    state = "Succeeded" if completed_hours_ago is not None else "Failed"
    series = {
        f"kube_customresource_perconapgbackup_created_timestamp_seconds{{{typed}}}": f"{(at_hours - created_ago) * HOUR:.0f}x{samples}",
        f'kube_customresource_perconapgbackup_state{{{typed}, state="{state}"}}': f"1x{samples}",
    }
    if completed_hours_ago is not None:
        series[f"kube_customresource_perconapgbackup_completed_timestamp_seconds{{{typed}}}"] = f"{(at_hours - completed_hours_ago) * HOUR:.0f}x{samples}"
    return series


def _canary(values: str, honor: bool = False, pod: str = "flagger-a") -> dict[str, str]:
    where = f'namespace="{NS}"' if honor else f'namespace="flagger-system", exported_namespace="{NS}"'
    return {f'flagger_canary_status{{{where}, name="api", job="flagger", pod="{pod}"}}': values}


def _volume(used_from: float, used_to: float) -> dict[str, str]:
    """Six hours of linear growth (5 min steps) of a 1000-byte volume."""
    steps = 72
    used = [used_from + (used_to - used_from) * i / steps for i in range(steps + 1)]
    pvc = f'namespace="{NS}", persistentvolumeclaim="postgres-repo1"'
    return {f"kubelet_volume_stats_used_bytes{{{pvc}}}": " ".join(f"{u * 1000:.0f}" for u in used),
            f"kubelet_volume_stats_available_bytes{{{pvc}}}": " ".join(f"{(1 - u) * 1000:.0f}" for u in used),
            f"kubelet_volume_stats_capacity_bytes{{{pvc}}}": f"1000x{steps}"}


def _archiver(failed_per_min: float, archived_per_min: float) -> dict[str, str]:
    base = f'job="postgres-exporter", namespace="{NS}"'
    return {
        f"pg_stat_archiver_failed_count{{{base}}}": f"0+{failed_per_min}x30",
        f"pg_stat_archiver_archived_count{{{base}}}": f"100+{archived_per_min}x30",
    }


def _wal(times_max: float) -> dict[str, str]:
    base = f'job="postgres-exporter", namespace="{NS}"'
    gib = 2**30
    return {f"pg_wal_size_bytes{{{base}}}": f"{int(times_max * gib)}x30", f"pg_settings_max_wal_size_bytes{{{base}}}": f"{gib}x30"}


def _patroni(primary: tuple[int, ...], sync: tuple[int, ...] = (0, 0, 0), standby_leader: tuple[int, ...] = (0, 0, 0)) -> dict[str, str]:
    """Each member's Patroni /metrics (job "patroni", one pod each): whether it leads, is the standby leader, is the
    synchronous standby."""
    series = {}
    for i, (p, y, s) in enumerate(zip(primary, sync, standby_leader)):
        member = f'job="patroni", namespace="{NS}", pod="postgres-instance1-{i}-0", scope="postgres-ha"'
        series |= {f"patroni_primary{{{member}}}": f"{p}x20", f"patroni_sync_standby{{{member}}}": f"{y}x20",
                   f"patroni_standby_leader{{{member}}}": f"{s}x20"}
    return series


def _connections(clients: tuple[int, ...], others: int = 0) -> dict[str, str]:
    base = f'job="postgres-exporter", namespace="{NS}", datname="realestate", usename="app", application_name="", wait_event_type="", wait_event=""'
    series = {f'pg_stat_activity_count{{{base}, state="{state}", backend_type="client backend"}}': f"{n}x20"
              for state, n in zip(("active", "idle", "idle in transaction"), clients)}
    # Replication senders and workers have their own slots: they do not count against max_connections.
    series[f'pg_stat_activity_count{{{base}, state="active", backend_type="walsender"}}'] = f"{others}x20"
    series[f'pg_settings_max_connections{{job="postgres-exporter", namespace="{NS}"}}'] = "100x20"
    return series


def _milvus_calls(per_minute: int, slow_share: float) -> dict[str, str]:
    base = f'job="api", namespace="{NS}", pod="api-0", dependency="milvus"'
    fast = per_minute * (1 - slow_share)
    return {f'dependency_request_duration_seconds_bucket{{{base}, le="1.0"}}': f"0+{fast}x30",
            f'dependency_request_duration_seconds_bucket{{{base}, le="2.5"}}': f"0+{per_minute}x30",
            f'dependency_request_duration_seconds_bucket{{{base}, le="+Inf"}}': f"0+{per_minute}x30",
            f'dependency_request_duration_seconds_count{{{base}}}': f"0+{per_minute}x30"}


def _sources(rules: int, vector: int, milvus_up: tuple[int, ...] = (1, 1)) -> dict[str, str]:
    series = {f'recommendation_source_total{{job="api", namespace="{NS}", pod="api-0", source="{source}"}}': f"0+{n}x40"
              for source, n in (("rules", rules), ("vector", vector))}
    return series | {f'dependency_up{{job="api", namespace="{NS}", pod="api-{i}", dependency="milvus"}}': f"{up}x40"
                     for i, up in enumerate(milvus_up)}


def _replica_lag(lag_bytes: int, state: str = "streaming", member: int = 1) -> dict[str, str]:
    return {f'pg_stat_replication_pg_wal_lsn_diff{{job="postgres-exporter", namespace="{NS}", application_name="postgres-instance1-{member}-0", '
            f'client_addr="10.0.0.{member}", state="{state}", slot_name=""}}': f"{lag_bytes}x20"}


def _exporter(up: int) -> dict[str, str]:
    return {f'up{{job="postgres-exporter", namespace="{NS}", instance="10.0.0.9:9187"}}': f"{up}x20"}


def _probe(probe: str, values: str, instance: str = "https://api.example.com/ready") -> dict[str, str]:
    """One probed URL as the Probe's scrape gives it: job "blackbox", the Probe's namespace, the URL as instance."""
    return {f'probe_success{{job="blackbox", namespace="{NS}", instance="{instance}", probe="{probe}"}}': values}


def _edge(ok: float, errors: float, route_namespace: str = NS) -> dict[str, str]:
    """One route's cluster on the Gateway's Envoy, as its PodMonitor relabels it: responses per minute by class."""
    cluster = f'job="envoy", namespace="{NS}", pod_namespace="envoy-gateway-system", envoy_cluster_name="httproute/{route_namespace}/api/rule/0"'
    return {f'envoy_cluster_upstream_rq_xx{{{cluster}, envoy_response_code_class="2"}}': f"0+{ok}x30",
            f'envoy_cluster_upstream_rq_xx{{{cluster}, envoy_response_code_class="5"}}': f"0+{errors}x30"}


CASES = [
    # 2 % of the edge's answers are 5xx vs 0.5 %; silent with too little traffic to judge, when the API's own errors
    # already page (ApiErrorRateHigh), and for another namespace's route on a shared Gateway.
    Case("EdgeErrorRateHigh", _edge(98, 2), _edge(99.5, 0.5), "10m", {"namespace": NS}),
    Case("EdgeErrorRateHigh", _edge(98, 2), _edge(4.9, 1), "10m"),
    Case("EdgeErrorRateHigh", _edge(98, 2), {**_edge(98, 2), **_requests(98, 2)}, "10m"),
    Case("EdgeErrorRateHigh", _edge(98, 2), {**_edge(100, 0), **_edge(50, 50, "another-team")}, "10m"),
    Case("EdgeErrorRateHigh", _edge(98, 2), {**_edge(98, 2), f'up{{job="api", namespace="{NS}", pod="api-0"}}': "0x30"}, "10m"),
    # /ready failing from outside for over two minutes vs failing twice then answering; and failing while every API
    # pod is down (ApiDown pages instead, once).
    Case("PublicEndpointDown", _probe("ready", "0x10"), _probe("ready", "0x1 1x8"), "5m",
         {"namespace": NS, "instance": "https://api.example.com/ready"}),
    Case("PublicEndpointDown", _probe("ready", "0x10"),
         {**_probe("ready", "0x10"), f'up{{job="api", namespace="{NS}", pod="api-0"}}': "0x10"}, "5m"),
    Case("PublicRecommendationFailing", _probe("recommendation", "0x10", "https://api.example.com/v1/recommendations"),
         _probe("recommendation", "0x4 1x6", "https://api.example.com/v1/recommendations"), "8m", {"namespace": NS}),
    Case("PublicRecommendationFailing", _probe("recommendation", "0x10"),
         {**_probe("recommendation", "0x10"), f'up{{job="api", namespace="{NS}", pod="api-0"}}': "0x10"}, "8m"),
    Case("PublicCertificateExpiringSoon",
         {f'probe_ssl_earliest_cert_expiry{{job="blackbox", namespace="{NS}", instance="https://api.example.com/ready", probe="ready"}}':
          f"{13 * 86400 + 2 * HOUR}x130"},
         {f'probe_ssl_earliest_cert_expiry{{job="blackbox", namespace="{NS}", instance="https://api.example.com/ready", probe="ready"}}':
          f"{15 * 86400 + 2 * HOUR}x130"}, "2h", {"namespace": NS}, step="5m"),
    # Three members answer and none leads vs one leading; a standby cluster's standby leader leads too.
    Case("PostgresNoLeader", _patroni((0, 0, 0)), _patroni((0, 1, 0)), "5m", {"namespace": NS}),
    Case("PostgresNoLeader", _patroni((0, 0, 0)), _patroni((0, 0, 0), standby_leader=(1, 0, 0)), "5m"),
    Case("PostgresSynchronousStandbyMissing", _patroni((1, 0, 0)), _patroni((1, 0, 0), sync=(0, 1, 0)), "8m", {"namespace": NS}),
    # 91 of 100 connections vs 89 (and 10 replication senders, which have their own slots).
    Case("PostgresConnectionsNearLimit", _connections((50, 40, 1)), _connections((50, 38, 1), others=10), "15m", {"namespace": NS}),
    # One byte past maximumLagOnFailover (1Mi) vs exactly it; a replica still catching up counts too.
    Case("PostgresReplicaLagging", _replica_lag(2**20 + 1), _replica_lag(2**20), "8m",
         {"application_name": "postgres-instance1-1-0", "namespace": NS}),
    Case("PostgresReplicaLagging", _replica_lag(2**20 + 1, state="catchup"), _replica_lag(2**20 + 1, state="backup"), "8m"),
    # Three instances: one replica receiving WAL vs two; none at all (no row) while the exporter answers vs while it
    # does not (MetricsSourceMissing's).
    Case("PostgresReplicaNotStreaming", {**_replica_lag(0), **_exporter(1)}, {**_replica_lag(0), **_replica_lag(0, member=2), **_exporter(1)},
         "15m", {"namespace": NS}),
    Case("PostgresReplicaNotStreaming", _exporter(1), _exporter(0), "15m", {"namespace": NS}),
    # p99 by interpolation in the (1 s, 2.5 s] bucket: 1.75 s (2 % slow) vs under 1 s (0.5 % slow); and slow calls
    # below one a second are not judged.
    Case("ApiModelServiceSlow", _milvus_calls(100, 0.02), _milvus_calls(100, 0.005), "20m", {"namespace": NS}),
    Case("ApiModelServiceSlow", _milvus_calls(100, 0.02), _milvus_calls(50, 0.02), "20m"),
    # 60 % from the rule engine while Milvus is up vs 40 %; and 60 % while one pod sees Milvus down (that is
    # ApiModelServiceUnreachable's, or a circuit doing its job).
    Case("RecommendationsDegraded", _sources(60, 40), _sources(40, 60), "35m", {"namespace": NS}),
    Case("RecommendationsDegraded", _sources(60, 40), _sources(60, 40, milvus_up=(1, 0)), "35m"),
    Case("ApiDown", {f'up{{job="api", namespace="{NS}", pod="api-0"}}': "0x10"},
         {f'up{{job="api", namespace="{NS}", pod="api-0"}}': "0x10", f'up{{job="api", namespace="{NS}", pod="api-1"}}': "1x10"}, "5m"),
    Case("ApiDatabaseUnreachable", _dependency("postgres", 0, 0), _dependency("postgres", 0, 1), "5m"),
    Case("ApiModelServiceUnreachable", _dependency("milvus", 0, 0), _dependency("milvus", 1, 0), "5m"),
    Case("ApiCacheUnreachable", _dependency("redis", 0, 0), _dependency("redis", 0, 1), "10m"),
    Case("ListingIndexBacklog",
         {f'listing_index_backlog{{job="api", namespace="{NS}", pod="api-{i}"}}': "1x40" for i in range(2)},
         {f'listing_index_backlog{{job="api", namespace="{NS}", pod="api-{i}"}}': f"{1 - i}x40" for i in range(2)}, "35m"),
    # Two entries repaired by one pod vs a counter that never moves (a pod restart's reset is no repair).
    Case("ListingIndexEntriesLost", {f'listing_index_repairs_total{{job="api", namespace="{NS}", pod="api-0"}}': "0x10 2x20"},
         {f'listing_index_repairs_total{{job="api", namespace="{NS}", pod="api-0"}}': "3x20 0x20"}, "15m", {"kind": "event"}),
    # 1.2 % of user requests fail vs 0.8 % — and 50 failing probes a minute do not count.
    Case("ApiErrorRateHigh", _requests(988, 12), _requests(992, 8, probe_errors=50), "15m"),
    # p99 by interpolation in the (1 s, 2.5 s] bucket: 2.05 s vs 1.9 s.
    Case("ApiLatencyHigh", _latency(29, 1), _latency(39, 1), "20m"),
    Case("RecommendationSuccessLow",
         _ratio("recommendation_success_total", "recommendation_requests_total", 89, 100, ', model="hybrid"'),
         _ratio("recommendation_success_total", "recommendation_requests_total", 91, 100, ', model="hybrid"'), "35m"),
    # 88.9 % accurate vs 90.9 %; and too few reports to judge (under 20 in the hour) stays silent.
    Case("ValuationAccuracyLow", _feedback(8, 1), _feedback(10, 1), "100m"),
    Case("ContainerCpuHigh", _container("container_cpu_usage_seconds_total", "0+55.2x30", "cpu", 1),
         _container("container_cpu_usage_seconds_total", "0+52.8x30", "cpu", 1), "25m"),
    Case("ContainerMemoryHigh", _container("container_memory_working_set_bytes", "920x30", "memory", 1000),
         _container("container_memory_working_set_bytes", "880x30", "memory", 1000), "15m"),
    Case("VolumeFillingUp",
         {f'kubelet_volume_stats_used_bytes{{namespace="{NS}", persistentvolumeclaim="postgres-repo1"}}': "920x20",
          f'kubelet_volume_stats_capacity_bytes{{namespace="{NS}", persistentvolumeclaim="postgres-repo1"}}': "1000x20"},
         {f'kubelet_volume_stats_used_bytes{{namespace="{NS}", persistentvolumeclaim="postgres-repo1"}}': "880x20",
          f'kubelet_volume_stats_capacity_bytes{{namespace="{NS}", persistentvolumeclaim="postgres-repo1"}}': "1000x20"}, "10m"),
    Case("PodCrashLooping",
         {f'kube_pod_container_status_waiting_reason{{namespace="{NS}", pod="api-0", container="api", reason="CrashLoopBackOff"}}': "1x20"},
         {f'kube_pod_container_status_waiting_reason{{namespace="{NS}", pod="api-0", container="api", reason="CrashLoopBackOff"}}': "0x20"}, "15m"),
    # At 2 h: 13 days left vs 15.
    Case("CertificateExpiringSoon",
         {f'certmanager_certificate_expiration_timestamp_seconds{{namespace="{NS}", name="api-tls"}}': f"{13 * 86400 + 2 * HOUR}x130"},
         {f'certmanager_certificate_expiration_timestamp_seconds{{namespace="{NS}", name="api-tls"}}': f"{15 * 86400 + 2 * HOUR}x130"}, "2h"),
    Case("PostgresDown", _ready(0, 0, 0), _ready(0, 0, 1), "5m"),
    Case("PostgresInstanceNotReady", _ready(1, 0, 1), _ready(1, 1, 1), "15m"),
    Case("RedisDown", {f'redis_up{{job="redis", namespace="{NS}"}}': "0x10", f'up{{job="redis", namespace="{NS}"}}': "1x10"},
         {f'redis_up{{job="redis", namespace="{NS}"}}': "1x10", f'up{{job="redis", namespace="{NS}"}}': "1x10"}, "5m"),
    Case("MilvusDown", {f'up{{job="milvus", namespace="{NS}"}}': "0x10"}, {f'up{{job="milvus", namespace="{NS}"}}': "1x10"}, "5m"),
    # At 30 h: the last success 27 h ago vs 25 h ago.
    Case("PostgresFullBackupTooOld", _pgbackups("repo1", "full", 27, 30), _pgbackups("repo1", "full", 25, 30), "30h",
         {"repo": "repo1"}, step="15m"),
    # Only incrementals completing in repo2: its full is what counts, and it is 27 h old.
    Case("PostgresFullBackupTooOld", {**_pgbackups("repo2", "full", 27, 30), **_pgbackups("repo2", "incr", 1, 30, name="b")},
         {**_pgbackups("repo2", "full", 25, 30), **_pgbackups("repo2", "incr", 1, 30, name="b")}, "30h", {"repo": "repo2"}, step="15m"),
    Case("PostgresIncrementalBackupTooOld", _pgbackups("repo1", "incr", 3.5, 30), _pgbackups("repo1", "incr", 2.5, 30), "30h", step="15m"),
    # Every run failing: no completion at all, the first attempt 27 h old vs 25 h.
    Case("PostgresFullBackupTooOld", _pgbackups("repo1", "full", None, 30, created_hours_ago=27),
         _pgbackups("repo1", "full", None, 30, created_hours_ago=25), "30h", {"repo": "repo1"}, step="15m"),
    # Failed 2 h ago vs 7 h ago (history); a succeeded run is no failure.
    Case("PostgresBackupFailed", _pgbackups("repo2", "full", None, 30, created_hours_ago=2),
         {**_pgbackups("repo2", "full", None, 30, created_hours_ago=7), **_pgbackups("repo1", "full", 1, 30, name="ok")}, "30h",
         {"repo": "repo2"}, step="15m"),
    Case("BackupVerifyFailing", _cronjob("postgres-backup-verify", 27, 30), _cronjob("postgres-backup-verify", 25, 30), "30h", step="15m"),
    Case("RestoreDrillFailing", _cronjob("postgres-restore-drill", 200, 210), _cronjob("postgres-restore-drill", 190, 210), "210h",
         {"cronjob": "postgres-restore-drill"}, step="15m"),
    # Silent: a CronJob created 2.5 h ago that has not succeeded yet has had no chance.
    Case("RedisBackupTooOld", _cronjob("redis-backup", 3.5, 30), _cronjob("redis-backup", None, 30, created_hours_ago=2.5), "30h", step="15m"),
    # Failing throughout (even while other pushes succeed) fires; failures that stopped after 5 minutes do not.
    Case("PostgresWalArchivingFailing", _archiver(failed_per_min=1, archived_per_min=1),
         {**_archiver(0, 1), f'pg_stat_archiver_failed_count{{job="postgres-exporter", namespace="{NS}"}}': "0 1 2 3 4 5x25"}, "25m"),
    Case("PostgresWalArchivingFailing", _archiver(failed_per_min=1, archived_per_min=0), _archiver(failed_per_min=0, archived_per_min=0), "25m"),
    Case("PostgresWalPilingUp", _wal(2.01), _wal(2.0), "20m"),
    Case("PostgresArchiverMetricsMissing", {f'up{{job="postgres-exporter", namespace="{NS}"}}': "0x30"},
         {f'up{{job="postgres-exporter", namespace="{NS}"}}': "1x30", **_archiver(0, 1)}, "20m"),
    Case("PostgresArchiverMetricsMissing", {f'up{{job="postgres-exporter", namespace="{NS}"}}': "1x30"},
         {f'up{{job="postgres-exporter", namespace="{NS}"}}': "1x30", **_archiver(0, 1)}, "20m"),
    Case("MilvusBackupTooOld", _cronjob("milvus-backup", 27, 30), _cronjob("milvus-backup", 25, 30), "30h", step="15m"),
    # The same alerts by their other paths.
    Case("ApiDown", {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api"}}': "0x10"},
         {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api"}}': "1x10"}, "5m"),  # no pod, no target
    # Under a canary the target 'api' sits at 0 between releases while Flagger's 'api-primary' serves.
    Case("ApiDown", {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api"}}': "0x10",
                     f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api-primary"}}': "0x10"},
         {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api"}}': "0x10",
          f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="api-primary"}}': "3x10"}, "5m"),
    Case("RedisDown", {f'kube_statefulset_status_replicas_ready{{namespace="{NS}", statefulset="redis"}}': "0x10"},
         {f'kube_statefulset_status_replicas_ready{{namespace="{NS}", statefulset="redis"}}': "1x10"}, "5m"),
    Case("MilvusDown", {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="milvus"}}': "0x10"},
         {f'kube_deployment_status_replicas_available{{namespace="{NS}", deployment="milvus"}}': "1x10"}, "5m"),
    # A container that runs 2 min between back-offs: the waiting series comes and goes, the alert holds.
    Case("PodCrashLooping",
         {f'kube_pod_container_status_waiting_reason{{namespace="{NS}", pod="api-0", container="api", reason="CrashLoopBackOff"}}':
          " ".join(["1", "_", "_"] * 10)},
         {f'kube_pod_container_status_waiting_reason{{namespace="{NS}", pod="api-0", container="api", reason="CrashLoopBackOff"}}':
          " ".join(["1"] + ["_"] * 6 + ["1"] + ["_"] * 6 + ["1"] + ["_"] * 6)}, "25m"),
    # Never succeeded: the age of the CronJob counts (27 h vs 25 h); no last-success series at all.
    Case("BackupVerifyFailing", _cronjob("postgres-backup-verify", None, 30, created_hours_ago=27),
         _cronjob("postgres-backup-verify", None, 30, created_hours_ago=25), "30h", step="15m"),
    # Flagger scraped without honorLabels (its chart's default): the canary's namespace is exported_namespace. A rollback
    # 10 minutes ago tells; one 40 minutes ago is history, not a page (it never escalates); a restarted Flagger's fresh
    # series at 2 is no new failure.
    Case("CanaryFailed", _canary("0x40 2x10"), _canary("0x5 2x45"), "50m", {"namespace": NS, "kind": "event"}),
    Case("CanaryFailed", _canary("0x20 2x10"), _canary("_x20 2x10"), "30m"),
    # Scraped with honorLabels: the same by its own namespace label.
    Case("CanaryFailed", _canary("0x20 2x10", honor=True), _canary("1x20 1x10", honor=True), "30m"),
    Case("CanaryStuck", _canary("0x40"), _canary("0x25 1x15"), "40m", {"namespace": NS}),
    # Two Flagger pods (a rollout of Flagger itself) report the same canary: one alert, no label clash.
    Case("CanaryFailed", {**_canary("0x40 2x10"), **_canary("0x40 2x10", pod="flagger-b")},
         {**_canary("0x5 2x45"), **_canary("0x5 2x45", pod="flagger-b")}, "50m"),
    Case("CertificateExpiringSoon",
         {f'certmanager_certificate_expiration_timestamp_seconds{{namespace="cert-manager", exported_namespace="{NS}", name="api-tls", pod="{pod}"}}':
          f"{13 * 86400 + 2 * HOUR}x130" for pod in ("cm-a", "cm-b")},
         {f'certmanager_certificate_expiration_timestamp_seconds{{namespace="cert-manager", exported_namespace="{NS}", name="api-tls", pod="{pod}"}}':
          f"{15 * 86400 + 2 * HOUR}x130" for pod in ("cm-a", "cm-b")}, "2h", {"namespace": NS}),
    # The business ratios at 0 %: no success was ever counted (the series does not exist), 60 requests in 15 min;
    # and 20 requests all failing at night are below the floor.
    Case("RecommendationSuccessLow", {f'recommendation_requests_total{{job="api", namespace="{NS}", model="hybrid"}}': "0+4x130"},
         {f'recommendation_requests_total{{job="api", namespace="{NS}", model="hybrid"}}': "0+1x130"}, "35m"),
    Case("ValuationAccuracyLow", {f'valuation_feedback_total{{job="api", namespace="{NS}", outcome="inaccurate"}}': "0+1x130"},
         {f'valuation_feedback_total{{job="api", namespace="{NS}", outcome="inaccurate"}}': "0+0.1x130"}, "100m"),
    # 6 h of steady growth to 60 % used: full in 8 h vs in 48 h.
    Case("VolumeFullSoon", _volume(used_from=0.3, used_to=0.6), _volume(used_from=0.55, used_to=0.6), "6h", step="5m"),
    Case("MetricsSourceMissing", source_series(but="api"), source_series(), "20m", {"source": "api"}),
    Case("MetricsSourceMissing", source_series(but="postgres-backups"), source_series(), "20m", {"source": "postgres-backups"}),
    # Every blackbox target answering 0 (the exporter down or refused): the probes' alerts are silent, so this is not.
    Case("MetricsSourceMissing",
         {**source_series(but="blackbox"), f'up{{job="blackbox", namespace="{NS}", instance="https://api.example.com/ready"}}': "0x30"},
         {**source_series(but="blackbox"), f'up{{job="blackbox", namespace="{NS}", instance="https://api.example.com/ready"}}': "0x5 1x25"},
         "20m", {"source": "blackbox"}),
    Case("Watchdog", {}, {}, "1m", {"namespace": NS}),
]


def _promtool_test(tmp_path: Path, case: Case, series: dict[str, str], expected: list) -> subprocess.CompletedProcess:
    test = {
        "rule_files": [str(p) for p in rule_files_for(case.alert)],
        "evaluation_interval": case.step,
        "tests": [{
            "interval": case.step,
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": case.at, "alertname": case.alert, "exp_alerts": expected}],
        }],
    }
    path = tmp_path / f"{case.alert}.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


def test_every_rule_group_passes_promtool_check():
    done = subprocess.run([binary("promtool"), "check", "rules", *map(str, rule_files())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case():
    escalations = {a for a in alerts() if a.startswith("Escalation")}
    # The SLOs' burn-rate alerts have their own boundary cases per SLO and window: test_slo_rules.py.
    assert {c.alert for c in CASES} == set(alerts()) - escalations - {"ErrorBudgetBurn"}


IDS = [f"{c.alert}-{sum(1 for d in CASES[:i] if d.alert == c.alert)}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_alert_fires_just_past_its_threshold(case, tmp_path):
    rule = alerts()[case.alert]
    done = _promtool_test(tmp_path, case, case.fires, [])
    # Asked to expect nothing, promtool prints what fired instead: it must have fired.
    assert done.returncode == 1 and case.alert in done.stdout + done.stderr, done.stdout + done.stderr
    fired = (done.stdout + done.stderr).split("got:")[1]
    # One incident per alert (per source for MetricsSourceMissing: acknowledging one is not acknowledging all).
    incident = f"{case.alert}-{case.labels['source']}" if case.alert == "MetricsSourceMissing" else case.alert
    assert f'severity="{rule["labels"]["severity"]}"' in fired and f'incident="{incident}"' in fired
    if "service" in rule["labels"]:
        assert f'service="{rule["labels"]["service"]}"' in fired
    for key, value in case.labels.items():
        assert f'{key}="{value}"' in fired


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_alert_stays_silent_just_short_of_it(case, tmp_path):
    if case.alert == "Watchdog":
        pytest.skip("always fires")
    done = _promtool_test(tmp_path, case, case.silent, [])
    assert done.returncode == 0, done.stdout + done.stderr


# Alerts that fire on the absence of series: another namespace's series cannot stop them, by design.
ABSENCE = {"Watchdog", "MetricsSourceMissing"}


@pytest.mark.parametrize("case", [c for c in CASES if c.alert not in ABSENCE], ids=[i for c, i in zip(CASES, IDS) if c.alert not in ABSENCE])
def test_another_namespaces_series_never_raise_it(case, tmp_path):
    moved = {s.replace(f'namespace="{NS}"', f'namespace="{OTHER_NAMESPACE}"'): v for s, v in case.fires.items()}
    done = _promtool_test(tmp_path, case, moved, [])
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_alerts_rule_files_hold_what_it_reads():
    # EdgeErrorRateHigh reads the API's recorded error ratio (api.rules.yml) and ApiDown's ALERTS.
    names = [path.name for path in rule_files_for("EdgeErrorRateHigh")]
    assert "edge.rules.yml" in names and "api.rules.yml" in names
    assert [path.name for path in rule_files_for("RestoreDrillFailing")] == ["backups.rules.yml"]
