"""Tenancy: every selector of every rule the stacks deploy selects the stack's own namespace, read by Prometheus' own
PromQL parser (gotools/promql-scope). Another team's `api` at 0 replicas, or its full volume, cannot raise our alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from settings.monitoring import AlertingSettings
from tests.gotools import binary
from tests.harness import STACKS, decoded_config
from tests.monitoring.rules import rendered, write


def _scope(namespace: str, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promql-scope"), "-namespace", namespace, *map(str, files)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stack", STACKS)
def test_every_selector_of_every_rule_selects_the_stacks_namespace(stack, tmp_path):
    namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"]
    alerting = AlertingSettings.model_validate(decoded_config(stack).get("real-estate-ai:monitoring", {}).get("alerting", {"notify": False}))
    files = write(rendered(alerting, namespace), tmp_path)
    done = _scope(namespace, files)
    assert done.returncode == 0, done.stdout + done.stderr
    # And none selects a namespace of another stack's name.
    assert _scope("some-other-namespace", files).returncode == 1


def test_an_unscoped_selector_is_named(tmp_path):
    rules = {"groups": [{"name": "g", "rules": [
        {"alert": "Scoped", "expr": 'up{job="api", namespace="ns"} == 0'},
        {"alert": "Cluster", "expr": 'sum(kube_deployment_status_replicas_available{deployment="api"}) == 0 and on () up{namespace="ns"}'},
        {"record": "r", "expr": 'rate(x{exported_namespace="ns"}[5m]) / ignoring(a) y{namespace=~"ns|other"}'},
    ]}]}
    path = tmp_path / "bad.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = _scope("ns", [path])
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f'{path}: g/Cluster: kube_deployment_status_replicas_available{{deployment="api"}}',
        f'{path}: g/r: y{{namespace=~"ns|other"}}',
    ]
