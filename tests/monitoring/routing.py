"""A stack's incident routing as the cluster's Alertmanager runs it: the AlertmanagerConfig and channel Secret the
program renders, merged into kube-prometheus-stack's own configuration by prometheus-operator's code
(gotools/amconfig), the Alertmanager configuration that results."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import yaml

from components.alerting import SECRET_NAME, alertmanager_config_spec, channel_secret
from settings.monitoring import AlertingSettings
from tests.gotools import binary

CHART_CONFIG = Path(__file__).resolve().parent / "kube-prometheus-stack-88.3.0-alertmanager.yaml"
ROUTING_NAME = "incident-routing"


def operator_render(spec: dict, secret_data: dict[str, str], namespace: str, directory: Path) -> subprocess.CompletedProcess:
    """prometheus-operator's rendering of the chart's configuration with this AlertmanagerConfig merged in."""
    directory.mkdir(parents=True, exist_ok=True)
    configs, secrets = directory / "alertmanagerconfigs.yaml", directory / "secrets.yaml"
    configs.write_text(yaml.safe_dump({"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig",
                                       "metadata": {"name": ROUTING_NAME, "namespace": namespace}, "spec": spec}))
    secrets.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET_NAME, "namespace": namespace},
                                       "stringData": secret_data}))
    return subprocess.run([binary("amconfig"), "--base", str(CHART_CONFIG), "--configs", str(configs), "--secrets", str(secrets)],
                          capture_output=True, text=True, timeout=60)


def alertmanager_yaml(settings: AlertingSettings, secrets: dict[str, str], namespace: str, directory: Path,
                      dingtalk_url: Optional[str] = None) -> Path:
    """The merged configuration, written to `directory`/alertmanager.yaml."""
    done = operator_render(alertmanager_config_spec(settings, dingtalk_url), channel_secret(settings, secrets), namespace, directory)
    assert done.returncode == 0, done.stderr
    path = directory / "alertmanager.yaml"
    path.write_text(done.stdout)
    return path


def receiver(namespace: str, name: str) -> str:
    """The operator's name for a receiver of this stack's AlertmanagerConfig."""
    return f"{namespace}/{ROUTING_NAME}/{name}"
