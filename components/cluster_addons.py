"""Controllers a cluster runs once for every stack on it, from pinned Helm charts, for clusters a stack owns (dev on
kind): Envoy Gateway (the Gateway API), cert-manager (TLS on the Gateway) and Flagger (canary releases).

Evidence for the pins (upstream sources read at the tags):
- Envoy Gateway v1.9.0 (envoyproxy/gateway, release 2026-08-15): the release workflow pushes the chart to
  oci://docker.io/envoyproxy/gateway-helm; it installs the Gateway API v1.6.1 CRDs (the versions the tests validate
  against) but no GatewayClass, so one is created here; each Gateway's Envoy pods run in the controller's namespace.
- cert-manager v1.21.1 (cert-manager/cert-manager, chart 'cert-manager' at https://charts.jetstack.io): `crds.enabled`
  installs its CRDs; Gateway API support needs `config.gatewayAPI.enabled` (and the Gateway API CRDs first).
- Flagger 1.44.0 (fluxcd/flagger charts/flagger, https://flagger.app): image ghcr.io/fluxcd/flagger:1.44.0, USER
  nobody, read-only root in the chart; `meshProvider: gatewayapi:v1` selects its Gateway API router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.component import Component
from components.workload import labels
from settings.release import ClusterAddonsSettings

ENVOY_GATEWAY_CHART = "oci://docker.io/envoyproxy/gateway-helm"
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
CERT_MANAGER_REPOSITORY = "https://charts.jetstack.io"
FLAGGER_REPOSITORY = "https://flagger.app"
INSTALL_TIMEOUT_SECONDS = 600


def flagger_values(prometheus_url: str, monitor_labels: Optional[dict[str, str]]) -> dict:
    return {
        "meshProvider": "gatewayapi:v1",
        "metricsServer": prometheus_url,
        # Its flagger_canary_status feeds CanaryFailed and CanaryStuck (monitoring/rules/release.rules.yml), with the
        # labels the cluster's Prometheus selects PodMonitors by.
        "podMonitor": {"enabled": True, "additionalLabels": monitor_labels} if monitor_labels is not None else {"enabled": False},
    }


def cert_manager_values(monitor_labels: Optional[dict[str, str]]) -> dict:
    values: dict = {
        "crds": {"enabled": True},
        "config": {"apiVersion": "controller.config.cert-manager.io/v1alpha1", "kind": "ControllerConfiguration",
                   "gatewayAPI": {"enabled": True}},
    }
    if monitor_labels is not None:
        # Its certificate expiry feeds CertificateExpiringSoon (monitoring/rules/system.rules.yml).
        values["prometheus"] = {"enabled": True, "servicemonitor": {"enabled": True, "labels": monitor_labels}}
    return values


@dataclass
class ClusterAddonsArgs:
    settings: ClusterAddonsSettings
    stack: str
    # The GatewayClass the stack's Gateway names (ingress.gateway.className).
    gateway_class: str
    # The Prometheus Flagger's analysis queries.
    prometheus_url: str
    # The labels the cluster's Prometheus selects monitors by; None without monitoring (no monitors at all).
    monitor_labels: Optional[dict[str, str]]


class ClusterAddons(Component):
    """`ready` lists what the stack's own objects of these kinds (Gateway, HTTPRoute, Canary) must wait for."""

    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:cluster:ClusterAddons", name, opts)
        s = args.settings
        self.ready = []
        gateway_ready: list[pulumi.Resource] = []
        if s.gateway_controller.install:
            release = self._release("envoy-gateway", ENVOY_GATEWAY_CHART, None, s.gateway_controller.chart_version,
                                    s.gateway_controller.namespace, {})
            gateway_class = k8s.apiextensions.CustomResource(
                self.child_name("gateway-class"),
                api_version="gateway.networking.k8s.io/v1",
                kind="GatewayClass",
                metadata={"name": args.gateway_class, "labels": labels(args.gateway_class, args.stack, "gateway")},
                spec={"controllerName": ENVOY_GATEWAY_CONTROLLER},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
            )
            gateway_ready = [release, gateway_class]
            self.ready += gateway_ready
        if s.cert_manager.install:
            # Its Gateway API support needs the Gateway API CRDs at start.
            self.ready.append(self._release("cert-manager", "cert-manager", CERT_MANAGER_REPOSITORY, s.cert_manager.chart_version,
                                            s.cert_manager.namespace, cert_manager_values(args.monitor_labels), gateway_ready))
        if s.flagger.install:
            self.ready.append(self._release("flagger", "flagger", FLAGGER_REPOSITORY, s.flagger.chart_version, s.flagger.namespace,
                                            flagger_values(args.prometheus_url, args.monitor_labels), gateway_ready))
        self.register_outputs({})

    def _release(self, name: str, chart: str, repository: Optional[str], version: str, namespace: str, values: dict,
                 after: Optional[list[pulumi.Resource]] = None) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            self.child_name(name),
            name=name,
            chart=chart,
            version=version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository) if repository else None,
            namespace=namespace,
            create_namespace=True,
            values=values,
            timeout=INSTALL_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=after or []),
        )
