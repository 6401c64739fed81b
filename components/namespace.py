"""The platform's namespace, labelled for Pod Security admission."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from settings import NamespaceSettings
from components.workload import PART_OF
from components.component import Component

# Pod Security admission version the labels pin; a newer cluster keeps evaluating this level's rules.
POD_SECURITY_VERSION = "v1.35"


@dataclass
class NamespaceArgs:
    settings: NamespaceSettings
    environment: str
    protect: bool


class Namespace(Component):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("real-estate-ai:namespace:Namespace", name, opts)
        level = args.settings.pod_security
        namespace = k8s.core.v1.Namespace(
            self.child_name(name),
            metadata={
                "name": args.settings.name,
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    "app.kubernetes.io/managed-by": "pulumi",
                    "real-estate-ai/environment": args.environment,
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/enforce-version": POD_SECURITY_VERSION,
                    # Warn and audit at the strictest level everywhere, so dev shows what prod would refuse.
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/warn-version": POD_SECURITY_VERSION,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/audit-version": POD_SECURITY_VERSION,
                },
            },
            # Deleting a namespace deletes every volume in it: protected, and kept if removed from the program.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
        )
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})
