"""Shared building blocks for the platform's pods: labels, hardening, probes.

Every workload runs as the same unprivileged UID with the restricted Pod Security profile,
so one definition here keeps them consistent and makes the hardening testable in one place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import pulumi

from settings import Storage, byte_count

PART_OF = "real-estate-ai"
# A UID above 10000 cannot collide with a host user; every image used here runs as any UID.
RUN_AS_UID = 10001


@dataclass(frozen=True)
class SecretKeyRef:
    """A key inside a Kubernetes Secret, handed from the secrets component to its consumers."""

    # An Output of the Secret's name, so consumers are ordered after the Secret exists.
    secret_name: pulumi.Input[str]
    key: str

    def env(self, name: str) -> dict:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": self.key}}}

    def volume(self, volume_name: str, path: Optional[str] = None) -> dict:
        """A volume holding just this key (as `path`, default the key), readable by the pod's group only."""
        return secret_volume(volume_name, self.secret_name, {self.key: path or self.key})


def secret_volume(volume_name: str, secret_name: pulumi.Input[str], items: dict[str, str]) -> dict:
    """Mount selected keys of a Secret as files; fsGroup makes them readable by the non-root user."""
    return {
        "name": volume_name,
        "secret": {
            "secretName": secret_name,
            "defaultMode": 0o440,
            "items": [{"key": key, "path": path} for key, path in items.items()],
        },
    }


def selector_labels(name: str, stack: str) -> dict[str, str]:
    """Immutable selector: never include the version, or a release would orphan old pods."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": stack}


def labels(name: str, stack: str, component: str, version: Optional[str] = None) -> dict[str, str]:
    result = {
        **selector_labels(name, stack),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def pod_security_context(uid: int = RUN_AS_UID) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        # Only chown a volume on first mount, not on every restart of a large data directory.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int = RUN_AS_UID) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(path: str, port: int | str, initial_delay: int, period: int, timeout: int = 3, failures: int = 3) -> dict:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def exec_probe(command: list[str], initial_delay: int, period: int, timeout: int = 5, failures: int = 3) -> dict:
    return {
        "exec": {"command": command},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def startup_probe(probe: dict, budget_seconds: int) -> dict:
    """A startup probe with the same check, allowing `budget_seconds` before liveness takes over."""
    period = 10
    return {**probe, "initialDelaySeconds": 0, "periodSeconds": period, "failureThreshold": budget_seconds // period}


def empty_dir(name: str, size_limit: str = "64Mi", medium: Optional[str] = None) -> dict:
    """A scratch volume for the paths a read-only root filesystem still needs to write."""
    spec: dict = {"sizeLimit": size_limit}
    if medium:
        spec["medium"] = medium
    return {"name": name, "emptyDir": spec}


def claim_spec(storage: Storage) -> dict:
    """A single-writer volume of the configured size; no storage class means the cluster's default."""
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    return spec


def volume_claim_template(name: str, storage: Storage, labels_: dict) -> dict:
    return {"metadata": {"name": name, "labels": labels_}, "spec": claim_spec(storage)}


def service_dns(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def pull_policy(built_locally: bool) -> str:
    """A local build without a registry (kind) exists only on the node; anything from a registry is re-checked."""
    return "IfNotPresent" if built_locally else "Always"


def image_version(image: str) -> str:
    """The tag of a pinned image, for the app.kubernetes.io/version label (a valid label value)."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "digest"
    return tag[:63].strip("-_.") or "unknown"


def byte_count_to_redis(quantity: str) -> str:
    """Redis reads '384mb' as MiB-based; give it plain bytes so there is no unit ambiguity."""
    return str(byte_count(quantity))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# The container's own writable layer and its logs, on top of the scratch volumes it mounts.
_LAYER_AND_LOGS = 64 * 2**20
# Room above the request before the kubelet evicts the pod.
_HEADROOM = 256 * 2**20


def _mebibytes(count: int) -> str:
    return f"{-(-count // 2**20)}Mi"


def account_node_disk(pod_spec: dict) -> dict:
    """Request the node disk a pod writes (its emptyDir scratch volumes, its layer and logs), so the scheduler
    places it where that room exists and the kubelet's eviction has a budget to compare against."""
    scratch = {
        v["name"]: byte_count(v["emptyDir"].get("sizeLimit", "0"))
        for v in pod_spec.get("volumes", [])
        if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"
    }
    for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
        written = _LAYER_AND_LOGS + sum(scratch.get(m["name"], 0) for m in container.get("volumeMounts", []))
        resources = container.setdefault("resources", {})
        resources.setdefault("requests", {})["ephemeral-storage"] = _mebibytes(written)
        resources.setdefault("limits", {})["ephemeral-storage"] = _mebibytes(written + _HEADROOM)
    return pod_spec
