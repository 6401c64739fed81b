"""The policy pack's rules as plain functions over Kubernetes objects (a resource's `props`), so the pack
(policy/__main__.py, pulumi-policy) and the tests read one definition. The stack config's validation shares their
contract (contract.py: the image reference grammar, prod's floors).

Resource rules hold everywhere; stack rules see every resource at once and apply prod's guardrails where the
namespace says environment prod (the label components/namespace.py writes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .contract import PROD_API_REPLICAS, PROD_AUTOSCALING_MIN, image_parts

ENVIRONMENT_LABEL = "real-estate-ai/environment"
# Our API's pods (components/api.py POD_LABELS) and Deployment.
API_COMPONENT = "api"
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")
# Kinds that hold data: `pulumi destroy` and replacements must not take them (protect) in prod.
DATA_KINDS = ("StatefulSet", "PersistentVolumeClaim", "PerconaPGCluster")
# A ConfigMap is readable by anyone who may list it: nothing in it may look like a credential.
_SECRET_KEY_RE = re.compile(r"(?i)(password|passwd|secret|token|api[-_]?key|private[-_]?key|credential)")
_SECRET_VALUE_RES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # [user]:password@ in a URL (redis://:password@ has no user).
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^@\s/$]+@"),
    # password = 'literal' (at least 8 characters, not a variable or a file reference).
    re.compile(r"(?i)(password|secret|token|api[-_]?key)\s*[:=]\s*['\"]?[A-Za-z0-9+/_-]{8,}"),
    # Well-known token shapes (AWS access key ids).
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
)


class _Unknown(dict):
    """A value the engine does not know yet (a preview's computed image digest, say). It reads as an empty object so
    that a rule can walk past it, equals nothing but itself, and is no string or number; a check whose value is
    unknown is skipped (`is UNKNOWN`), never failed: it is judged once known (`pulumi up` analyses again with every
    input resolved). pack.py puts it where the analyzer's proxy would raise, so one unknown field no longer
    turns a whole policy advisory."""

    def __eq__(self, other) -> bool:
        return self is other

    def __ne__(self, other) -> bool:
        return self is not other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def count(value) -> Optional[int]:
    """A whole number as the engine sends it: protobuf's Struct has only doubles, so replicas 3 arrives as 3.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value)


@dataclass(frozen=True)
class Resource:
    """What a policy sees of a resource: its Pulumi type, its Kubernetes object (props) and its protect flag."""

    type: str
    props: dict
    protect: bool = False

    @property
    def kind(self) -> Optional[str]:
        return self.props.get("kind")

    @property
    def name(self) -> str:
        return (self.props.get("metadata") or {}).get("name", "")


def pod_spec(obj: dict) -> Optional[dict]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    return None


def _containers(pod: dict) -> Iterator[tuple[str, dict]]:
    """Each known container (an unknown one is judged once known)."""
    for field in ("initContainers", "containers"):
        for container in pod.get(field) or []:
            if container is not UNKNOWN:
                yield field, container


def _where(obj: dict, container: dict) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')} container '{container.get('name')}'"


def pinned_images(obj: dict) -> list[str]:
    """Every image carries a version tag (not 'latest') or a digest: the grammar settings enforce on config."""
    pod = pod_spec(obj)
    problems = []
    for _, container in _containers(pod or {}):
        image = container.get("image")
        if not isinstance(image, str):
            continue  # computed during preview (a build's digest): judged when known
        match = image_parts(image)
        if match is None or (match.group("tag") in (None, "latest") and match.group("digest") is None):
            problems.append(f"{_where(obj, container)}: image '{image}' is not pinned to a version tag or a digest")
    return problems


def bounded_and_probed(obj: dict) -> list[str]:
    """CPU and memory requests and limits on every container; liveness and readiness on long-running ones."""
    pod = pod_spec(obj)
    problems = []
    for field, container in _containers(pod or {}):
        # `or {}` would turn an unknown (it reads as empty) into a missing value: test for it first.
        resources = container.get("resources")
        for bound in ("requests", "limits"):
            given = None if resources is UNKNOWN else (resources or {}).get(bound)
            if resources is UNKNOWN or given is UNKNOWN:
                continue
            given = given or {}
            missing = [r for r in ("cpu", "memory") if r not in given]
            if missing:
                problems.append(f"{_where(obj, container)}: no {bound} for {', '.join(missing)}")
        if obj.get("kind") in LONG_RUNNING and field == "containers":
            missing = [p for p in ("livenessProbe", "readinessProbe") if p not in container]
            if missing:
                problems.append(f"{_where(obj, container)}: no {' or '.join(missing)}")
    return problems


def unprivileged(obj: dict) -> list[str]:
    """Non-root (pod or container runAsNonRoot, never UID 0), no privilege escalation, not privileged."""
    pod = pod_spec(obj)
    if pod is None:
        return []
    pod_context = pod.get("securityContext")
    problems = []
    for _, container in _containers(pod):
        context = container.get("securityContext")
        if pod_context is UNKNOWN or context is UNKNOWN:
            continue
        pod_context, context = pod_context or {}, context or {}
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        uid = context.get("runAsUser", pod_context.get("runAsUser"))
        if non_root is not True or uid == 0:
            problems.append(f"{_where(obj, container)}: may run as root (set runAsNonRoot: true and a non-zero runAsUser)")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{_where(obj, container)}: allowPrivilegeEscalation must be false")
        if context.get("privileged") is True:
            problems.append(f"{_where(obj, container)}: runs privileged")
    return problems


def no_secrets_in_config_maps(obj: dict) -> list[str]:
    """A ConfigMap key named like a credential, or a value that looks like one (a private key, a URL with a
    password, a literal password or token)."""
    if obj.get("kind") != "ConfigMap":
        return []
    problems = []
    name = (obj.get("metadata") or {}).get("name")
    for key, value in sorted((obj.get("data") or {}).items()):
        if _SECRET_KEY_RE.search(key) and value:
            problems.append(f"ConfigMap/{name} key '{key}': named like a credential; put it in a Secret")
        elif isinstance(value, str) and any(pattern.search(value) for pattern in _SECRET_VALUE_RES):
            problems.append(f"ConfigMap/{name} key '{key}': holds what looks like a credential; put it in a Secret")
    return problems


RESOURCE_RULES: dict[str, tuple[str, Callable[[dict], list[str]]]] = {
    "pinned-images": ("Every container image is pinned to a version tag or a digest.", pinned_images),
    "requests-limits-probes": ("Every container has CPU and memory requests and limits; long-running ones have "
                               "liveness and readiness probes.", bounded_and_probed),
    "non-root": ("Containers run as non-root, without privilege escalation, never privileged.", unprivileged),
    "no-secrets-in-configmaps": ("No ConfigMap holds a credential.", no_secrets_in_config_maps),
}


def environment(resources: list[Resource]) -> Optional[str]:
    for resource in resources:
        if resource.kind == "Namespace":
            label = ((resource.props.get("metadata") or {}).get("labels") or {}).get(ENVIRONMENT_LABEL)
            if label:
                return label
    return None


def default_deny(resources: list[Resource]) -> list[str]:
    """Some NetworkPolicy denies all ingress and egress to every pod; the others open only the platform's flows."""
    for resource in resources:
        spec = resource.props.get("spec") or {}
        if resource.kind == "NetworkPolicy" and spec.get("podSelector") == {} and \
                set(spec.get("policyTypes") or []) == {"Ingress", "Egress"} and not spec.get("ingress") and not spec.get("egress"):
            return []
    return ["no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)"]


def _api_deployment(resources: list[Resource]) -> Optional[Resource]:
    return next((r for r in resources if r.kind == "Deployment" and r.name == "api"), None)


def prod_guardrails(resources: list[Resource]) -> list[str]:
    """prod: the API at its floors and behind a disruption budget and a canary, by digest; TLS; off-site backups;
    data protected. The same floors settings.rules enforces on the config."""
    if environment(resources) != "prod":
        return []
    problems = []
    by_kind: dict[str, list[Resource]] = {}
    for resource in resources:
        by_kind.setdefault(resource.kind or "", []).append(resource)
    api = _api_deployment(resources)
    canary = any(((c.props.get("spec") or {}).get("targetRef") or {}).get("name") == "api" for c in by_kind.get("Canary", []))
    if api is None:
        problems.append("prod: no API Deployment 'api'")
    else:
        # Under a canary Flagger owns the target's replica count (0 between releases, in the live state a stack
        # policy reads): the floor then holds through the autoscaler Flagger copies for the primary.
        replicas = None if canary else count((api.props.get("spec") or {}).get("replicas"))
        if replicas is not None and replicas < PROD_API_REPLICAS:
            problems.append(f"prod: the API runs {replicas} replicas; at least {PROD_API_REPLICAS}")
        for _, container in _containers(pod_spec(api.props) or {}):
            image = container.get("image")
            if isinstance(image, str) and "@sha256:" not in image:
                problems.append(f"prod: the API image '{image}' is not pinned by digest")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        minimum = count((hpa.props.get("spec") or {}).get("minReplicas"))
        if minimum is not None and minimum < PROD_AUTOSCALING_MIN:
            problems.append(f"prod: HorizontalPodAutoscaler/{hpa.name} keeps {minimum} replicas; at least {PROD_AUTOSCALING_MIN}")
    if not any(((pdb.props.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component") == API_COMPONENT
               for pdb in by_kind.get("PodDisruptionBudget", [])):
        problems.append("prod: no PodDisruptionBudget for the API's pods")
    if not canary:
        problems.append("prod: the API is not released through a Canary")
    tls = any(listener.get("protocol") == "HTTPS" and (listener.get("tls") or {}).get("mode") == "Terminate"
              for gateway in by_kind.get("Gateway", []) for listener in (gateway.props.get("spec") or {}).get("listeners", []))
    tls = tls or any((ingress.props.get("spec") or {}).get("tls") for ingress in by_kind.get("Ingress", []))
    shared = any(parent.get("namespace") for route in by_kind.get("HTTPRoute", [])
                 for parent in (route.props.get("spec") or {}).get("parentRefs", []))
    if not tls and not shared:
        problems.append("prod: no TLS listener (Gateway HTTPS with Terminate, or Ingress tls)")
    clusters = by_kind.get("PerconaPGCluster", [])
    offsite = any("s3" in repo for c in clusters
                  for repo in (((c.props.get("spec") or {}).get("backups") or {}).get("pgbackrest") or {}).get("repos", []))
    if not offsite:
        problems.append("prod: no off-site (S3) pgBackRest repository for PostgreSQL's backups")
    for resource in resources:
        if resource.kind in DATA_KINDS and not resource.protect:
            problems.append(f"prod: {resource.kind}/{resource.name} holds data but is not protected")
    return problems


STACK_RULES: dict[str, tuple[str, Callable[[list[Resource]], list[str]]]] = {
    "default-deny-network-policy": ("The namespace denies all traffic but the platform's flows.", default_deny),
    "prod-guardrails": ("prod: API replicas and autoscaling floors, disruption budget, canary, digest, TLS, off-site "
                        "backups, data protected.", prod_guardrails),
}


def check(resources: list[Resource]) -> dict[str, list[str]]:
    """Every rule over a stack's resources: rule name → its violations (the pack's verdict, offline)."""
    objects = [r for r in resources if judged(r.type)]
    found: dict[str, list[str]] = {}
    for name, (_, rule) in RESOURCE_RULES.items():
        found[name] = [problem for r in objects for problem in rule(r.props)]
    for name, (_, stack_rule) in STACK_RULES.items():
        found[name] = stack_rule(objects)
    return found


def judged(resource_type: str) -> bool:
    """Kubernetes objects the program owns; a `...Patch` only amends an object something else created."""
    return resource_type.startswith("kubernetes:") and not resource_type.endswith("Patch") and ":helm.sh/" not in resource_type
