"""kube-prometheus-stack from its pinned Helm chart, for a cluster that runs no monitoring (dev on kind): Prometheus
selecting every ServiceMonitor and rule (not only the chart's), Alertmanager merging every namespace's
AlertmanagerConfig into the chart's routing (the chart's default), Grafana with a generated admin password and its
dashboard sidecar on every namespace.

Values keys from the chart (prometheus-community/helm-charts, charts/kube-prometheus-stack/values.yaml, 88.3.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.component import Component
from components.workload import labels
from settings.monitoring import MonitoringSettings

CHART = "kube-prometheus-stack"
CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
RELEASE = "kube-prometheus"
# The chart's fullname for release "kube-prometheus": "<release>-<chart>" cut to 26 characters (its _helpers.tpl).
FULLNAME = f"{RELEASE}-{CHART}"[:26]
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
# Helm waits for the operator, Prometheus, Alertmanager and Grafana; images on a fresh node take a while.
INSTALL_TIMEOUT_SECONDS = 900


# kube-state-metrics' view of the Percona operator's backup objects, which the backup alerts read.
KSM_BACKUPS = Path(__file__).resolve().parent.parent / "monitoring" / "kube-state-metrics" / "percona-backups.yaml"
KSM_BACKUP_RBAC = {"apiGroups": ["pgv2.percona.com"], "resources": ["perconapgbackups"], "verbs": ["list", "watch"]}


def values(settings: MonitoringSettings, grafana_password: pulumi.Input[str]) -> dict:
    select_all = {f"{kind}SelectorNilUsesHelmValues": False for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")}
    return {
        "prometheus": {"prometheusSpec": {**select_all, "retention": settings.install.retention}},
        # The subchart (kube-state-metrics 8.2.0) writes the config into a ConfigMap it mounts, and adds the CRD
        # list/watch its discovery needs; the objects themselves need the extra rule.
        "kube-state-metrics": {
            "customResourceState": {"enabled": True, "config": yaml.safe_load(KSM_BACKUPS.read_text())},
            "rbac": {"extraRules": [KSM_BACKUP_RBAC]},
        },
        "grafana": {
            # The chart's default is a well-known string.
            "adminPassword": grafana_password,
            "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1", "searchNamespace": "ALL"}},
        },
    }


def prometheus_url(namespace: str) -> str:
    """The chart's Prometheus Service (<fullname>-prometheus), where other controllers query it."""
    return f"http://{FULLNAME}-prometheus.{namespace}.svc:{PROMETHEUS_PORT}"


def alertmanager_url(namespace: str) -> str:
    """The chart's Alertmanager Service (<fullname>-alertmanager)."""
    return f"http://{FULLNAME}-alertmanager.{namespace}.svc:{ALERTMANAGER_PORT}"


@dataclass
class MonitoringInstallArgs:
    settings: MonitoringSettings
    stack: str


class MonitoringInstall(Component):
    def __init__(self, name: str, args: MonitoringInstallArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:monitoring:MonitoringInstall", name, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            self.child_name("namespace"),
            metadata={"name": s.namespace, "labels": {
                **labels("kube-prometheus-stack", args.stack, "monitoring"),
                # node-exporter reads the host (hostNetwork, hostPID, host paths): only privileged admits it.
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "baseline",
            }},
            opts=child,
        )
        password = random.RandomPassword(self.child_name("grafana-admin"), length=32, special=False, opts=child)
        self.grafana_password = pulumi.Output.secret(password.result)
        self.namespace = namespace.metadata.name
        self.release = k8s.helm.v3.Release(
            self.child_name("release"),
            name=RELEASE,
            chart=CHART,
            version=s.install.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=self.namespace,
            values=values(s, self.grafana_password),
            timeout=INSTALL_TIMEOUT_SECONDS,
            atomic=False,
            opts=child,
        )
        self.register_outputs({})
