"""Releases: the Canary Flagger runs for the API, its metric templates and load tester, the Gateway API routes, the
cluster add-ons, and the settings that hold them together."""

from __future__ import annotations

import re

import pytest

from components import canary as canary_module
from components.cluster_addons import flagger_values
from components.gateway import canary_opt_in_matches
from settings import StackConfigError
from tests import crd_schemas
from tests.harness import DELETE, containers, decoded_config, pod_spec, render_with, with_value
from tests.test_settings import _load


def test_prod_canary_follows_the_release_settings(rendered_stacks):
    prod = rendered_stacks["prod"]
    spec = prod.find("Canary", "api")["spec"]
    analysis = spec["analysis"]
    assert analysis["stepWeights"] == [10, 50]
    assert (analysis["interval"], analysis["threshold"]) == ("60s", 5)
    thresholds = {m["name"]: m["thresholdRange"] for m in analysis["metrics"]}
    # The product spec: roll back above 5 % errors.
    assert thresholds == {"error-rate": {"max": 5}, "latency": {"max": 500}}
    assert all(m["interval"] == "60s" for m in analysis["metrics"])
    assert analysis["sessionAffinity"] == {"cookieName": "canary-session", "maxAge": 86400}
    assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    # Gateway API whatever the cluster's Flagger defaults to; switching the canary off hands the API back, serving.
    assert (spec["provider"], spec["revertOnDeletion"]) == ("gatewayapi:v1", True)
    # Flagger copies the HPA for its primary instead of the program fighting it on replicas.
    assert spec["autoscalerRef"] == {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "api"}
    # Only the public paths, on the Gateway's HTTPS listener.
    assert spec["service"]["match"] == [{"uri": {"prefix": "/v1"}}, {"uri": {"exact": "/version"}}, {"uri": {"exact": "/ready"}}]
    assert spec["service"]["gatewayRefs"] == [{"name": "api", "sectionName": "https"}]
    assert spec["service"]["hosts"] == ["api.real-estate.example.com"]
    hooks = {hook["name"]: hook for hook in analysis["webhooks"]}
    assert hooks["smoke"]["type"] == "pre-rollout" and hooks["smoke"]["metadata"]["type"] == "bash"
    assert hooks["smoke"]["metadata"]["cmd"] == "sh /scripts/smoke.sh http://api-canary.real-estate.svc.cluster.local 1.0.0"
    # The load starts before the first step (in the background: `cmd`) and lasts the longest analysis: 2 steps,
    # 5 tolerated failures and the promotion, a minute each.
    assert (hooks["load"]["type"], hooks["load"]["metadata"]["type"]) == ("pre-rollout", "cmd")
    assert "-z 480s -q 10 -c 1" in hooks["load"]["metadata"]["cmd"]
    assert [hook["name"] for hook in analysis["webhooks"]] == ["smoke", "load"]


def test_canary_settings_reach_the_canary():
    rendered = render_with("test", {"release.canary.stepWeights": [5, 20, 60], "release.canary.maxErrorPercent": 2.5,
                                       "release.canary.intervalSeconds": 30, "release.canary.threshold": 3})
    analysis = rendered.find("Canary", "api")["spec"]["analysis"]
    assert (analysis["stepWeights"], analysis["interval"], analysis["threshold"]) == ([5, 20, 60], "30s", 3)
    assert analysis["metrics"][0]["thresholdRange"] == {"max": 2.5}
    # Each check's rate() window spans at least four 15 s scrapes, even with a shorter step.
    assert analysis["metrics"][0]["interval"] == "60s"
    assert "autoscalerRef" not in rendered.find("Canary", "api")["spec"]  # test runs no autoscaler


def test_under_a_canary_the_program_leaves_flagger_its_objects(rendered_stacks):
    prod = rendered_stacks["prod"]
    deployment = prod.registration("Deployment", "api")
    # Flagger scales the target (0 between releases): the program never sets replicas back.
    assert deployment.ignore_changes == ["spec.replicas"]
    # A pod template change is a release whose verdict is the Canary's, awaited by ops/release, not by Pulumi.
    assert deployment.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    # Flagger generates the rest, none under a name the program uses (tests/test_lifecycle.py).
    assert ("HTTPRoute", "api-canary-testers") in {(o["kind"], o["metadata"]["name"]) for o in prod.objects}


def test_without_a_canary_the_program_routes_to_its_service(rendered_stacks):
    dev = rendered_stacks["dev"]
    assert dev.registration("Deployment", "api").inputs["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    route = dev.find("HTTPRoute", "api-direct")["spec"]
    assert route["parentRefs"] == [{"name": "api", "sectionName": "http"}]
    (rule,) = route["rules"]
    assert [m["path"] for m in rule["matches"]] == [
        {"type": "PathPrefix", "value": "/v1"}, {"type": "Exact", "value": "/version"}, {"type": "Exact", "value": "/ready"}]
    assert rule["backendRefs"] == [{"name": "api-direct", "port": 80}]


def test_testers_reach_the_canary_by_header_or_cookie():
    matches = canary_opt_in_matches("X-Canary")
    assert {"type": "Exact", "name": "X-Canary", "value": "always"} in matches[0]["headers"]
    cookie = re.compile(matches[3]["headers"][0]["value"])
    for header in ("X-Canary=always", "a=1; X-Canary=always", "a=1;X-Canary=always; b=2"):
        assert cookie.fullmatch(header), header
    for header in ("X-Canary=alwaysx", "NotX-Canary=always", "a=1; X-Canary=never", ""):
        assert not cookie.fullmatch(header), header


def test_prod_listens_on_https_and_redirects_http(rendered_stacks):
    prod = rendered_stacks["prod"]
    gateway = prod.find("Gateway", "api")
    assert gateway["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
    assert [(listener["name"], listener["port"]) for listener in gateway["spec"]["listeners"]] == [("http", 80), ("https", 443)]
    https = gateway["spec"]["listeners"][1]
    # What cert-manager's gateway-shim needs: a host, Terminate, a Secret in the Gateway's namespace.
    assert https["tls"] == {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "api-real-estate-example-com-tls"}]}
    redirect = prod.find("HTTPRoute", "api-https-redirect")["spec"]
    assert redirect["parentRefs"] == [{"name": "api", "sectionName": "http"}]
    assert redirect["rules"] == [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]


def test_a_shared_gateway_is_attached_to_not_created():
    rendered = render_with("test", {"ingress.gateway": {"create": False, "name": "public", "namespace": "edge",
                                                           "sectionName": "https"}})
    assert not any(o["kind"] == "Gateway" for o in rendered.objects)
    ref = {"name": "public", "namespace": "edge", "sectionName": "https"}
    assert rendered.find("Canary", "api")["spec"]["service"]["gatewayRefs"] == [ref]
    assert rendered.find("HTTPRoute", "api-canary-testers")["spec"]["parentRefs"] == [ref]


def test_the_ingress_path_remains_an_option():
    rendered = render_with("dev", {"ingress.via": "ingress"})
    ingress = rendered.find("Ingress", "api")["spec"]
    assert [p["path"] for p in ingress["rules"][0]["http"]["paths"]] == ["/v1", "/version", "/ready"]
    assert not any(o["kind"] in ("Gateway", "HTTPRoute") for o in rendered.objects)
    policy = rendered.find("NetworkPolicy", "allow-ingress-controller-to-api")["spec"]
    assert policy["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_the_load_tester_runs_hardened_with_the_smoke_script(rendered_stacks):
    prod = rendered_stacks["prod"]
    deployment = prod.find("Deployment", "flagger-loadtester")
    (container,) = containers(deployment)
    assert container["image"] == "ghcr.io/fluxcd/flagger-loadtester:0.38.0"
    assert container["command"][0] == "./loadtester" and "-namespace-regexp=^real-estate$" in container["command"]
    assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"]
    # The key as a file, never an environment variable.
    assert container["env"] == [{"name": "API_KEY_FILE", "value": "/var/run/secrets/real-estate-ai/api-key"}]
    scripts = prod.find("ConfigMap", "canary-scripts")["data"]
    assert scripts["smoke.sh"] == canary_module.SMOKE_SCRIPT.read_text()
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["scripts"]["configMap"]["name"] == "canary-scripts"
    assert [item["path"] for item in volumes["api-key"]["secret"]["items"]] == ["api-key"]
    assert "$(cat /var/run/secrets/real-estate-ai/api-key)" in prod.find("Canary", "api")["spec"]["analysis"]["webhooks"][1]["metadata"]["cmd"]


def test_dev_installs_the_controllers_it_needs(rendered_stacks):
    dev = rendered_stacks["dev"]
    releases = {r.inputs["name"]: r.inputs for r in dev.registrations if r.type == "kubernetes:helm.sh/v3:Release"}
    assert releases["envoy-gateway"]["chart"] == "oci://docker.io/envoyproxy/gateway-helm"
    assert releases["envoy-gateway"]["version"] == "v1.9.0"
    assert (releases["flagger"]["chart"], releases["flagger"]["version"]) == ("flagger", "1.44.0")
    assert releases["flagger"]["values"]["meshProvider"] == "gatewayapi:v1"
    assert releases["flagger"]["values"]["metricsServer"] == "http://kube-prometheus-kube-prome-prometheus.monitoring.svc:9090"
    assert "cert-manager" not in releases  # dev serves no TLS
    assert dev.find("GatewayClass", "eg")["spec"] == {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}
    for stack in ("test", "prod"):
        # Their clusters' owners run the controllers; only the PostgreSQL operator is theirs to install.
        installed = [r.inputs["name"] for r in rendered_stacks[stack].registrations if r.type == "kubernetes:helm.sh/v3:Release"]
        assert installed == [f"pgo-{decoded_config(stack)['real-estate-ai:namespace']['name']}"], installed


def test_flagger_values_enable_its_pod_monitor_only_with_monitoring_labelled_for_prometheus():
    assert flagger_values("http://p:9090", {"release": "kube-prometheus"})["podMonitor"] == {
        "enabled": True, "additionalLabels": {"release": "kube-prometheus"}}
    assert flagger_values("http://p:9090", None)["podMonitor"] == {"enabled": False}


def test_the_crd_check_fails_on_a_misspelt_canary_field(rendered_stacks):
    import copy

    canary = copy.deepcopy(rendered_stacks["prod"].find("Canary", "api"))
    assert crd_schemas.errors(canary) == []
    canary["spec"]["analysis"]["stepWeight"] = "10"
    canary["spec"]["analysis"]["sessionAffinity"]["cookie"] = "x"
    found = crd_schemas.errors(canary)
    assert any("stepWeight" in e for e in found) and any("cookie" in e for e in found), found


@pytest.mark.parametrize("path,new,expected", [
    ("release.canary.stepWeights", [50, 10], "release.canary: stepWeights [50, 10] must increase step by step"),
    ("release.canary.stepWeights", [10, 10], "release.canary: stepWeights [10, 10] must increase step by step"),
    ("release.canary.stepWeights", [0, 50], "release.canary.stepWeights[0]: Input should be greater than or equal to 1"),
    ("release.canary.stepWeights", [10, 100], "release.canary.stepWeights[1]: Input should be less than or equal to 99"),
    ("release.canary.stepWeights", [], "release.canary.stepWeights: List should have at least 1 item after validation, not 0"),
    ("release.canary.maxErrorPercent", 0, "release.canary.maxErrorPercent: Input should be greater than 0"),
    ("release.canary.maxErrorPercent", 50.5, "release.canary.maxErrorPercent: Input should be less than or equal to 50"),
    ("release.canary.intervalSeconds", 9, "release.canary.intervalSeconds: Input should be greater than or equal to 10"),
    ("release.canary.threshold", 0, "release.canary.threshold: Input should be greater than or equal to 1"),
    ("release.canary.testerHeader", "X-Canary\nSet-Cookie", "release.canary.testerHeader: 'X-Canary\\nSet-Cookie' is not an HTTP header name (letters, digits and '-')"),
    ("release.canary.sessionCookie", "a;b", "release.canary.sessionCookie: 'a;b' is not a cookie name (letters, digits, '_' and '-')"),
    ("release.canary.prometheusUrl", "http://prom:9090/?q=1", "release.canary.prometheusUrl: 'http://prom:9090/?q=1' is not an http(s) URL without query or fragment"),
    ("clusterAddons.flagger.chartVersion", "latest", "clusterAddons.flagger.chartVersion: 'latest' is not a chart version like '1.44.0'"),
    ("ingress.via", "nginx", "ingress.via: Input should be 'gateway' or 'ingress'"),
    ("ingress.gateway", {"create": True, "namespace": "edge"},
     "ingress.gateway: namespace and sectionName name a shared Gateway (create: false); a created one lives in the stack's namespace"),
    ("ingress.gateway", {"create": False, "name": "public"}, "ingress.gateway: a shared Gateway (create: false) needs its namespace"),
])
def test_release_settings_refuse_bad_values(path, new, expected):
    with pytest.raises(StackConfigError) as error:
        _load("test", with_value(decoded_config("test"), path, new))
    assert f"  - real-estate-ai:{expected}" in str(error.value).splitlines(), str(error.value)


@pytest.mark.parametrize("stack,changes,expected", [
    ("test", {"ingress.via": "ingress"},
     "release.canary.enabled: the canary shifts traffic on the Gateway API; it needs ingress.enabled true and ingress.via 'gateway'"),
    ("test", {"ingress.enabled": False, "ingress.tls.enabled": False},
     "release.canary.enabled: the canary shifts traffic on the Gateway API; it needs ingress.enabled true and ingress.via 'gateway'"),
    ("test", {"monitoring.enabled": False, "monitoring.alerting.notify": False},
     "release.canary.enabled: the analysis reads the API's metrics; it needs monitoring.enabled true"),
    ("test", {"monitoring.prometheusUrl": DELETE},
     "monitoring.prometheusUrl: name the cluster's Prometheus Service (http://<service>.<namespace>.svc:<port>): every "
     "release asks it whether it took this stack's monitoring (or set monitoring.install.enabled: true)"),
    ("test", {"monitoring.alertmanagerUrl": DELETE},
     "monitoring.alertmanagerUrl: name the cluster's Alertmanager Service (http://<service>.<namespace>.svc:<port>): every "
     "release asks it whether it took this stack's monitoring (or set monitoring.install.enabled: true)"),
    ("test", {"api.serviceType": "NodePort"},
     "api.serviceType: is 'NodePort'; under a canary Flagger generates the API's Services (ClusterIP) and users arrive "
     "through the Gateway"),
    ("test", {"release.canary.testerHeader": "x-grey-release"},
     "release.canary.testerHeader: 'x-grey-release' is already appConfig.greyRelease.header"),
    ("dev", {"ingress.controllerNamespace": "edge"},
     "ingress.controllerNamespace: is 'edge' but the installed gateway controller runs its proxies in "
     "clusterAddons.gatewayController.namespace 'envoy-gateway-system'"),
    ("prod", {"release.canary.enabled": False},
     "release.canary.enabled: prod releases through a canary analysis with automatic rollback"),
    ("prod", {"api.replicas": 2}, "api.replicas: is 2; prod needs at least 3 API replicas"),
])
def test_release_rules_across_keys(stack, changes, expected):
    config = decoded_config(stack)
    for path, new in changes.items():
        config = with_value(config, path, new)
    with pytest.raises(StackConfigError) as error:
        _load(stack, config)
    assert f"  - real-estate-ai:{expected}" in str(error.value).splitlines(), str(error.value)


@pytest.mark.parametrize("stack,changes", [
    # The limits themselves are allowed: one step at 99 %, the widest threshold, a 10 s step.
    ("test", {"release.canary.stepWeights": [99], "release.canary.maxErrorPercent": 50, "release.canary.intervalSeconds": 10}),
    ("prod", {"api.replicas": 3}),
    ("dev", {"release.canary.enabled": True}),
    ("dev", {"ingress.controllerNamespace": "envoy-gateway-system"}),
])
def test_release_values_at_their_limits_are_accepted(stack, changes):
    config = decoded_config(stack)
    for path, new in changes.items():
        config = with_value(config, path, new)
    _load(stack, config)
