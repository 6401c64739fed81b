"""ops/release/prerequisites.py: what a stack needs of a cluster it does not own, judged from the stack's own render
and objects shaped as the upstream charts and CRDs make them (kube-prometheus-stack 88.3.0, cert-manager v1.21.1's
chart, the vendored CRDs' served versions)."""

from __future__ import annotations

import pytest

from ops.release import prerequisites as pre
from ops.release.stack import Stack
from tests.crd_schemas import vendored_crds

# kube-prometheus-stack 88.3.0, release "kube-prometheus", default values (templates/prometheus/prometheus.yaml).
RELEASE = {"matchLabels": {"release": "kube-prometheus"}}
PROMETHEUS = {"metadata": {"name": "kube-prometheus-kube-prome-prometheus", "namespace": "monitoring"},
              "spec": {"ruleSelector": RELEASE, "ruleNamespaceSelector": {}, "podMonitorSelector": RELEASE,
                       "podMonitorNamespaceSelector": {}, "serviceMonitorSelector": RELEASE,
                       "serviceMonitorNamespaceSelector": {}, "probeSelector": RELEASE, "probeNamespaceSelector": {}}}
ALERTMANAGER = {"metadata": {"name": "kube-prometheus-kube-prome-alertmanager", "namespace": "monitoring"},
                "spec": {"alertmanagerConfigSelector": {}, "alertmanagerConfigNamespaceSelector": {}}}


@pytest.fixture(scope="module")
def test_stack(rendered_stacks):
    stack = Stack.load("test")
    return stack, pre.objects(rendered_stacks["test"].registrations)


def _discovery(objects, without_groups=()) -> dict:
    """The discovery documents a cluster with the vendored CRDs (and every built-in kind the stack uses) answers."""
    served: dict[str, set] = {}
    for crd in vendored_crds():
        if crd["spec"]["group"] in without_groups:
            continue
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                served.setdefault(f"{crd['spec']['group']}/{version['name']}", set()).add(crd["spec"]["names"]["kind"])
    crd_groups = {v.rpartition("/")[0] for v in served} | set(without_groups)
    for obj in objects:
        if obj.group not in crd_groups:
            served.setdefault(obj.api_version, set()).add(obj.kind)
    return {version: {"resources": [{"name": kind.lower() + "s", "kind": kind} for kind in kinds]} for version, kinds in served.items()}


def test_every_kind_test_registers_is_served_by_a_cluster_with_the_upstream_crds(test_stack):
    stack, objects = test_stack
    assert pre.unserved(stack.name, stack.config, objects, _discovery(objects)) == []


def test_a_cluster_without_flaggers_crds_is_named_once_per_kind(test_stack):
    stack, objects = test_stack
    assert pre.unserved(stack.name, stack.config, objects, _discovery(objects, ["flagger.app"])) == [
        "stack 'test': the cluster does not serve MetricTemplate (flagger.app/v1beta1); install Flagger's CRDs (or "
        "clusterAddons.flagger.install)",
        "stack 'test': the cluster does not serve Canary (flagger.app/v1beta1); install Flagger's CRDs (or clusterAddons.flagger.install)"]


def test_the_crds_a_stack_installs_itself_are_not_asked_of_the_cluster(test_stack):
    stack, objects = test_stack
    assert stack.config.postgres.operator.install
    assert pre.unserved(stack.name, stack.config, objects, _discovery(objects, ["pgv2.percona.com"])) == []


@pytest.mark.parametrize("selector, labels, selected", [
    (None, {"release": "kube-prometheus"}, False),
    ({}, {}, True),
    ({"matchLabels": {"release": "kube-prometheus"}}, {"release": "kube-prometheus", "app": "x"}, True),
    ({"matchLabels": {"release": "kube-prometheus"}}, {"release": "other"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, {"team": "b"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {"team": "b"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": "a"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "Gt", "values": ["1"]}]}, {"team": "2"}, False),
])
def test_label_selectors_as_kubernetes_reads_them(selector, labels, selected):
    assert pre.matches(selector, labels) is selected


def test_a_nil_namespace_selector_is_the_selecting_objects_own_namespace():
    assert pre.namespace_selected(None, "monitoring", "monitoring", {})
    assert not pre.namespace_selected(None, "monitoring", "real-estate-test", {})
    assert pre.namespace_selected({}, "monitoring", "real-estate-test", {})
    # The API server's own label on every namespace.
    assert pre.namespace_selected({"matchLabels": {"kubernetes.io/metadata.name": "real-estate-test"}}, "monitoring",
                                  "real-estate-test", {})


def test_kube_prometheus_stacks_defaults_select_everything_test_renders(test_stack):
    stack, objects = test_stack
    labels = next(dict(o.labels) for o in objects if o.kind == "Namespace")
    assert pre.unselected("test", objects, pre.PROMETHEUS_SELECTORS, "Prometheus", [PROMETHEUS], "monitoring", labels) == []
    assert pre.unselected("test", objects, pre.ALERTMANAGER_SELECTORS, "Alertmanager", [ALERTMANAGER], "monitoring", labels) == []


def test_a_prometheus_of_another_release_selects_nothing_and_each_object_is_named(test_stack):
    stack, objects = test_stack
    other = {**PROMETHEUS, "spec": {**PROMETHEUS["spec"], "ruleSelector": {"matchLabels": {"release": "prom\nFAKE"}}}}
    found = pre.unselected("test", objects, pre.PROMETHEUS_SELECTORS, "Prometheus", [other], "monitoring", {})
    rules = [o for o in objects if o.kind == "PrometheusRule"]
    assert len(found) == len(rules) > 0
    assert found[0].startswith(f"stack 'test': no Prometheus in 'monitoring' selects PrometheusRule '{rules[0].name}' (labels {{")
    assert '"release": "kube-prometheus"' in found[0]
    assert 'ruleSelector {"matchLabels": {"release": "prom\\nFAKE"}}' in found[0] and "\n" not in "".join(found)
    assert found[0].endswith("set monitoring.selectorLabels to what it selects")


def test_no_prometheus_at_all(test_stack):
    stack, objects = test_stack
    assert pre.unselected("test", objects, pre.PROMETHEUS_SELECTORS, "Prometheus", [], "monitoring", {}) == [
        f"stack 'test': no Prometheus in namespace 'monitoring' to load its {kind}s"
        for kind in ("PrometheusRule", "PodMonitor", "ServiceMonitor", "Probe")]


def _cert_manager(args: list[str]) -> dict:
    """cert-manager v1.21.1's controller Deployment as its chart renders it with `config` set (templates/deployment.yaml)."""
    return {"spec": {"template": {"spec": {
        "containers": [{"name": "cert-manager-controller", "args": args,
                        "volumeMounts": [{"name": "config", "mountPath": "/var/cert-manager/config"}]}],
        "volumes": [{"name": "config", "configMap": {"name": "cert-manager"}}]}}}}


def _config_map(text: str) -> dict:
    return {"cert-manager": {"data": {"config.yaml": text}}}


CONFIG_ARG = "--config=/var/cert-manager/config/config.yaml"
V1_21 = "apiVersion: controller.config.cert-manager.io/v1alpha1\nkind: ControllerConfiguration\ngatewayAPI:\n  enabled: true\n"


@pytest.mark.parametrize("args, config, enabled", [
    (["--v=2", CONFIG_ARG], V1_21, True),
    (["--v=2", CONFIG_ARG], V1_21.replace("true", "false"), False),
    # v1.15-v1.20's key, still honoured.
    ([CONFIG_ARG], "enableGatewayAPI: true\n", True),
    # The chart's default: no config, no flag.
    (["--v=2"], "", False),
    (["--enable-gateway-api"], "", True),
    # The flag wins over the file.
    ([CONFIG_ARG, "--enable-gateway-api=false"], V1_21, False),
    ([CONFIG_ARG], "gatewayAPI: [unclosed\n", False),
])
def test_cert_managers_gateway_api_support_as_its_flag_and_config_file_say(args, config, enabled):
    assert pre.gateway_api_support(_cert_manager(args), _config_map(config)) is enabled


def _issuer(solvers: list[dict], ready: bool = True) -> dict:
    return {"spec": {"acme": {"server": "https://acme-v02.api.letsencrypt.org/directory", "solvers": solvers}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "message": "Failed to register ACME account: 403\nFAKE"}]}}


def test_the_cluster_issuer_must_exist_be_ready_and_solve_for_the_gateway(test_stack):
    stack, _ = test_stack
    ingress = stack.config.ingress
    gateway_solver = [{"http01": {"gatewayHTTPRoute": {"parentRefs": [{"name": "api", "namespace": "real-estate-test"}]}}}]
    assert pre.issuer_problems("test", ingress, _issuer(gateway_solver)) == []
    assert pre.issuer_problems("test", ingress, None) == [
        "stack 'test': ClusterIssuer 'letsencrypt-prod' (ingress.tls.clusterIssuer) does not exist; create it, with an "
        "ACME solver for HTTP-01 on gateway"]
    assert pre.issuer_problems("test", ingress, _issuer([{"http01": {"ingress": {"ingressClassName": "nginx"}}}], ready=False)) == [
        "stack 'test': ClusterIssuer 'letsencrypt-prod' is not Ready: \"Failed to register ACME account: 403\\nFAKE\"",
        "stack 'test': ClusterIssuer 'letsencrypt-prod' has no solver for this stack: it needs an http01.gatewayHTTPRoute "
        "solver (ingress.tls.solver http01, ingress.via gateway)"]
    # A CA issuer solves nothing: there is nothing to prove.
    assert pre.issuer_problems("test", ingress, {"spec": {"ca": {"secretName": "ca"}},
                                                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == []
