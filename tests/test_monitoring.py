"""The monitoring objects each stack renders: ServiceMonitors and PrometheusRules valid against the vendored
prometheus-operator CRDs, the rule files deployed as written (runbook links made absolute), and Alertmanager's
routing in a Secret that amtool accepts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from components.monitoring import ALERTMANAGER_KEY, rule_files
from tests.crd_schemas import errors
from tests.harness import STACKS, decoded_config, pod_labels, run_component

MONITORED = [s for s in STACKS if decoded_config(s).get("real-estate-ai:monitoring", {}).get("enabled", True)]


def _of(rendered, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == kind}


RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.mark.parametrize("stack", STACKS)
def test_only_dev_installs_the_monitoring_stack_pinned_and_wired_to_the_platform(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    releases = [r for r in rendered.registrations if r.type == RELEASE and r.inputs["chart"] == "kube-prometheus-stack"]
    if stack != "dev":
        # test and prod run in clusters with their own monitoring.
        assert releases == []
        return
    (release,) = releases
    assert release.inputs["version"] == "88.3.0"
    assert release.inputs["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    assert release.inputs["namespace"] == "monitoring"
    values = release.inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    # Prometheus selects every ServiceMonitor and rule, not only the chart's own.
    assert all(spec[f"{kind}SelectorNilUsesHelmValues"] is False for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"))
    assert values["alertmanager"]["alertmanagerSpec"] == {"useExistingSecret": True, "configSecret": "alertmanager-dev"}
    assert rendered.find("Secret", "alertmanager-dev")["metadata"]["namespace"] == "monitoring"
    assert values["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    # Not the chart's well-known default: a generated password.
    assert values["grafana"]["adminPassword"] != "prom-operator" and len(values["grafana"]["adminPassword"]) == 32
    namespace = [o for o in rendered.objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "monitoring"]
    assert namespace and namespace[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize("stack", MONITORED)
def test_monitoring_objects_pass_the_operators_schemas(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    objects = [*_of(rendered, "ServiceMonitor").values(), *_of(rendered, "PrometheusRule").values()]
    assert objects
    for obj in objects:
        assert errors(obj) == [], obj["metadata"]["name"]


@pytest.mark.parametrize("stack", MONITORED)
def test_the_api_and_milvus_are_scraped_where_the_rules_expect_them(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    monitors = _of(rendered, "ServiceMonitor")
    assert set(monitors) == {"milvus", "redis", "postgres-exporter"}
    # The API's pods directly (under a canary no Service of ours selects Flagger's primary), as job "api".
    (pod_monitor,) = _of(rendered, "PodMonitor").values()
    api_pods = pod_labels(rendered.find("Deployment", "api"))
    primary_pods = {**api_pods, "app.kubernetes.io/name": "api-primary"}
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= primary_pods.items()
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "api"}]
    services = _of(rendered, "Service").values()
    for name, port in (("milvus", "metrics"), ("redis", "metrics"), ("postgres-exporter", "metrics")):
        service = rendered.find("Service", name)
        selector = monitors[name]["spec"]["selector"]
        # Exactly the client Service: a headless twin with the same pods would be scraped twice.
        matched = [s["metadata"]["name"] for s in services
                   if selector["matchLabels"].items() <= s["metadata"]["labels"].items()
                   and all(e["key"] not in s["metadata"]["labels"] for e in selector["matchExpressions"])]
        assert matched == [name]
        assert port in [p["name"] for p in service["spec"]["ports"]]
        assert monitors[name]["spec"]["endpoints"][0]["port"] == port
        # The rules select job="<service>": a ServiceMonitor's job label is the Service's name.
        assert "jobLabel" not in monitors[name]["spec"]


@pytest.mark.parametrize("stack", MONITORED)
def test_every_rule_file_is_deployed_as_written_with_absolute_runbook_links(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    deployed = _of(rendered, "PrometheusRule")
    base = decoded_config(stack)["real-estate-ai:monitoring"].get("runbookBaseUrl")
    for path in rule_files():
        written = yaml.safe_load(path.read_text())
        spec = deployed[path.name.removesuffix(".rules.yml") + "-rules"]["spec"]
        assert [g["name"] for g in spec["groups"]] == [g["name"] for g in written["groups"]]
        for group, original in zip(spec["groups"], written["groups"]):
            for rule, source in zip(group["rules"], original["rules"]):
                assert rule["expr"] == source["expr"] and rule.get("for") == source.get("for")
                url = rule.get("annotations", {}).get("runbook_url")
                if url:
                    assert url == (f"{base}/{source['annotations']['runbook_url'].removeprefix('docs/runbooks/')}" if base
                                   else source["annotations"]["runbook_url"])
    assert "escalation-rules" in deployed


@pytest.mark.parametrize("stack", MONITORED)
def test_alertmanager_routing_is_a_secret_that_amtool_accepts(stack, rendered_stacks, tmp_path):
    rendered = rendered_stacks[stack]
    monitoring_namespace = decoded_config(stack)["real-estate-ai:monitoring"].get("namespace", "monitoring")
    secret = rendered.find("Secret", f"alertmanager-{stack}")
    assert secret["metadata"]["namespace"] == monitoring_namespace
    path = tmp_path / ALERTMANAGER_KEY
    path.write_text(secret["stringData"][ALERTMANAGER_KEY])
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # No channel credential in any ConfigMap.
    for config_map in _of(rendered, "ConfigMap").values():
        assert "wechat_configs" not in str(config_map) and "smtp_auth_password" not in str(config_map)


RUNBOOKS = Path(__file__).resolve().parent.parent / "docs" / "runbooks"


def test_every_alert_links_a_runbook_page_that_names_it():
    from components.alerting import escalation_rules
    from settings.monitoring import AlertingSettings
    from tests.monitoring.rules import alerts

    linked = {name: rule["annotations"]["runbook_url"] for name, rule in alerts().items()}
    for rule in escalation_rules(AlertingSettings(notify=False))["groups"][0]["rules"]:
        linked[rule["alert"]] = rule["annotations"]["runbook_url"]
    for name, url in linked.items():
        assert url.startswith("docs/runbooks/"), name
        page = RUNBOOKS / url.removeprefix("docs/runbooks/")
        assert page.is_file(), f"{name}: {page} missing"
        text = page.read_text()
        assert name in text.splitlines()[0] and "## First checks" in text and "## Fault plan" in text, name
        if name in alerts():
            assert f"({alerts()[name]['labels']['severity']})" in text.splitlines()[0], name
    # No page without an alert.
    assert {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"} == {u.removeprefix("docs/runbooks/") for u in linked.values()}


@pytest.mark.parametrize("stack", MONITORED)
def test_dashboards_are_config_maps_for_grafanas_sidecar(stack, rendered_stacks):
    from components.monitoring import dashboards

    maps = {name: m for name, m in _of(rendered_stacks[stack], "ConfigMap").items() if name.startswith("dashboard-")}
    assert set(maps) == {f"dashboard-{p.stem}" for p in dashboards()} and len(maps) == 2
    for path in dashboards():
        config_map = maps[f"dashboard-{path.stem}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name])["uid"].startswith("real-estate-ai-")


def test_prod_runs_the_dingtalk_bridge_with_its_robot_in_a_secret(rendered_stacks):
    from components.workload import RUN_AS_UID

    rendered = rendered_stacks["prod"]
    deployment = rendered.find("Deployment", "dingtalk-bridge")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "docker.io/timonwong/prometheus-webhook-dingtalk:v2.1.0"
    assert container["args"] == ["--config.file=/etc/dingtalk/config.yml", "--web.listen-address=:8060"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy" and container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == RUN_AS_UID
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "dingtalk-bridge-config"
    assert rendered.find("Service", "dingtalk-bridge")["spec"]["ports"][0]["port"] == 8060
    # test names a bridge it does not run.
    assert not [o for o in rendered_stacks["test"].objects if o["metadata"]["name"] == "dingtalk-bridge"]


def test_the_bridge_config_has_a_target_per_level_and_refuses_a_bad_robot_url_without_showing_it():
    from components.dingtalk_bridge import render_config
    from settings.monitoring import DingtalkSettings

    settings = DingtalkSettings(deploy=True)
    robot = "https://oapi.dingtalk.com/robot/send?access_token=t0k3n"
    config = yaml.safe_load(render_config(settings, robot, "SECsign"))
    assert config["targets"] == {t: {"url": robot, "secret": "SECsign"} for t in ("oncall", "techlead", "management")}
    with pytest.raises(ValueError) as error:
        render_config(settings, "http://oapi.dingtalk.com/robot/send?access_token=t0k3n", "SECsign")
    assert "alertDingtalkRobotUrl" in str(error.value) and "t0k3n" not in str(error.value)


def test_the_bridge_component_alone():
    from components.dingtalk_bridge import DingtalkBridge, DingtalkBridgeArgs
    from settings.monitoring import DingtalkSettings

    robot = "https://oapi.dingtalk.com/robot/send?access_token=t0k3n"
    rendered, _ = run_component(lambda: DingtalkBridge("bridge", DingtalkBridgeArgs(
        "estate", "test", DingtalkSettings(deploy=True), robot, "SECsign")))
    config = yaml.safe_load(rendered.find("Secret", "dingtalk-bridge-config")["stringData"]["config.yml"])
    assert config == {"timeout": "5s", "targets": {
        t: {"url": robot, "secret": "SECsign"} for t in ("oncall", "techlead", "management")}}
    (container,) = rendered.find("Deployment", "dingtalk-bridge")["spec"]["template"]["spec"]["containers"]
    # Ready two seconds after start, checked every ten; restarted after a minute without an answer.
    assert {k: v for k, v in container["readinessProbe"].items() if k != "httpGet"} == {
        "initialDelaySeconds": 2, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    assert {k: v for k, v in container["livenessProbe"].items() if k != "httpGet"} == {
        "initialDelaySeconds": 5, "periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 3}
    assert container["volumeMounts"][0] == {"name": "config", "mountPath": "/etc/dingtalk", "readOnly": True}
