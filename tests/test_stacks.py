"""Each stack's real config, rendered by the real program: schema-valid and consistent across objects."""

import kubernetes_validate
import pytest
import yaml

from components.backups import POSTGRES_UID
from components.postgres import repo1_claim_name, user_secret_name
from components.workload import RUN_AS_UID
from settings import byte_count
from tests import crd_schemas
from tests.harness import KUBERNETES_VERSION, STACKS, containers, decoded_config, pod_labels, pod_spec
from tools.render import REDACTED, write_manifests

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "CronJob", "Job")


def _validate(paths) -> list[str]:
    """kubernetes-validate's strict check of each written file, in this process (its schemas load once, not per run
    of its command). A custom resource has no schema there: its vendored CRD judges it (below)."""
    problems = []
    for path in paths:
        obj = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            continue
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{path.name}: {error.message}")
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_passes_strict_schema_validation(stack, rendered_stacks, tmp_path):
    written = write_manifests(rendered_stacks[stack], tmp_path)
    assert len(written) >= 40
    assert _validate(written) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_passes_its_vendored_crd_schema(stack, rendered_stacks):
    """Canary, MetricTemplate, Gateway, HTTPRoute, PodMonitor, PrometheusRule, PerconaPGCluster...: each kind has an
    upstream CRD in crds/ and every object passes it strictly (an unknown field would be pruned by the server)."""
    custom = [o for o in rendered_stacks[stack].objects if "/" in o["apiVersion"] and "." in o["apiVersion"].split("/")[0]
              and not o["apiVersion"].split("/")[0].endswith(".k8s.io") or o["apiVersion"].startswith("gateway.networking.k8s.io")]
    assert {"Gateway", "HTTPRoute", "PodMonitor"} <= {o["kind"] for o in custom}
    for obj in custom:
        assert crd_schemas.errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_schema_validation_catches_an_unknown_field(rendered_stacks, tmp_path):
    """The check can fail: a misspelt field in one object is reported."""
    written = write_manifests(rendered_stacks["prod"], tmp_path)
    target = next(p for p in written if p.name == "deployment-api.yaml")
    obj = yaml.safe_load(target.read_text())
    obj["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/", "port": 80}}
    target.write_text(yaml.safe_dump(obj))
    (problem,) = _validate([target])
    assert problem.startswith("deployment-api.yaml: ") and "livenesProbe" in problem


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_name_is_unique(stack, rendered_stacks):
    """Pulumi refuses two resources with one URN; the mocks do not, so the program is checked here."""
    # The engine's key is the URN (the type chain and the name): what it refuses twice, this refuses.
    urns = [r.urn for r in rendered_stacks[stack].registrations]
    assert all(urns) and len(urns) == len(set(urns)), sorted({u for u in urns if urns.count(u) > 1})
    objects = [(o["kind"], o["metadata"]["name"]) for o in rendered_stacks[stack].objects]
    assert len(objects) == len(set(objects)), sorted({o for o in objects if objects.count(o) > 1})


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_in_the_stack_namespace(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"]
    monitoring = decoded_config(stack).get("real-estate-ai:monitoring", {}).get("namespace", "monitoring")
    for obj in rendered.objects:
        if obj["kind"] == "CustomResourceDefinition":
            # Cluster-scoped, the operator release's own as upstream ships them (shared by every stack on a cluster).
            assert obj["spec"]["group"] == "pgv2.percona.com"
            continue
        if (obj["kind"], obj["metadata"]["name"]) == ("Secret", f"alertmanager-{stack}"):
            # The one exception: Alertmanager reads its configuration from its own namespace.
            assert obj["metadata"]["namespace"] == monitoring
        elif obj["kind"] not in ("Namespace", "GatewayClass"):  # cluster-scoped
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "real-estate-ai"


@pytest.mark.parametrize("stack", STACKS)
def test_service_selectors_match_a_pod_template(stack, rendered_stacks):
    objects = rendered_stacks[stack].objects
    templates = [pod_labels(o) for o in objects if o["kind"] in WORKLOAD_KINDS]
    services = [o for o in objects if o["kind"] == "Service"]
    assert services
    for service in services:
        selector = service["spec"]["selector"]
        assert selector, service["metadata"]["name"]
        assert any(all(t.get(k) == v for k, v in selector.items()) for t in templates), service["metadata"]["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_service_target_ports_exist_on_the_selected_pods(stack, rendered_stacks):
    objects = rendered_stacks[stack].objects
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        pods = [o for o in objects if o["kind"] in WORKLOAD_KINDS and all(pod_labels(o).get(k) == v for k, v in selector.items())]
        port_names = {p["name"] for pod in pods for c in containers(pod) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def _secret_keys(objects, stack):
    keys = {
        o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
        for o in objects
        if o["kind"] == "Secret"
    }
    # Written by the operator for the API's role (percona-postgresql-operator v3.0.0, internal/postgres/users.go).
    user = decoded_config(stack)["real-estate-ai:postgres"].get("user", "realestate")
    keys[user_secret_name(user)] = {"user", "password", "host", "port", "dbname", "uri", "pgbouncer-uri", "pgbouncer-host"}
    # The exporter's role has no database: no dbname or uri keys.
    keys[user_secret_name("metrics")] = {"user", "password", "verifier", "host", "port"}
    return keys


def _config_map_keys(objects):
    return {o["metadata"]["name"]: set(o.get("data", {})) for o in objects if o["kind"] == "ConfigMap"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_and_config_reference_exists(stack, rendered_stacks):
    objects = rendered_stacks[stack].objects
    secrets, config_maps = _secret_keys(objects, stack), _config_map_keys(objects)
    references = 0
    for workload in (o for o in objects if pod_spec(o)):
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], env
                    references += 1
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config_maps[ref["configMapKeyRef"]["name"]], env
                    references += 1
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                keys = secrets[volume["secret"]["secretName"]]
                for item in volume["secret"].get("items", []):
                    assert item["key"] in keys, volume
                references += 1
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, volume
                references += 1
            for source in volume.get("projected", {}).get("sources", []):
                kind, found = ("secret", secrets) if "secret" in source else ("configMap", config_maps)
                for item in source[kind].get("items", []):
                    assert item["key"] in found[source[kind]["name"]], volume
                references += 1
            if "persistentVolumeClaim" in volume:
                claims_made = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
                # StatefulSet claims are <template>-<set>-<ordinal>; the operator names repo1's after the cluster.
                claims_made |= {
                    f"{t['metadata']['name']}-{o['metadata']['name']}-0"
                    for o in objects if o["kind"] == "StatefulSet" for t in o["spec"].get("volumeClaimTemplates", [])
                }
                assert volume["persistentVolumeClaim"]["claimName"] in claims_made | {repo1_claim_name()}, volume
        mounted = {m["name"] for c in containers(workload) for m in c.get("volumeMounts", [])}
        declared = {v["name"] for v in pod_spec(workload).get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        assert mounted <= declared | claims, workload["metadata"]["name"]
    assert references >= 8


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_is_bounded_probed_and_unprivileged(stack, rendered_stacks):
    checked = 0
    for workload in (o for o in rendered_stacks[stack].objects if pod_spec(o)):
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            name = f"{workload['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), name
            assert byte_count(resources["requests"]["memory"]) <= byte_count(resources["limits"]["memory"]), name
            # Run-to-completion pods (Jobs, CronJobs) are bounded by activeDeadlineSeconds instead of probes.
            if workload["kind"] in ("Job", "CronJob"):
                assert workload_deadline(workload) > 0, name
            else:
                assert "livenessProbe" in container and "readinessProbe" in container, name
            security = container["securityContext"]
            # Our UID everywhere, except pods that read the operator's repository as its owner (the image's postgres, 26).
            assert security["runAsNonRoot"] is True and security["runAsUser"] in (RUN_AS_UID, POSTGRES_UID), name
            if security["runAsUser"] == POSTGRES_UID:
                assert "percona-distribution-postgresql" in container["image"], name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), name
            checked += 1
    assert checked >= 6


def workload_deadline(workload: dict) -> int:
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    return spec.get("activeDeadlineSeconds", 0)


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_leaves_a_secret(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    assert len(rendered.secret_values) >= 4
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        for secret in rendered.secret_values:
            assert secret not in text, f"{obj['kind']}/{obj['metadata']['name']} holds a secret value"
    for name, output in rendered.outputs.items():
        if output.is_secret:
            continue
        for secret in rendered.secret_values:
            assert secret not in str(output.value), f"plain output {name} holds a secret value"


@pytest.mark.parametrize("stack", STACKS)
def test_written_secrets_are_redacted(stack, rendered_stacks, tmp_path):
    rendered = rendered_stacks[stack]
    write_manifests(rendered, tmp_path)
    text = "".join(p.read_text() for p in tmp_path.glob("*.yaml"))
    for secret in rendered.secret_values:
        assert secret not in text
    api_secret = yaml.safe_load((tmp_path / "secret-api-secrets.yaml").read_text())
    assert api_secret["stringData"] == {k: REDACTED for k in ("redis-url", "milvus-url", "api-key", "tester-key")}


def test_api_key_output_is_secret(rendered_stacks):
    for rendered in rendered_stacks.values():
        assert rendered.outputs["apiKey"].is_secret
        assert rendered.outputs["apiKey"].value in rendered.secret_values


def test_environment_shapes(rendered_stacks):
    dev, test, prod = (rendered_stacks[s] for s in STACKS)
    assert dev.find("Deployment", "api")["spec"]["replicas"] == 1
    assert test.find("Deployment", "api")["spec"]["replicas"] == 2
    assert prod.find("Deployment", "api")["spec"]["replicas"] >= 3
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert any(o["kind"] == kind for o in prod.objects)
        assert not any(o["kind"] == kind for o in dev.objects)
    # Traffic arrives through the Gateway API everywhere; prod and test listen with TLS, dev in plain HTTP.
    assert not any(o["kind"] == "Ingress" for stack in (dev, test, prod) for o in stack.objects)
    assert [listener["protocol"] for listener in prod.find("Gateway", "api")["spec"]["listeners"]] == ["HTTP", "HTTPS"]
    assert [listener["protocol"] for listener in dev.find("Gateway", "api")["spec"]["listeners"]] == ["HTTP"]
    assert prod.find("Gateway", "api")["spec"]["listeners"][1]["hostname"] == "api.real-estate.example.com"
    # Releases: canaries in test (the pre-release stage) and prod; dev rolls out plainly.
    assert [any(o["kind"] == "Canary" for o in stack.objects) for stack in (dev, test, prod)] == [False, True, True]
    assert prod.find("Namespace", "real-estate")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert test.find("Namespace", "real-estate-test")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    prod_pg = prod.find("PerconaPGCluster", "postgres")["spec"]["instances"][0]
    dev_pg = dev.find("PerconaPGCluster", "postgres")["spec"]["instances"][0]
    assert (prod_pg["replicas"], test.find("PerconaPGCluster", "postgres")["spec"]["instances"][0]["replicas"], dev_pg["replicas"]) == (3, 2, 1)
    storage = [byte_count(pg["dataVolumeClaimSpec"]["resources"]["requests"]["storage"]) for pg in (prod_pg, dev_pg)]
    assert storage[0] > storage[1]


@pytest.mark.parametrize("stack,protected", [("dev", False), ("test", True), ("prod", True)])
def test_stateful_data_protection(stack, protected, rendered_stacks):
    rendered = rendered_stacks[stack]
    operator_namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"] + "-pg-operator"
    stateful = [
        r for r in rendered.registrations
        if r.inputs.get("kind") in ("StatefulSet", "PersistentVolumeClaim", "Namespace", "PerconaPGCluster")
        and not r.type.endswith("Patch")
        # The operators' and the monitoring stack's namespaces hold no data of ours.
        and r.inputs["metadata"]["name"] not in (operator_namespace, "monitoring")
    ]
    # namespace, the PostgreSQL cluster, 4 StatefulSets (redis, milvus-etcd, milvus-s3, backup-s3),
    # 2 PVCs (milvus, redis backups)
    # prod keeps Milvus' data in an external S3 service: no milvus-s3 there.
    assert len(stateful) == (7 if stack == "prod" else 8)
    assert all(r.protect is protected for r in stateful), [(r.name, r.protect) for r in stateful]
    namespace = next(r for r in stateful if r.inputs["kind"] == "Namespace")
    assert namespace.retain_on_delete is protected
    # The operator's namespace holds no data; deleting it removes only the operator.
    assert not rendered.registration("Namespace", operator_namespace).protect
    for sts in (o for o in rendered.objects if o["kind"] == "StatefulSet"):
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_routes_reach_the_api_service_port(rendered_stacks):
    # dev: the program's HTTPRoute to its Service.
    dev = rendered_stacks["dev"]
    (rule,) = dev.find("HTTPRoute", "api-direct")["spec"]["rules"]
    (backend,) = rule["backendRefs"]
    assert backend["port"] in [p["port"] for p in dev.find("Service", backend["name"])["spec"]["ports"]]
    # test and prod: Flagger generates Services on the Canary's port; the testers' route uses that port.
    for stack in ("test", "prod"):
        rendered = rendered_stacks[stack]
        canary = rendered.find("Canary", "api")["spec"]
        (tester_rule,) = rendered.find("HTTPRoute", "api-canary-testers")["spec"]["rules"]
        assert tester_rule["backendRefs"] == [{"name": "api-canary", "port": canary["service"]["port"]}]
        assert canary["service"]["targetPort"] in [p["name"] for p in containers(rendered.find("Deployment", "api")).__next__()["ports"]]
        assert not any(o["kind"] == "Service" and o["metadata"]["name"] == "api" for o in rendered.objects)


def test_stack_outputs(rendered_stacks):
    prod = rendered_stacks["prod"].outputs
    assert prod["namespace"].value == "real-estate"
    assert prod["ingressUrl"].value == "https://api.real-estate.example.com"
    assert prod["apiService"].value == "api"
    assert prod["apiImage"].value == "registry.example.com/real-estate-ai/real-estate-api@sha256:" + "0" * 64
    # test builds and pushes; what it runs is a digest, the value prod is promoted to.
    assert "@sha256:" in rendered_stacks["test"].outputs["apiImage"].value
    assert rendered_stacks["dev"].outputs["ingressUrl"].value == "http://api.dev.real-estate.example.com"


@pytest.mark.parametrize("stack", STACKS)
def test_statefulsets_never_need_replacing(stack, rendered_stacks):
    """volumeClaimTemplates are immutable: nothing in them may change on an upgrade, and size edits go to the claim."""
    rendered = rendered_stacks[stack]
    patches = {p["metadata"]["name"]: p for p in rendered.patches if p["kind"] == "PersistentVolumeClaim"}
    for sts in (o for o in rendered.objects if o["kind"] == "StatefulSet"):
        name = sts["metadata"]["name"]
        (template,) = sts["spec"]["volumeClaimTemplates"]
        assert "app.kubernetes.io/version" not in template["metadata"]["labels"], name
        registration = rendered.registration("StatefulSet", name)
        assert "spec.volumeClaimTemplates" in registration.ignore_changes, name
        # Pulumi waits longer than the pods' 600 s startup budget before it reports a failure.
        assert registration.create_timeout == registration.update_timeout == "15m", name
        claim = patches[f"{template['metadata']['name']}-{name}-0"]
        assert claim["spec"]["resources"]["requests"]["storage"] == template["spec"]["resources"]["requests"]["storage"], name
        assert claim["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_a_storage_edit_patches_the_claim_and_leaves_the_statefulset(rendered_stacks):
    from tools.render import render
    from tests.harness import encode_config, with_value

    config = with_value(decoded_config("prod"), "redis.storage.size", "40Gi")
    rendered = render("prod", encode_config(config))
    before = rendered_stacks["prod"].find("StatefulSet", "redis")
    after = rendered.find("StatefulSet", "redis")
    claim = next(p for p in rendered.patches if p["metadata"]["name"] == "data-redis-0")
    assert claim["spec"]["resources"]["requests"]["storage"] == "40Gi"
    # The template differs only in a field Pulumi is told to ignore: no replacement.
    assert {k: v for k, v in after["spec"].items() if k != "volumeClaimTemplates"} == \
        {k: v for k, v in before["spec"].items() if k != "volumeClaimTemplates"}


@pytest.mark.parametrize("stack", STACKS)
def test_one_shot_jobs_never_block_a_later_up(stack, rendered_stacks):
    for job in (o for o in rendered_stacks[stack].objects if o["kind"] == "Job"):
        annotations = job["metadata"]["annotations"]
        assert annotations["pulumi.com/replaceUnready"] == "true", job["metadata"]["name"]
        assert int(annotations["pulumi.com/timeoutSeconds"]) >= job["spec"]["activeDeadlineSeconds"]


@pytest.mark.parametrize("stack", STACKS)
def test_pods_request_the_node_disk_they_write(stack, rendered_stacks):
    checked = 0
    for workload in (o for o in rendered_stacks[stack].objects if pod_spec(o)):
        pod = pod_spec(workload)
        scratch = {v["name"]: byte_count(v["emptyDir"]["sizeLimit"]) for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in containers(workload):
            mounted = sum(scratch.get(m["name"], 0) for m in container.get("volumeMounts", []))
            requested = byte_count(container["resources"]["requests"]["ephemeral-storage"])
            assert requested >= mounted, (workload["metadata"]["name"], container["name"])
            assert byte_count(container["resources"]["limits"]["ephemeral-storage"]) > requested
            checked += 1
    assert checked >= 8


def test_two_instances_of_a_component_never_share_a_urn():
    """Children are named after their component: a second Redis (say, for sessions) can sit beside the first."""
    from components.redis import Redis, RedisArgs
    from components.secrets import RedisCredentials
    from settings import RedisSettings
    from tests.harness import run_component

    def two():
        credentials = RedisCredentials("redis-credentials", "password", "requirepass.conf", "abc")
        return [Redis(name, RedisArgs(name, "test", RedisSettings(), credentials, protect=False)) for name in ("cache", "sessions")]

    rendered, _ = run_component(two)
    urns = [r.urn for r in rendered.registrations]
    assert len(urns) == len(set(urns)) and len(urns) >= 14
    assert any(u.endswith("::cache-redis") for u in urns) and any(u.endswith("::sessions-redis") for u in urns)
