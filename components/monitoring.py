"""What the cluster's prometheus-operator (kube-prometheus-stack) needs from the platform, all in the stack's namespace:
scrape targets (a PodMonitor for the API's pods, primary and canary alike; ServiceMonitors for Milvus and the
exporters), Grafana dashboards (ConfigMaps for its sidecar), the stack's rules (components/alert_rules.py) as
PrometheusRules, and its incident routing as an AlertmanagerConfig with the Secret of channel credentials it names
(components/alerting.py).

Prometheus must select these objects: `monitoring.selectorLabels` set to what its selectors ask for
(kube-prometheus-stack: `release: <its release>`), or a Prometheus that selects every object. The release scripts
check after every deploy that it did (ops/release/monitoring_check.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import alert_rules, alerting
from components.component import Component
from components.stateful import HEADLESS_LABEL
from components.workload import labels
from settings.monitoring import MonitoringSettings
from settings.postgres import PostgresSettings

DASHBOARDS_DIR = alert_rules.RULES_DIR.parent / "dashboards"
# The label kube-prometheus-stack's Grafana sidecar collects dashboards by (in every namespace by default).
DASHBOARD_LABEL = "grafana_dashboard"
ROUTING_NAME = "incident-routing"


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


@dataclass(frozen=True)
class PodScrape:
    """Every pod with `labels`, scraped at /metrics on its container port named `port`, or on `other_port` of the
    same pod: a port no container declares (Patroni's REST API on the operator's pods), which prometheus-operator's
    `portNumber` would never find (it keeps only targets of a declared container port)."""

    labels: dict[str, str]
    port: str
    other_port: Optional[int] = None
    path: str = "/metrics"
    # Pods of another namespace (a controller's proxies): their series are relabelled into the stack's namespace, the
    # one the rules select, as prometheus-operator's enforcedNamespaceLabel would; `pod_namespace` keeps theirs.
    namespace: Optional[str] = None
    # Series kept of what the pods serve (prometheus-operator's metricRelabelings), the rest dropped at scrape.
    keep_series: tuple[dict, ...] = ()
    # https without verifying the server: Patroni serves its API with the cluster's own CA, which lives in a Secret
    # Prometheus cannot read; the metrics are not secret and the connection stays in the cluster (the operator's
    # own PMM integration scrapes it the same way).
    https_unverified: bool = False

    def endpoint(self, job: str, namespace: str) -> dict:
        endpoint: dict = {"port": self.port}
        if self.https_unverified:
            endpoint |= {"scheme": "https", "tlsConfig": {"insecureSkipVerify": True}}
        # job="<job>" for every pod (the rules select on it); namespace and pod stay the target's.
        relabelings = [{"targetLabel": "job", "replacement": job}]
        if self.namespace is not None:
            # prometheus-operator sets `namespace` from the pod before these run.
            relabelings += [{"sourceLabels": ["namespace"], "targetLabel": "pod_namespace"},
                            {"targetLabel": "namespace", "replacement": namespace}]
        if self.other_port is not None:
            # The pod's address with the other port (IPv6 addresses keep their brackets).
            relabelings.append({"sourceLabels": ["__address__"], "regex": "(.+):[0-9]+", "targetLabel": "__address__",
                                "replacement": f"$1:{self.other_port}"})
        if self.keep_series:
            endpoint["metricRelabelings"] = list(self.keep_series)
        return {**endpoint, "path": self.path, "interval": "15s", "scrapeTimeout": "10s", "relabelings": relabelings}


@dataclass
class MonitoringArgs:
    namespace: pulumi.Input[str]
    # Its name, known at render time: the rules select it.
    namespace_name: str
    stack: str
    settings: MonitoringSettings
    # The alert channels' secret values by config key (only those the settings need).
    alert_secrets: dict[str, pulumi.Output[str]]
    # Service name → port name to scrape at /metrics.
    scrape: dict[str, str]
    # Job name → the pods to scrape each of (pods no one Service selects, or each member of a cluster).
    pod_scrape: dict[str, PodScrape] = field(default_factory=dict)
    # The DingTalk bridge the program deployed, if any.
    dingtalk_url: Optional[str] = None
    # Metrics sources besides the scrape jobs that the stack's alerts read (alert_rules.SOURCES names).
    sources: list[str] = field(default_factory=list)
    # The cluster's replication settings set the replication alerts' thresholds.
    postgres: PostgresSettings = field(default_factory=PostgresSettings)


class Monitoring(Component):
    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:monitoring:Monitoring", name, opts)
        self._args = args
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        for service, port in sorted(args.scrape.items()):
            k8s.apiextensions.CustomResource(
                self.child_name(service),
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=self._meta(service),
                spec={
                    # job="<service>": the name the rules select on.
                    "selector": {
                        "matchLabels": {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": args.stack},
                        "matchExpressions": [{"key": HEADLESS_LABEL, "operator": "DoesNotExist"}],
                    },
                    # 15 s: part of the 90 s budget from a fault to the page (docs/monitoring.md).
                    "endpoints": [{"port": port, "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}],
                },
                opts=child,
            )
        for job, pods in sorted(args.pod_scrape.items()):
            k8s.apiextensions.CustomResource(
                self.child_name(f"{job}-pods"),
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=self._meta(job),
                spec={"selector": {"matchLabels": pods.labels},
                      **({"namespaceSelector": {"matchNames": [pods.namespace]}} if pods.namespace else {}),
                      "podMetricsEndpoints": [pods.endpoint(job, args.namespace_name)]},
                opts=child,
            )
        sources = [*args.scrape, *args.pod_scrape, *args.sources]
        groups = alert_rules.platform_rules(args.namespace_name, s.alerting, sources, s.slos, args.postgres,
                                            s.runbook_base_url)
        for name, rules in groups.items():
            k8s.apiextensions.CustomResource(
                self.child_name(f"{name}-rules"),
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata=self._meta(f"{name}-rules"),
                spec=rules,
                opts=child,
            )
        for path in dashboards():
            name = f"dashboard-{path.stem}"
            meta = self._meta(name)
            meta["labels"][DASHBOARD_LABEL] = "1"
            k8s.core.v1.ConfigMap(
                self.child_name(name),
                metadata=meta,
                data={path.name: path.read_text()},
                opts=child,
            )
        channels = []
        if alerting.channel_keys(s.alerting):
            keys = sorted(args.alert_secrets)
            channel_data = pulumi.Output.all(*(args.alert_secrets[k] for k in keys)).apply(
                lambda values: alerting.channel_secret(s.alerting, dict(zip(keys, values))))
            channels.append(k8s.core.v1.Secret(
                self.child_name("alert-channels"),
                metadata={"name": alerting.SECRET_NAME, "namespace": args.namespace,
                          "labels": labels(alerting.SECRET_NAME, args.stack, "monitoring")},
                string_data=pulumi.Output.secret(channel_data),
                opts=child,
            ))
        # prometheus-operator reads the Secret when it renders Alertmanager's configuration: it must exist first.
        k8s.apiextensions.CustomResource(
            self.child_name("routing"),
            api_version="monitoring.coreos.com/v1alpha1",
            kind="AlertmanagerConfig",
            metadata=self._meta(ROUTING_NAME),
            spec=alerting.alertmanager_config_spec(s.alerting, args.dingtalk_url),
            opts=pulumi.ResourceOptions(parent=self, depends_on=channels),
        )
        self.register_outputs({})

    def _meta(self, name: str) -> dict:
        return {
            "name": name,
            "namespace": self._args.namespace,
            "labels": {**labels(name, self._args.stack, "monitoring"), **self._args.settings.selector_labels},
        }
