"""The public entry for clusters that run an Ingress controller (ingress.via: ingress): an Ingress for the API, with
TLS from cert-manager when enabled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import IngressSettings
from components.workload import labels
from components.component import Component
from components.routes import ingress_paths

NAME = "api"



@dataclass
class IngressArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: IngressSettings
    service_name: pulumi.Input[str]
    service_port: int


class Ingress(Component):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: IngressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:ingress:Ingress", name, opts)
        s = args.settings
        annotations: dict[str, str] = {}
        if not s.await_address:
            annotations["pulumi.com/skipAwait"] = "true"
        spec: dict = {
            "ingressClassName": s.class_name,
            "rules": [
                {
                    "host": s.host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": path_type,
                                "backend": {"service": {"name": args.service_name, "port": {"number": args.service_port}}},
                            }
                            for path, path_type in ingress_paths()
                        ]
                    },
                }
            ],
        }
        if s.tls.enabled:
            annotations["cert-manager.io/cluster-issuer"] = s.tls.cluster_issuer
            spec["tls"] = [{"hosts": [s.host], "secretName": s.tls_secret_name}]
        k8s.networking.v1.Ingress(
            self.child_name(NAME),
            metadata={
                "name": NAME,
                "namespace": args.namespace,
                "labels": labels(NAME, args.stack, "ingress"),
                "annotations": annotations,
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        scheme = "https" if s.tls.enabled else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://{s.host}")
        self.register_outputs({"url": self.url})
