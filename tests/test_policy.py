"""The policy pack (policy/): each rule with a compliant and a violating object, the whole pack over every stack's
registered resources — the pure rules here, and the real pulumi-policy policies in the pack's own virtualenv."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from policy.guardrails import rules
from policy.guardrails.rules import Resource, check
from tests.harness import STACKS

ROOT = Path(__file__).resolve().parent.parent
# Absolute: the pack runs from a copy of its directory, elsewhere (`make test` passes a path relative to the root).
POLICY_PYTHON = str(ROOT / os.environ.get("POLICY_PYTHON", "policy/.venv/bin/python"))


def _resources(rendered) -> list[Resource]:
    return [Resource(r.type, r.inputs, bool(r.protect)) for r in rendered.registrations if rules.judged(r.type)]


@pytest.fixture(scope="module")
def prod_objects(rendered_stacks):
    return _resources(rendered_stacks["prod"])


def _object(resources, kind, name) -> dict:
    return copy.deepcopy(next(r.props for r in resources if r.kind == kind and r.name == name))


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_whole_pack(stack, rendered_stacks):
    found = check(_resources(rendered_stacks[stack]))
    assert set(found) == set(rules.RESOURCE_RULES) | set(rules.STACK_RULES)
    assert {name: problems for name, problems in found.items() if problems} == {}


@pytest.fixture(scope="session")
def published_pack(tmp_path_factory) -> Path:
    """policy/ as `pulumi policy publish` takes it: the directory alone, away from the repository."""
    pack = tmp_path_factory.mktemp("published") / "policy"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    return pack


def _analyze(registered: list[dict], tmp_path: Path, pack: Path) -> tuple[int, dict]:
    """The pack, from its directory alone, through pulumi-policy's own analyzer servicer, props encoded as the engine
    sends them (tests/policy_servicer.py)."""
    assert Path(POLICY_PYTHON).exists(), f"{POLICY_PYTHON} missing: run `make policy-venv`"
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps(registered, default=str))
    done = subprocess.run([POLICY_PYTHON, "-I", str(ROOT / "tests" / "policy_servicer.py"), str(pack), str(resources)],
                          cwd=pack, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def _registered(rendered) -> list[dict]:
    return copy.deepcopy([{"type": r.type, "name": r.name, "props": r.inputs, "protect": bool(r.protect)}
                          for r in rendered.registrations])


def _registered_object(registered: list[dict], kind: str, name: str) -> dict:
    return next(r["props"] for r in registered if r["props"].get("kind") == kind and r["props"]["metadata"]["name"] == name)


# pulumi_policy/proxy.py UNKNOWN_STRING_VALUE and UNKNOWN_NUMBER_VALUE: what a preview sends for a computed value.
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
UNKNOWN_NUMBER = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_pack_passes_every_stack_and_reports_a_violation(stack, rendered_stacks, tmp_path, published_pack):
    registered = _registered(rendered_stacks[stack])
    code, result = _analyze(registered, tmp_path, published_pack)
    assert (code, result) == (0, {"violations": {name: [] for name in [*rules.RESOURCE_RULES, *rules.STACK_RULES]},
                                  "advisory": []})
    # The same pack fails when one container runs an unpinned image.
    _registered_object(registered, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]["image"] = \
        "real-estate-api:latest"
    code, result = _analyze(registered, tmp_path, published_pack)
    assert code == 1
    assert result["violations"]["pinned-images"] == [
        "Deployment/api container 'api': image 'real-estate-api:latest' is not pinned to a version tag or a digest"]


def test_prod_floors_hold_with_numbers_as_the_engine_sends_them(rendered_stacks, tmp_path, published_pack):
    """The engine's Struct carries every number as a double: replicas 2 arrives as 2.0 and must still fail the floor."""
    registered = [r for r in _registered(rendered_stacks["prod"]) if r["props"].get("kind") != "Canary"]
    _registered_object(registered, "Deployment", "api")["spec"]["replicas"] = 2
    _registered_object(registered, "HorizontalPodAutoscaler", "api")["spec"]["minReplicas"] = 1
    code, result = _analyze(registered, tmp_path, published_pack)
    assert code == 1
    assert result["violations"]["prod-guardrails"] == [
        "prod: the API runs 2 replicas; at least 3",
        "prod: HorizontalPodAutoscaler/api keeps 1 replicas; at least 2",
        "prod: the API is not released through a Canary",
    ]


def test_prod_guardrails_judge_what_is_known_during_a_preview(rendered_stacks, tmp_path, published_pack):
    """A preview's unknowns (the image a build will push, a computed count) leave the rest of the guardrails
    mandatory: pulumi-policy alone would turn the whole policy advisory at the first unknown it meets."""
    registered = _registered(rendered_stacks["prod"])
    api = _registered_object(registered, "Deployment", "api")
    api["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN_STRING
    api["spec"]["replicas"] = UNKNOWN_NUMBER
    _registered_object(registered, "HorizontalPodAutoscaler", "api")["spec"]["minReplicas"] = 1
    code, result = _analyze(registered, tmp_path, published_pack)
    assert (code, result["advisory"]) == (1, [])
    assert result["violations"]["prod-guardrails"] == ["prod: HorizontalPodAutoscaler/api keeps 1 replicas; at least 2"]
    assert result["violations"]["pinned-images"] == []


def test_prod_guardrails_read_the_live_state_under_a_canary(rendered_stacks, tmp_path, published_pack):
    """A stack policy reads outputs: between releases Flagger holds the target Deployment at 0 replicas."""
    registered = _registered(rendered_stacks["prod"])
    _registered_object(registered, "Deployment", "api")["spec"]["replicas"] = 0
    code, result = _analyze(registered, tmp_path, published_pack)
    assert (code, result["violations"]["prod-guardrails"]) == (0, [])


def test_pinned_images(prod_objects):
    deployment = _object(prod_objects, "Deployment", "milvus")
    assert rules.pinned_images(deployment) == []
    for image in ("milvusdb/milvus", "milvusdb/milvus:latest", "not an image"):
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
        assert rules.pinned_images(deployment) == [
            f"Deployment/milvus container 'milvus': image '{image}' is not pinned to a version tag or a digest"]
    # A digest alone pins; so does a numeric tag (not a registry port).
    for image in ("milvusdb/milvus@sha256:" + "a" * 64, "redis:7"):
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
        assert rules.pinned_images(deployment) == []


def test_requests_limits_and_probes(prod_objects):
    deployment = _object(prod_objects, "Deployment", "api")
    assert rules.bounded_and_probed(deployment) == []
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]["memory"]
    del container["readinessProbe"]
    assert rules.bounded_and_probed(deployment) == [
        "Deployment/api container 'api': no limits for memory", "Deployment/api container 'api': no readinessProbe"]
    # A Job's containers finish: bounded, but no probes asked of them.
    job = _object(prod_objects, "CronJob", "redis-backup")
    assert rules.bounded_and_probed(job) == []


def test_non_root(prod_objects):
    deployment = _object(prod_objects, "Deployment", "api")
    assert rules.unprivileged(deployment) == []
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"] = {"runAsUser": 0, "allowPrivilegeEscalation": True, "privileged": True}
    pod["securityContext"] = {}
    where = "Deployment/api container 'api'"
    assert rules.unprivileged(deployment) == [
        f"{where}: may run as root (set runAsNonRoot: true and a non-zero runAsUser)",
        f"{where}: allowPrivilegeEscalation must be false", f"{where}: runs privileged"]
    # runAsNonRoot on the pod covers a container that does not repeat it.
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001}
    pod["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False}
    assert rules.unprivileged(deployment) == []


@pytest.mark.parametrize("data,problem", [
    ({"database.password": "hunter2hunter2"}, "key 'database.password': named like a credential; put it in a Secret"),
    ({"app.properties": "db.url=postgresql://app:s3cretpass@postgres/app\n"}, "key 'app.properties': holds what looks like a credential; put it in a Secret"),
    ({"config.yml": "token: abcdefgh12345678\n"}, "key 'config.yml': holds what looks like a credential; put it in a Secret"),
    ({"key.pem": "-----BEGIN RSA PRIVATE KEY-----\nMII..."}, "key 'key.pem': holds what looks like a credential; put it in a Secret"),
    ({"aws.env": "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"}, "key 'aws.env': holds what looks like a credential; put it in a Secret"),
    ({"aws.env": "id AKIA1234567890ABCDEF"}, "key 'aws.env': holds what looks like a credential; put it in a Secret"),
    ({"cache.url": "redis://:hunter2hunter2@redis:6379/0"}, "key 'cache.url': holds what looks like a credential; put it in a Secret"),
    ({"store.url": "s3://AKID:hunter2hunter2@bucket/path"}, "key 'store.url': holds what looks like a credential; put it in a Secret"),
    ({"config.yml": "password: '12345678'\n"}, "key 'config.yml': holds what looks like a credential; put it in a Secret"),
    ({"config.yml": "token: ab+cdefghij\n"}, "key 'config.yml': holds what looks like a credential; put it in a Secret"),
])
def test_no_secrets_in_config_maps(data, problem):
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}
    assert rules.no_secrets_in_config_maps(config_map) == [f"ConfigMap/c {problem}"]


def test_config_maps_that_only_name_secrets_pass(prod_objects):
    # Scripts that read credentials from files or variables, and an empty placeholder, are not credentials.
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {
        "run.sh": 'password="$(cat /secrets/password)"\nexport PGPASSWORD="$PASSWORD"\n', "password-file": "",
        "url": "postgresql://app@postgres/app", "login-url": "https://user:@example.com/",
        "short": "token: abc1234", "aws-like": "AKIA123"}}
    assert rules.no_secrets_in_config_maps(config_map) == []
    assert all(rules.no_secrets_in_config_maps(r.props) == [] for r in prod_objects if r.kind == "ConfigMap")


def test_pod_specs_of_every_workload_kind_are_judged(prod_objects):
    cron_job = _object(prod_objects, "CronJob", "redis-backup")
    del cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert rules.bounded_and_probed(cron_job) == ["CronJob/redis-backup container 'redis-backup': no requests for cpu, memory"]
    # Objects without a pod, or with their pod's path missing, are nothing to judge (and no crash).
    for obj in ({"kind": "CronJob", "spec": {}}, {"kind": "CronJob"}, {"kind": "Deployment", "spec": {"template": None}},
                {"kind": "Service", "spec": {}}):
        assert rules.pod_spec(obj) is None and rules.unprivileged(obj) == [] and rules.pinned_images(obj) == []


def test_a_resource_is_unprotected_unless_said_and_immutable():
    import dataclasses

    resource = Resource("kubernetes:apps/v1:Deployment", {"kind": "Deployment"})
    assert resource.protect is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        resource.protect = True


def test_uid_0_is_root_even_with_run_as_non_root(prod_objects):
    deployment = _object(prod_objects, "Deployment", "api")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    assert rules.unprivileged(deployment) == [
        "Deployment/api container 'api': may run as root (set runAsNonRoot: true and a non-zero runAsUser)"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 1
    assert rules.unprivileged(deployment) == []


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), (0.0, 0), (2.5, None), (True, None), ("3", None),
                                             (rules.UNKNOWN, None), (None, None)])
def test_count_reads_whole_numbers_as_the_engine_sends_them(value, expected):
    assert rules.count(value) == expected


def test_unknown_reads_as_nothing_and_equals_only_itself():
    assert not rules.UNKNOWN and rules.UNKNOWN.get("spec") is None and list(rules.UNKNOWN) == []
    assert rules.UNKNOWN != {} and rules.UNKNOWN == rules.UNKNOWN and repr(rules.UNKNOWN) == "<unknown>"
    assert not isinstance(rules.UNKNOWN, (str, int, float))


def test_a_check_whose_value_is_unknown_is_skipped_not_failed(prod_objects):
    """A preview's unknowns: the check waits for the value (`pulumi up` analyses again) instead of reporting it missing."""
    api = _object(prod_objects, "Deployment", "api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = rules.UNKNOWN
    container["securityContext"] = rules.UNKNOWN
    assert rules.bounded_and_probed(api) == [] and rules.unprivileged(api) == []
    container["resources"] = {"requests": rules.UNKNOWN, "limits": {"cpu": "1"}}
    assert rules.bounded_and_probed(api) == ["Deployment/api container 'api': no limits for memory"]
    api["spec"]["template"]["spec"]["containers"][0] = rules.UNKNOWN
    assert rules.bounded_and_probed(api) == rules.unprivileged(api) == rules.pinned_images(api) == []
    # Known and missing still fails.
    api["spec"]["template"]["spec"]["containers"][0] = {"name": "api", "image": "x:1", "resources": {}}
    assert rules.bounded_and_probed(api)[0] == "Deployment/api container 'api': no requests for cpu, memory"


def test_default_deny(prod_objects):
    assert rules.default_deny(prod_objects) == []
    without = [r for r in prod_objects if not (r.kind == "NetworkPolicy" and r.name == "default-deny")]
    assert rules.default_deny(without) == ["no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)"]


def _replace(resources, kind, name, change):
    result = []
    for r in resources:
        if r.kind == kind and r.name == name:
            props = copy.deepcopy(r.props)
            change(props)
            r = Resource(r.type, props, r.protect)
        result.append(r)
    return result


def test_prod_guardrails(prod_objects):
    assert rules.prod_guardrails(prod_objects) == []

    def set_path(*path, value):
        def change(props):
            node = props
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        return change

    cases = [
        (("HorizontalPodAutoscaler", "api", set_path("spec", "minReplicas", value=1)),
         "prod: HorizontalPodAutoscaler/api keeps 1 replicas; at least 2"),
        (("Deployment", "api", lambda p: p["spec"]["template"]["spec"]["containers"][0].update(image="registry.example.com/api:1.0.0")),
         "prod: the API image 'registry.example.com/api:1.0.0' is not pinned by digest"),
        (("Gateway", "api", lambda p: p["spec"].update(listeners=p["spec"]["listeners"][:1])),
         "prod: no TLS listener (Gateway HTTPS with Terminate, or Ingress tls)"),
        (("PerconaPGCluster", "postgres", lambda p: p["spec"]["backups"]["pgbackrest"].update(
            repos=[r for r in p["spec"]["backups"]["pgbackrest"]["repos"] if "s3" not in r])),
         "prod: no off-site (S3) pgBackRest repository for PostgreSQL's backups"),
    ]
    for (kind, name, change), expected in cases:
        assert rules.prod_guardrails(_replace(prod_objects, kind, name, change)) == [expected], expected
    no_canary = [r for r in prod_objects if r.kind != "Canary"]
    assert rules.prod_guardrails(no_canary) == ["prod: the API is not released through a Canary"]
    # Without a canary the Deployment holds the floor; under one, Flagger holds its count (0 between releases).
    assert rules.prod_guardrails(_replace(no_canary, "Deployment", "api", set_path("spec", "replicas", value=2))) == [
        "prod: the API runs 2 replicas; at least 3", "prod: the API is not released through a Canary"]
    assert rules.prod_guardrails(_replace(prod_objects, "Deployment", "api", set_path("spec", "replicas", value=0))) == []
    assert rules.prod_guardrails([r for r in prod_objects if r.kind != "PodDisruptionBudget"]) == [
        "prod: no PodDisruptionBudget for the API's pods"]
    # The floors themselves pass.
    at_floor = _replace(_replace(prod_objects, "HorizontalPodAutoscaler", "api", set_path("spec", "minReplicas", value=2)),
                        "Deployment", "api", set_path("spec", "replicas", value=3))
    assert rules.prod_guardrails(at_floor) == []
    assert rules.prod_guardrails(_replace(no_canary, "Deployment", "api", set_path("spec", "replicas", value=3))) == [
        "prod: the API is not released through a Canary"]
    # TLS is an HTTPS listener that terminates, or an Ingress with tls, or a shared Gateway's (its owners' listener).
    passthrough = _replace(prod_objects, "Gateway", "api", lambda p: p["spec"]["listeners"][1]["tls"].update(mode="Passthrough"))
    assert rules.prod_guardrails(passthrough) == ["prod: no TLS listener (Gateway HTTPS with Terminate, or Ingress tls)"]
    no_gateway = [r for r in prod_objects if r.kind != "Gateway"]
    with_ingress = no_gateway + [Resource("kubernetes:networking.k8s.io/v1:Ingress",
                                          {"kind": "Ingress", "metadata": {"name": "api"}, "spec": {"tls": [{"hosts": ["h"]}]}})]
    assert rules.prod_guardrails(with_ingress) == []
    shared = _replace(no_gateway, "HTTPRoute", "api-canary-testers",
                      lambda p: p["spec"]["parentRefs"][0].update(namespace="edge", name="public"))
    assert rules.prod_guardrails(shared) == []
    unprotected = [Resource(r.type, r.props, False) if r.kind == "PerconaPGCluster" else r for r in prod_objects]
    assert rules.prod_guardrails(unprotected) == ["prod: PerconaPGCluster/postgres holds data but is not protected"]


def test_prod_guardrails_apply_to_prod_only(rendered_stacks, prod_objects):
    relabelled = _replace(prod_objects, "Namespace", "real-estate",
                          lambda p: p["metadata"]["labels"].update({rules.ENVIRONMENT_LABEL: "test"}))
    assert rules.prod_guardrails([r for r in relabelled if r.kind != "Canary"]) == []
    # dev's unprotected, single-replica stack is fine as dev.
    assert rules.prod_guardrails(_resources(rendered_stacks["dev"])) == []


def _pod(kind: str, container: dict, field: str = "containers") -> dict:
    pod = {field: [container], **({"containers": [{"name": "main"}]} if field != "containers" else {})}
    spec = {"jobTemplate": {"spec": {"template": {"spec": pod}}}} if kind == "CronJob" else {"template": {"spec": pod}}
    return {"kind": kind, "metadata": {"name": "w"}, "spec": spec}


BOUNDED = {"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}


@pytest.mark.parametrize("kind,long_running", [("Deployment", True), ("StatefulSet", True), ("DaemonSet", True),
                                               ("Job", False), ("CronJob", False), ("ReplicaSet", None), ("Pod", None)])
def test_which_kinds_are_judged_and_which_must_be_probed(kind, long_running):
    """Every workload kind's pod is judged; only long-running ones need probes; a kind the rules do not know is
    nothing to judge."""
    root = {"name": "c", "securityContext": {"runAsNonRoot": False}}
    probed = rules.bounded_and_probed(_pod(kind, BOUNDED))
    if long_running is None:
        assert rules.pod_spec(_pod(kind, BOUNDED)) is None and rules.unprivileged(_pod(kind, root)) == []
        return
    assert probed == ([f"{kind}/w container 'c': no livenessProbe or readinessProbe"] if long_running else [])
    assert f"{kind}/w container 'c': may run as root (set runAsNonRoot: true and a non-zero runAsUser)" in rules.unprivileged(_pod(kind, root))


def test_init_containers_are_judged_like_containers_but_need_no_probes():
    unbounded_init = _pod("Deployment", {"name": "init", "image": "app:latest"}, field="initContainers")
    assert "Deployment/w container 'init': no requests for cpu, memory" in rules.bounded_and_probed(unbounded_init)
    assert "Deployment/w container 'init': no livenessProbe or readinessProbe" not in rules.bounded_and_probed(unbounded_init)
    assert any("container 'init'" in p for p in rules.pinned_images(unbounded_init))
    assert any("container 'init'" in p for p in rules.unprivileged(unbounded_init))


@pytest.mark.parametrize("kind,holds_data", [("StatefulSet", True), ("PersistentVolumeClaim", True),
                                             ("PerconaPGCluster", True), ("Deployment", False), ("ConfigMap", False)])
def test_prod_protects_every_kind_that_holds_data(prod_objects, kind, holds_data):
    extra = Resource("kubernetes:test", {"kind": kind, "metadata": {"name": "extra"}}, protect=False)
    found = [p for p in rules.prod_guardrails([*prod_objects, extra]) if "extra" in p]
    assert found == ([f"prod: {kind}/extra holds data but is not protected"] if holds_data else [])


def test_only_config_maps_are_searched_for_credentials():
    data = {"password": "hunter2hunter2", "url": "redis://:hunter2hunter2@redis:6379"}
    assert len(rules.no_secrets_in_config_maps({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})) == 2
    for kind in ("Secret", "Deployment", None):
        assert rules.no_secrets_in_config_maps({"kind": kind, "metadata": {"name": "c"}, "data": data}) == []


def test_the_policies_keep_their_names():
    # Users enable, disable and configure policies by name (`pulumi policy enable`, a policy config file).
    assert list(rules.RESOURCE_RULES) == ["pinned-images", "requests-limits-probes", "non-root", "no-secrets-in-configmaps"]
    assert list(rules.STACK_RULES) == ["default-deny-network-policy", "prod-guardrails"]


@pytest.mark.parametrize("resource_type,owned", [
    ("kubernetes:apps/v1:Deployment", True), ("kubernetes:core/v1:ConfigMap", True),
    ("kubernetes:apps/v1:DeploymentPatch", False), ("kubernetes:helm.sh/v3:Release", False),
    ("kubernetes:helm.sh/v4:Chart", False), ("random:index/randomPassword:RandomPassword", False),
])
def test_only_objects_the_program_owns_are_judged(resource_type, owned):
    assert rules.judged(resource_type) is owned
