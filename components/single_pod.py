"""One small stateless helper pod behind a Service (an exporter, a notification bridge, the canary's load tester): its ServiceAccount (no token),
a one-replica Deployment with the platform's pod security, and a ClusterIP Service on its one named port."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.component import Component
from components.workload import account_node_disk, container_security_context, http_probe, labels, pod_security_context, selector_labels


def config_file_container(name: str, image: str, config_file: str, port: int, mounts: list[dict],
                          ready_path: str = "/-/healthy") -> dict:
    """A small Prometheus-ecosystem server (the blackbox exporter, the DingTalk bridge) that reads one configuration
    file: its image's flags for that file and the listen port, its limits, and probes on its own endpoints."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Always",
        "args": [f"--config.file={config_file}", f"--web.listen-address=:{port}"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
        "securityContext": container_security_context(),
        "livenessProbe": http_probe("/-/healthy", "http", 5, 20),
        "readinessProbe": http_probe(ready_path, "http", 2, 10),
        "volumeMounts": mounts,
    }


def single_pod_service(owner: Component, name: str, namespace: pulumi.Input[str], stack: str, container: dict,
                       volumes: list[dict], port: int, template_annotations: Optional[dict] = None,
                       component: str = "monitoring") -> None:
    """`container` names its one port; the Service exposes it under the same name and number."""
    (port_spec,) = container["ports"]
    child = pulumi.ResourceOptions(parent=owner)
    meta = {"namespace": namespace, "labels": labels(name, stack, component)}
    k8s.core.v1.ServiceAccount(owner.child_name(name), metadata={"name": name, **meta},
                               automount_service_account_token=False, opts=child)
    pod_spec = account_node_disk({
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    })
    selector = selector_labels(name, stack)
    template_metadata: dict = {"labels": meta["labels"]}
    if template_annotations:
        template_metadata["annotations"] = template_annotations
    k8s.apps.v1.Deployment(
        owner.child_name(name),
        metadata={"name": name, **meta},
        spec={"replicas": 1, "selector": {"matchLabels": selector}, "template": {"metadata": template_metadata, "spec": pod_spec}},
        opts=child,
    )
    k8s.core.v1.Service(
        owner.child_name(f"{name}-service"),
        metadata={"name": name, **meta},
        spec={"selector": selector,
              "ports": [{"name": port_spec["name"], "port": port, "targetPort": port_spec["name"], "protocol": "TCP"}]},
        opts=child,
    )
