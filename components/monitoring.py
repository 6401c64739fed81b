"""What the cluster's prometheus-operator (kube-prometheus-stack) needs from the platform: scrape targets
(a PodMonitor for the API's pods, primary and canary alike; ServiceMonitors for Milvus and the exporters), Grafana dashboards (ConfigMaps for its sidecar), the alert rules of monitoring/rules and the escalation rules as
PrometheusRules, and Alertmanager's routing as a Secret in the monitoring namespace (it holds channel credentials).

The rule files stay plain Prometheus files, so promtool reads exactly what is deployed; only their runbook links
are made absolute here (monitoring.runbookBaseUrl). Prometheus must select these objects: kube-prometheus-stack
with `*SelectorNilUsesHelmValues: false`, or `monitoring.selectorLabels` set to what its selectors ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import alerting
from components.component import Component
from components.stateful import HEADLESS_LABEL
from components.workload import labels
from settings.monitoring import MonitoringSettings

RULES_DIR = Path(__file__).resolve().parent.parent / "monitoring" / "rules"
DASHBOARDS_DIR = RULES_DIR.parent / "dashboards"
# The label kube-prometheus-stack's Grafana sidecar collects dashboards by (in every namespace by default).
DASHBOARD_LABEL = "grafana_dashboard"
RUNBOOKS_PREFIX = "docs/runbooks/"
ALERTMANAGER_KEY = "alertmanager.yaml"


def alertmanager_secret_name(stack: str) -> str:
    return f"alertmanager-{stack}"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def with_runbook_base(rules: dict, base: Optional[str]) -> dict:
    """The rule groups with every runbook link under `base` (unchanged without one)."""
    if not base:
        return rules
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url", "")
            if url.startswith(RUNBOOKS_PREFIX):
                rule["annotations"]["runbook_url"] = f"{base.rstrip('/')}/{url[len(RUNBOOKS_PREFIX):]}"
    return rules


@dataclass
class MonitoringArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: MonitoringSettings
    # The alert channels' secret values by config key (only those the settings need).
    alert_secrets: dict[str, pulumi.Output[str]]
    # Service name → port name to scrape at /metrics.
    scrape: dict[str, str]
    # Job name → (pod labels, port name) to scrape every matching pod at /metrics (pods no one Service selects).
    pod_scrape: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)
    # The DingTalk bridge the program deployed, if any.
    dingtalk_url: Optional[str] = None


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
        for job, (pod_labels, port) in sorted(args.pod_scrape.items()):
            k8s.apiextensions.CustomResource(
                self.child_name(f"{job}-pods"),
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=self._meta(job),
                spec={
                    "selector": {"matchLabels": pod_labels},
                    "podMetricsEndpoints": [{
                        "port": port, "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s",
                        # job="<job>" for every pod (the rules select on it); namespace and pod stay the target's.
                        "relabelings": [{"targetLabel": "job", "replacement": job}],
                    }],
                },
                opts=child,
            )
        groups = {path.name.removesuffix(".rules.yml"): yaml.safe_load(path.read_text()) for path in rule_files()}
        groups["escalation"] = alerting.escalation_rules(s.alerting)
        for name, rules in groups.items():
            k8s.apiextensions.CustomResource(
                self.child_name(f"{name}-rules"),
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata=self._meta(f"{name}-rules"),
                spec=with_runbook_base(rules, s.runbook_base_url),
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
        keys = sorted(args.alert_secrets)
        config = pulumi.Output.all(*(args.alert_secrets[k] for k in keys)).apply(
            lambda values: alerting.render(alerting.alertmanager_config(s.alerting, dict(zip(keys, values)), args.dingtalk_url))
        )
        self.alertmanager_secret_name = alertmanager_secret_name(args.stack)
        k8s.core.v1.Secret(
            self.child_name("alertmanager"),
            metadata={"name": self.alertmanager_secret_name, "namespace": s.namespace,
                      "labels": labels("alertmanager", args.stack, "monitoring")},
            # Alertmanager reads this key (Alertmanager CR `configSecret`, or kube-prometheus-stack's
            # alertmanager.alertmanagerSpec.useExistingSecret + configSecret).
            string_data={ALERTMANAGER_KEY: pulumi.Output.secret(config)},
            opts=child,
        )
        self.register_outputs({})

    def _meta(self, name: str) -> dict:
        return {
            "name": name,
            "namespace": self._args.namespace,
            "labels": {**labels(name, self._args.stack, "monitoring"), **self._args.settings.selector_labels},
        }
