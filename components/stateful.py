"""One persistent single-instance service: ServiceAccount, headless and client Services, StatefulSet, claim size.

Redis, etcd and the object stores share this shape; each component supplies its container.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import pulumi
import pulumi_kubernetes as k8s

from settings import Storage
from components.component import Component
from components.workload import account_node_disk, labels, pod_security_context, selector_labels, volume_claim_template


HEADLESS_LABEL = "real-estate-ai/headless"


@dataclass
class StatefulServiceArgs:
    name: str
    component: str
    namespace: pulumi.Input[str]
    stack: str
    version: str
    port: int
    port_name: str
    container: dict
    storage: Storage
    # Mount path of the persistent volume; the claim is named "data".
    data_path: str
    protect: bool
    extra_volumes: list[dict] = field(default_factory=list)
    termination_grace_seconds: int = 30
    pod_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Further containers in the pod (they may mount "data" too).
    sidecars: list[dict] = field(default_factory=list)
    # Further ports of the Service (a sidecar's), as name → port (the container port of the same name).
    extra_ports: dict[str, int] = field(default_factory=dict)


class StatefulService:
    """Not a component of its own: the resources are children of the component that calls it."""

    def __init__(self, args: StatefulServiceArgs, parent: Component):
        child = pulumi.ResourceOptions(parent=parent)
        meta_labels = labels(args.name, args.stack, args.component, args.version)
        selector = selector_labels(args.name, args.stack)

        self.service_account = k8s.core.v1.ServiceAccount(
            parent.child_name(args.name),
            metadata={"name": args.name, "namespace": args.namespace, "labels": meta_labels},
            # None of these pods talks to the Kubernetes API.
            automount_service_account_token=False,
            opts=child,
        )
        ports = [{"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                 for name, port in {args.port_name: args.port, **args.extra_ports}.items()]
        headless_name = f"{args.name}-headless"
        self.headless_service = k8s.core.v1.Service(
            parent.child_name(headless_name),
            # Marked, so a ServiceMonitor selecting the client Service does not scrape the same pods twice.
            metadata={"name": headless_name, "namespace": args.namespace, "labels": {**meta_labels, HEADLESS_LABEL: "true"}},
            spec={"clusterIP": "None", "selector": selector, "ports": ports, "publishNotReadyAddresses": True},
            opts=child,
        )
        self.service = k8s.core.v1.Service(
            parent.child_name(args.name),
            metadata={"name": args.name, "namespace": args.namespace, "labels": meta_labels},
            spec={"type": "ClusterIP", "selector": selector, "ports": ports},
            opts=child,
        )
        container = {
            **args.container,
            "volumeMounts": [{"name": "data", "mountPath": args.data_path}] + args.container.get("volumeMounts", []),
        }
        self.stateful_set = sts = k8s.apps.v1.StatefulSet(
            parent.child_name(args.name),
            metadata={"name": args.name, "namespace": args.namespace, "labels": meta_labels},
            spec={
                "serviceName": headless_name,
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "updateStrategy": {"type": "RollingUpdate"},
                # Volumes outlive the StatefulSet: data is only ever deleted by a person.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {"labels": meta_labels, "annotations": args.pod_annotations},
                    "spec": account_node_disk({
                        "serviceAccountName": args.name,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": pod_security_context(),
                        "terminationGracePeriodSeconds": args.termination_grace_seconds,
                        "containers": [container, *args.sidecars],
                        "volumes": args.extra_volumes,
                    }),
                },
                # volumeClaimTemplates cannot change on an existing StatefulSet: only labels that never change
                # (no version) go in, and the size is changed on the claims themselves (README: storage changes).
                "volumeClaimTemplates": [
                    volume_claim_template("data", args.storage, selector)
                ],
            },
            opts=pulumi.ResourceOptions(
                parent=parent,
                protect=args.protect,
                depends_on=[self.service_account],
                # volumeClaimTemplates are immutable: a changed size would replace the StatefulSet (and protect
                # would refuse). The size is applied to the claim itself below.
                ignore_changes=["spec.volumeClaimTemplates"],
                # The startup probes allow 600 s; Pulumi waits a little longer than that before it gives up.
                custom_timeouts=pulumi.CustomTimeouts(create="15m", update="15m"),
            ),
        )
        # The configured size reaches the existing volume as a patch of its claim: the StorageClass expands it in
        # place (it must allow expansion; claims never shrink). A new storage class needs a new volume: README.
        self.claim_size = k8s.core.v1.PersistentVolumeClaimPatch(
            parent.child_name(f"{args.name}-data-size"),
            metadata={
                "name": f"data-{args.name}-0",
                "namespace": args.namespace,
                # The StatefulSet controller created the claim and owns its fields; the size is ours to set.
                "annotations": {"pulumi.com/patchForce": "true"},
            },
            spec={"resources": {"requests": {"storage": args.storage.size}}},
            # Deleting a Patch gives its fields back (the provider's Delete relinquishes them by an empty apply,
            # provider/pkg/await/await.go Deletion → ssa.Relinquish); after a resize the size is ours alone and
            # required, so the API server refuses and `pulumi destroy`, a rename or a switch of store would fail
            # (provider/pkg/provider/provider.go Delete names retainOnDelete as the way out). The claim is the
            # StatefulSet's to keep or delete.
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[sts], retain_on_delete=True),
        )
