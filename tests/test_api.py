import pytest

from components.api import Api, ApiArgs, ApiSecretRefs
from components.workload import SecretKeyRef
from settings import ApiSettings, AutoscalingSettings
from tests.harness import containers, env_value, pod_spec, run_component, value

SECRETS = ApiSecretRefs(
    SecretKeyRef("api-secrets", "database-url"),
    SecretKeyRef("api-secrets", "redis-url"),
    SecretKeyRef("api-secrets", "milvus-url"),
    SecretKeyRef("api-secrets", "api-key"),
    SecretKeyRef("api-secrets", "tester-key"),
)


def _api(**settings):
    api_settings = ApiSettings(**{"replicas": 3, "version": "2.1.0", **settings})
    return Api("api", ApiArgs("estate", "prod", api_settings, SECRETS, "api-config", "abc123", "/src/app", revision="9f8e7d6c5b4a"))


def test_deployment_matches_the_spec():
    rendered, api = run_component(_api)
    deployment = rendered.find("Deployment", "api")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = containers(deployment)
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["resources"] == {
        # ephemeral-storage: the 64Mi /tmp scratch volume plus the layer and logs (64Mi), and headroom in the limit.
        "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "128Mi"},
        "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "384Mi"},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert (container["livenessProbe"]["initialDelaySeconds"], container["livenessProbe"]["periodSeconds"]) == (30, 10)
    assert (container["readinessProbe"]["initialDelaySeconds"], container["readinessProbe"]["periodSeconds"]) == (5, 5)
    for env, key in (("DATABASE_URL", "database-url"), ("REDIS_URL", "redis-url"), ("MILVUS_URL", "milvus-url"), ("API_KEY", "api-key"),
                     ("TESTER_KEY", "tester-key")):
        assert env_value(container, env)["valueFrom"]["secretKeyRef"] == {"name": "api-secrets", "key": key}
    assert env_value(container, "APP_PROPERTIES")["value"] == "/etc/real-estate-ai/app.properties"
    assert {"name": "config", "configMap": {"name": "api-config"}} in pod_spec(deployment)["volumes"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["real-estate-ai/config-checksum"] == "abc123"
    assert len(pod_spec(deployment)["topologySpreadConstraints"]) == 2
    service = rendered.find("Service", "api-direct")["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 80 and service["ports"][0]["targetPort"] == "http"
    assert value(api.service_name) == "api-direct"


def test_image_is_built_from_app_and_pushed_only_with_a_registry():
    rendered, api = run_component(_api)
    (image,) = [r for r in rendered.registrations if r.type == "docker:index/image:Image"]
    # One tag per build: version and commit; the commit also reaches the image as BUILD_REVISION.
    assert image.inputs["imageName"] == "real-estate-api:2.1.0-9f8e7d6c5b4a"
    assert image.inputs["build"]["args"] == {"APP_VERSION": "2.1.0", "BUILD_REVISION": "9f8e7d6c5b4a"}
    assert image.inputs["build"]["platform"] == "linux/amd64"
    assert image.inputs["skipPush"] is True
    assert image.inputs["build"]["context"] == "/src/app"  # as given: the program gives "app" (tests/test_lifecycle.py)
    # Not pushed (kind): the local tag, loaded into the cluster by `make up`.
    assert value(api.image) == "real-estate-api:2.1.0-9f8e7d6c5b4a"
    (container,) = containers(rendered.find("Deployment", "api"))
    assert container["imagePullPolicy"] == "IfNotPresent"

    rendered, api = run_component(lambda: _api(registry="registry.example.com/estate", platform="linux/arm64"))
    (image,) = [r for r in rendered.registrations if r.type == "docker:index/image:Image"]
    assert image.inputs["imageName"] == "registry.example.com/estate/real-estate-api:2.1.0-9f8e7d6c5b4a"
    assert image.inputs["build"]["platform"] == "linux/arm64"
    assert image.inputs.get("skipPush") in (None, False)
    (container,) = containers(rendered.find("Deployment", "api"))
    # Pushed: the pods run the registry's digest of what was built, not a tag.
    assert container["image"].startswith("registry.example.com/estate/real-estate-api:2.1.0-9f8e7d6c5b4a@sha256:")
    assert value(api.image) == container["image"]
    assert container["imagePullPolicy"] == "Always"


def test_pinned_image_is_deployed_without_a_build():
    rendered, api = run_component(lambda: _api(image="registry.example.com/estate/api:2.1.0"))
    assert not [r for r in rendered.registrations if r.type.startswith("docker:")]
    assert value(api.image) == "registry.example.com/estate/api:2.1.0"


def test_autoscaler_and_disruption_budget():
    autoscaling = AutoscalingSettings(min_replicas=3, max_replicas=12, target_cpu_utilization=65)
    rendered, _ = run_component(lambda: _api(autoscaling=autoscaling, pod_disruption_budget_min_available=2))
    hpa = rendered.find("HorizontalPodAutoscaler", "api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    pdb = rendered.find("PodDisruptionBudget", "api")["spec"]
    # Every API pod, Flagger's primary (app.kubernetes.io/name: api-primary) included.
    assert pdb["minAvailable"] == 2 and pdb["selector"]["matchLabels"] == {"app.kubernetes.io/component": "api",
                                                                           "app.kubernetes.io/part-of": "real-estate-ai"}
    assert rendered.registration("Deployment", "api").ignore_changes == ["spec.replicas"]


def test_no_autoscaler_or_budget_unless_configured():
    rendered, _ = run_component(_api)
    kinds = {o["kind"] for o in rendered.objects}
    assert "HorizontalPodAutoscaler" not in kinds and "PodDisruptionBudget" not in kinds
    assert rendered.registration("Deployment", "api").ignore_changes == []


@pytest.mark.parametrize("await_lb,skip", [(False, True), (True, False)])
def test_load_balancer_await_is_deliberate(await_lb, skip):
    rendered, _ = run_component(lambda: _api(service_type="LoadBalancer", await_load_balancer=await_lb))
    annotations = rendered.find("Service", "api-direct")["metadata"].get("annotations", {})
    assert (annotations.get("pulumi.com/skipAwait") == "true") is skip


def test_shutdown_has_margin_and_the_budget_never_blocks_a_drain():
    import re
    from pathlib import Path

    from components.api import DRAIN_SECONDS, PRE_STOP_SECONDS

    # The image runs the server whose drain the pod waits for (read from its source: the program does not import the app).
    app = Path(__file__).resolve().parents[1] / "app"
    assert '"-m", "real_estate_api.server"' in (app / "Dockerfile").read_text()
    server = (app / "real_estate_api" / "server.py").read_text()
    assert int(re.search(r"^GRACEFUL_SHUTDOWN_SECONDS = (\d+)$", server, re.M).group(1)) == DRAIN_SECONDS
    rendered, _ = run_component(lambda: _api(image="r/api:1.0.0", pod_disruption_budget_min_available=2))
    pod = rendered.find("Deployment", "api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == PRE_STOP_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= PRE_STOP_SECONDS + DRAIN_SECONDS + 5
    assert rendered.find("PodDisruptionBudget", "api")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
