"""The monitoring objects each stack renders: monitors, rules and routing valid against the vendored
prometheus-operator CRDs, all in the stack's namespace and labelled for the cluster's Prometheus, the rules as
rendered for that namespace (runbook links made absolute), and the routing as an AlertmanagerConfig whose channel
credentials live only in a Secret."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.alert_rules import RULES_DIR, platform_rules
from components.platform import monitoring_sources
from components.postgres import INSTANCE_PODS
from settings import PlatformConfig, plain_values
from tests.crd_schemas import errors
from tests.harness import STACKS, decoded_config, load_stack_config, pod_labels, render_with, run_component

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
    # The chart's Alertmanager keeps its own routing and merges every namespace's AlertmanagerConfig (its default).
    assert "alertmanager" not in values
    # Its kube-state-metrics reads the Percona operator's backup objects, which the backup alerts need.
    ksm = values["kube-state-metrics"]
    assert ksm["customResourceState"]["enabled"] is True
    (resource,) = ksm["customResourceState"]["config"]["spec"]["resources"]
    assert resource["groupVersionKind"] == {"group": "pgv2.percona.com", "version": "v2", "kind": "PerconaPGBackup"}
    assert ksm["rbac"]["extraRules"] == [{"apiGroups": ["pgv2.percona.com"], "resources": ["perconapgbackups"], "verbs": ["list", "watch"]}]
    assert values["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    # Not the chart's well-known default: a generated password.
    assert values["grafana"]["adminPassword"] != "prom-operator" and len(values["grafana"]["adminPassword"]) == 32
    namespace = [o for o in rendered.objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "monitoring"]
    assert namespace and namespace[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule", "AlertmanagerConfig")


@pytest.mark.parametrize("stack", MONITORED)
def test_monitoring_objects_pass_the_operators_schemas_in_the_stacks_namespace_with_its_selector_labels(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"]
    selector = decoded_config(stack)["real-estate-ai:monitoring"].get("selectorLabels", {})
    objects = [o for kind in MONITORING_KINDS for o in _of(rendered, kind).values()]
    assert {o["kind"] for o in objects} == set(MONITORING_KINDS)
    for obj in objects:
        assert errors(obj) == [], obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == namespace
        assert obj["metadata"]["labels"].items() >= selector.items()
    # test and prod run in clusters whose kube-prometheus-stack (release kube-prometheus) selects by `release`.
    if stack in ("test", "prod"):
        assert selector == {"release": "kube-prometheus"}


@pytest.mark.parametrize("stack", MONITORED)
def test_the_api_and_milvus_are_scraped_where_the_rules_expect_them(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    monitors = _of(rendered, "ServiceMonitor")
    assert set(monitors) == {"milvus", "redis", "postgres-exporter"}
    # The API's pods directly (under a canary no Service of ours selects Flagger's primary), as job "api".
    pod_monitors = _of(rendered, "PodMonitor")
    assert set(pod_monitors) == {"api", "patroni", "envoy"}
    pod_monitor = pod_monitors["api"]
    api_pods = pod_labels(rendered.find("Deployment", "api"))
    primary_pods = {**api_pods, "app.kubernetes.io/name": "api-primary"}
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= primary_pods.items()
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "api"}]
    # Every PostgreSQL member's Patroni API over TLS. The operator declares only the database port ("postgres") on
    # the container; prometheus-operator keeps the targets of a declared port, then our relabeling moves each to 8008.
    patroni = pod_monitors["patroni"]["spec"]
    assert patroni["selector"] == {"matchLabels": INSTANCE_PODS}
    (endpoint,) = patroni["podMetricsEndpoints"]
    assert endpoint["port"] == "postgres" and "portNumber" not in endpoint
    assert (endpoint["scheme"], endpoint["tlsConfig"]) == ("https", {"insecureSkipVerify": True})
    job, address = endpoint["relabelings"]
    assert job == {"targetLabel": "job", "replacement": "patroni"} and address["targetLabel"] == "__address__"
    # Prometheus anchors relabeling regexes (RE2, full match); Python's fullmatch does the same here.
    for before, after in (("10.1.2.3:5432", "10.1.2.3:8008"), ("[fd00::1]:5432", "[fd00::1]:8008")):
        assert re.fullmatch(address["regex"], before).expand(address["replacement"].replace("$1", "\\1")) == after
    cluster = rendered.find("PerconaPGCluster", "postgres")["spec"]
    assert cluster.get("patroni", {}).get("port", 8008) == 8008
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
def test_the_gateways_envoy_pods_are_scraped_as_envoy_gateway_labels_and_serves_them(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    namespace = rendered.find("Namespace", rendered.find("Deployment", "api")["metadata"]["namespace"])["metadata"]["name"]
    gateway = rendered.find("Gateway", "api")
    spec = _of(rendered, "PodMonitor")["envoy"]["spec"]
    # Envoy Gateway v1.9's labels on a Gateway's Envoy pods, in its controller's namespace.
    assert spec["selector"] == {"matchLabels": {"gateway.envoyproxy.io/owning-gateway-name": gateway["metadata"]["name"],
                                                "gateway.envoyproxy.io/owning-gateway-namespace": namespace}}
    assert spec["namespaceSelector"] == {"matchNames": ["envoy-gateway-system"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/stats/prometheus")
    # Into the stack's namespace, which every rule selects; the pod's own kept.
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "envoy"},
                                       {"sourceLabels": ["namespace"], "targetLabel": "pod_namespace"},
                                       {"targetLabel": "namespace", "replacement": namespace}]
    # Of all Envoy serves, only what the edge's rules and runbook read, for this namespace's routes. Prometheus joins
    # the source labels with ";" and anchors the regex.
    (keep,) = endpoint["metricRelabelings"]
    assert (keep["action"], keep["sourceLabels"]) == ("keep", ["__name__", "envoy_cluster_name"])
    kept = lambda name, cluster: re.fullmatch(keep["regex"], f"{name};{cluster}") is not None  # noqa: E731
    read = set(re.findall(r"envoy_[a-z_]+", (RULES_DIR / "edge.rules.yml").read_text()
                          + (RULES_DIR.parents[1] / "docs" / "runbooks" / "edge-error-rate-high.md").read_text()))
    labels_read = {"envoy_cluster_name", "envoy_response_code_class"}
    assert read - labels_read and all(kept(name, f"httproute/{namespace}/api/rule/0") for name in read - labels_read)
    assert kept("envoy_cluster_upstream_rq_xx", f"httproute/{namespace}/api-canary-testers/rule/0/backend/1")
    assert not kept("envoy_cluster_upstream_rq_xx", "httproute/another-team/api/rule/0")
    assert not kept("envoy_cluster_upstream_rq_time_bucket", f"httproute/{namespace}/api/rule/0")
    assert not kept("envoy_server_memory_allocated", "")


def test_a_shared_gateways_envoy_pods_are_its_own_and_an_ingress_has_none():
    shared = render_with("prod", {"ingress.gateway": {"create": False, "name": "edge", "namespace": "gateways"}})
    spec = _of(shared, "PodMonitor")["envoy"]["spec"]
    assert spec["selector"]["matchLabels"] == {"gateway.envoyproxy.io/owning-gateway-name": "edge",
                                               "gateway.envoyproxy.io/owning-gateway-namespace": "gateways"}
    via_ingress = render_with("test", {"ingress.via": "ingress", "release.canary.enabled": False})
    assert "envoy" not in _of(via_ingress, "PodMonitor")


@pytest.mark.parametrize("stack", MONITORED)
def test_the_rules_are_deployed_as_rendered_for_the_stacks_namespace(stack, rendered_stacks):
    raw = {k.removeprefix("real-estate-ai:"): v for k, v in load_stack_config(stack).items() if k.startswith("real-estate-ai:")}
    config = PlatformConfig.model_validate(plain_values(raw))
    expected = platform_rules(config.namespace.name, config.monitoring.alerting, ["api", "patroni", "envoy", "milvus", "redis",
                                                                                    "postgres-exporter", *monitoring_sources(config)],
                              config.monitoring.slos, config.postgres, config.monitoring.runbook_base_url)
    deployed = {name.removesuffix("-rules"): rule["spec"] for name, rule in _of(rendered_stacks[stack], "PrometheusRule").items()}
    assert deployed == expected
    base = config.monitoring.runbook_base_url
    for rules in deployed.values():
        for group in rules["groups"]:
            for rule in group["rules"]:
                assert "$namespace" not in rule["expr"] + str(rule.get("labels", {}))
                url = rule.get("annotations", {}).get("runbook_url")
                if url and base:
                    assert url.startswith(f"{base}/")


@pytest.mark.parametrize("stack", MONITORED)
def test_the_routing_is_an_alertmanager_config_whose_credentials_are_only_in_its_secret(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    routing = rendered.find("AlertmanagerConfig", "incident-routing")
    secrets = [o for o in rendered.objects if o["kind"] == "Secret" and o["metadata"]["name"] == "alert-channels"]
    if stack != "prod":
        # test's channels (e-mail without login, a DingTalk bridge) need no credential: no Secret, whose empty data
        # the API server would not give back (a change on every preview, `make e2e` saw it).
        assert secrets == [] and "urlSecret" not in str(routing) and "authPassword" not in str(routing)
        return
    (secret,) = secrets
    assert routing["metadata"]["namespace"] == secret["metadata"]["namespace"]
    referenced = {ref["key"] for r in routing["spec"]["receivers"] for configs in r.values() if isinstance(configs, list)
                  for c in configs for ref in c.values() if isinstance(ref, dict) and ref.get("name") == "alert-channels"}
    assert referenced == set(secret["stringData"])
    # No channel credential anywhere but the Secret: not in the routing, not in a ConfigMap.
    for value in secret["stringData"].values():
        assert value not in str(routing) and all(value not in str(m) for m in _of(rendered, "ConfigMap").values())


RUNBOOKS = Path(__file__).resolve().parent.parent / "docs" / "runbooks"


def test_every_alert_links_a_runbook_page_that_names_it():
    from tests.monitoring.rules import alerts

    linked = {name: rule["annotations"]["runbook_url"] for name, rule in alerts().items()}
    for name, url in linked.items():
        assert url.startswith("docs/runbooks/"), name
        page = RUNBOOKS / url.removeprefix("docs/runbooks/")
        assert page.is_file(), f"{name}: {page} missing"
        text = page.read_text()
        assert name in text.splitlines()[0] and "## First checks" in text and "## Fault plan" in text, name
        if not name.startswith("Escalation"):  # escalations carry the severity of what they escalate
            assert f"({alerts()[name]['labels']['severity']})" in text.splitlines()[0], name
    # No page without an alert.
    assert {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"} == {u.removeprefix("docs/runbooks/") for u in linked.values()}


@pytest.mark.parametrize("stack", MONITORED)
def test_dashboards_are_config_maps_for_grafanas_sidecar(stack, rendered_stacks):
    from components.monitoring import dashboards

    maps = {name: m for name, m in _of(rendered_stacks[stack], "ConfigMap").items() if name.startswith("dashboard-")}
    assert set(maps) == {f"dashboard-{p.stem}" for p in dashboards()} and len(maps) == 3
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


def test_the_bridge_config_has_a_target_per_level():
    from components.dingtalk_bridge import render_config
    from settings.monitoring import DingtalkSettings

    settings = DingtalkSettings(deploy=True)
    robot = "https://oapi.dingtalk.com/robot/send?access_token=t0k3n"
    config = yaml.safe_load(render_config(settings, robot, "SECsign"))
    assert config["targets"] == {t: {"url": robot, "secret": "SECsign"} for t in ("oncall", "techlead", "management")}


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
