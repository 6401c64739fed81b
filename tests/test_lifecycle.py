"""What the Pulumi engine and the Kubernetes provider do across a stack's life, reproduced from their sources where no
engine runs: which objects a delete would fail on, which switches make the engine create a name that still exists.
Each test names the upstream code whose behaviour it holds the program to."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings.revision import source_revision
from tests.harness import STACKS, render_with


@pytest.mark.parametrize("stack", STACKS)
def test_every_patch_is_retained_on_delete(stack, rendered_stacks):
    """pulumi-kubernetes deletes a Patch resource by relinquishing its fields (provider/pkg/await/await.go Deletion →
    ssa.Relinquish). A resized claim's size is then the patch's alone and required: the API server refuses, and
    provider/pkg/provider/provider.go Delete fails naming retainOnDelete. Every patch amends an object created by
    another owner, which decides that object's life."""
    patches = [r for r in rendered_stacks[stack].registrations if r.type.endswith("Patch")]
    assert patches, "the stack registers no Patch: this test checks nothing"
    assert [r.name for r in patches if not r.retain_on_delete] == []


def flagger_objects(rendered) -> set[tuple[str, str]]:
    """What Flagger v1.44.0 creates for the stack's Canary, named as its source names them (each owned by the Canary,
    so garbage-collected only after the Canary is deleted):
    - Services apex, apex-primary, apex-canary, apex = spec.service.name or the target's name
      (pkg/apis/flagger/v1beta1/canary.go GetServiceNames);
    - the HTTPRoute named apex (pkg/router/gateway_api.go Reconcile);
    - the Deployment <target>-primary (pkg/canary/deployment_controller.go), the autoscaler <autoscalerRef>-primary
      (pkg/canary/hpa_reconciler.go), and a <name>-primary copy of every ConfigMap and Secret the target's pods
      reference (pkg/canary/config_tracker.go)."""
    (canary,) = [o for o in rendered.objects if o["kind"] == "Canary"]
    spec = canary["spec"]
    target = spec["targetRef"]["name"]
    apex = spec["service"].get("name") or target
    made = {("Service", apex), ("Service", f"{apex}-primary"), ("Service", f"{apex}-canary"), ("HTTPRoute", apex),
            ("Deployment", f"{target}-primary")}
    if "autoscalerRef" in spec:
        made.add(("HorizontalPodAutoscaler", f"{spec['autoscalerRef']['name']}-primary"))
    pod = rendered.find("Deployment", target)["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in ref:
                    made.add((kind, f"{ref[key]['name']}-primary"))
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            made.add(("ConfigMap", f"{volume['configMap']['name']}-primary"))
        if "secret" in volume:
            made.add(("Secret", f"{volume['secret']['secretName']}-primary"))
    return made


def program_objects(rendered) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}


@pytest.fixture(scope="session")
def canary_switched(rendered_stacks):
    """test as it is (canary on) and with the canary switched off."""
    return rendered_stacks["test"], render_with("test", {"release.canary.enabled": False})


def test_switching_the_canary_off_creates_no_name_flagger_still_holds(canary_switched):
    """The engine creates and updates first and deletes last (pulumi pkg/resource/deploy: deletions of resources the
    program no longer registers run after the program's steps), so the Canary, and with it Flagger's objects, are
    still there when the program creates its own Service and route; the provider fails a create whose name exists
    (provider/pkg/await/await.go Creation: AlreadyExists unless upsertExistingObjects)."""
    on, off = canary_switched
    created = program_objects(off) - program_objects(on)
    assert created, "switching the canary off creates nothing: this test checks nothing"
    assert created & flagger_objects(on) == set()


def test_switching_the_canary_on_leaves_no_program_object_under_a_flagger_name(canary_switched):
    """Flagger adopts or overwrites an object by its name (the apex Service, the HTTPRoute), and the engine would then
    delete the program's object of that name at the end of the update: none may share one."""
    on, off = canary_switched
    assert program_objects(off) & flagger_objects(on) == set()
    assert program_objects(on) & flagger_objects(on) == set()


def test_the_program_s_service_reaches_flagger_s_primary_pods(canary_switched):
    """Switching the canary on, Flagger scales the target to 0 before its route exists (pkg/canary/deployment_controller.go
    Initialize, ScaleToZero), while the program's route, the older of two with the same matches, still takes the
    traffic: its Service must select the primary's pods too. Flagger copies the target's pod labels to its primary but
    renames app.kubernetes.io/name to <name>-primary (pkg/canary/deployment_controller.go makePrimaryLabels, the
    default --selector-labels)."""
    on, off = canary_switched
    selector = off.find("Service", "api-direct")["spec"]["selector"]
    target_labels = on.find("Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    primary_labels = {**target_labels, "app.kubernetes.io/name": "api-primary"}
    assert selector.items() <= target_labels.items() and selector.items() <= primary_labels.items()


def test_the_canary_is_created_once_flagger_has_initialized_it(canary_switched):
    """Switching the canary on deletes the program's Service and route at the end of the update; the Canary's create
    must not finish before Flagger's route is in place. Flagger sets status.lastPromotedSpec on initialization, after
    its Services and HTTPRoute (pkg/controller/scheduler.go advanceCanary → setPhaseInitialized; pkg/canary/status.go),
    and the provider waits for a JSONPath's presence (provider/pkg/jsonpath/jsonpath.go Matches: no value, any match)."""
    on, _ = canary_switched
    (canary,) = [o for o in on.objects if o["kind"] == "Canary"]
    assert canary["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.lastPromotedSpec}"


def test_without_a_canary_the_program_takes_the_replica_count_back(canary_switched):
    """Flagger scaled the target (its field manager owns spec.replicas); the provider's update is an apply that conflicts
    with another manager's field unless forced (provider/pkg/await/await.go ssaUpdate, patchForce)."""
    on, off = canary_switched
    assert off.find("Deployment", "api")["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    assert on.find("Deployment", "api")["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_the_image_build_is_the_same_whoever_previews(rendered_stacks):
    """pulumi-docker diffs its build inputs: an absolute context or Dockerfile path, or a revision that depends on who
    runs the program (12 characters from make, a commit id of 40 in CI), makes every preview from another checkout
    a new build and a new digest."""
    (image,) = [r for r in rendered_stacks["test"].registrations if r.type == "docker:index/image:Image"]
    build = image.inputs["build"]
    assert (build["context"], build["dockerfile"]) == ("app", "app/Dockerfile")
    assert build["args"]["BUILD_REVISION"] == source_revision()
    assert image.inputs["imageName"].endswith(f":1.0.0-{source_revision()}")


URNS = Path(__file__).resolve().parent / "urns"


@pytest.mark.parametrize("stack", STACKS)
def test_every_urn_a_deployed_stack_holds_is_still_claimed(stack, rendered_stacks):
    """The engine knows a resource by its URN (pulumi sdk/go/common/resource/urn.go: the parent's whole qualified
    type, '$', the type, '::', the name): a URN in state that the program no longer registers, nor names as an
    alias, is deleted and its successor created — every object of the stack when a parent or a provider is renamed.
    tests/urns/<stack>.txt lists every URN a deployed stack may hold; a rename needs an alias, a new resource a line,
    a resource deliberately removed the removal of its line."""
    registrations = rendered_stacks[stack].registrations
    current = {r.urn for r in registrations}
    aliased = [a for r in registrations for a in r.aliases]
    known = set((URNS / f"{stack}.txt").read_text().split())
    assert sorted(known - current - set(aliased)) == [], "URNs in state that nothing claims: add an alias"
    assert sorted(current - known) == [], f"new URNs: add them to tests/urns/{stack}.txt"
    # An alias may name neither a live resource nor one another resource also claims.
    assert set(aliased) & current == set() and len(aliased) == len(set(aliased))


def test_config_maps_and_secrets_change_in_place():
    """pulumi-kubernetes replaces a ConfigMap or Secret whose data changes unless the provider makes them mutable
    (provider/pkg/provider/diff.go forceNewProperties); with a fixed name the replacement is delete-before-replace, and
    the engine deletes and re-creates every resource that depends on it — StatefulSets and the PostgreSQL cluster
    included. `make e2e` saw it: a new Redis password re-created the Redis StatefulSet."""
    from components.platform import provider_args
    from settings import KubernetesSettings

    args = provider_args(KubernetesSettings())
    assert args["enable_config_map_mutable"] is True and args["enable_secret_mutable"] is True
