"""The public entry on the Gateway API (ingress.via: gateway): the stack's Gateway (or a shared one), the API's
HTTPRoute, and while a canary runs, the testers' route to it.

With the canary on, Flagger writes the HTTPRoute named after the Service ('api') itself and moves its weights, so the
program then creates no route of its own by that name (it would overwrite Flagger's, and Flagger ours). With it off,
the program's route is 'api-direct': switching the canary off makes the engine create it while Flagger's route, owned
by the Canary, still exists (it goes when the Canary is deleted, last); both carry the same matches, and the Gateway
API gives a tie to the older route, so users stay on Flagger's until it is gone. The testers'
route has the same paths plus a header (or cookie) match, which the Gateway API ranks above a path-only match, across
routes (HTTPRoute rule precedence: more header matches win).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.component import Component
from components.routes import http_route_matches
from components.workload import labels
from settings.release import CanarySettings
from settings.routing import IngressSettings

NAME = "api"
# The program's own route when no canary runs (components/api.py DIRECT_SERVICE says why it is not NAME).
DIRECT_ROUTE = "api-direct"
GATEWAY_API = "gateway.networking.k8s.io/v1"
HTTP_LISTENER, HTTPS_LISTENER = "http", "https"
# What a tester sends (header or cookie value) to reach the canary.
TESTER_VALUE = "always"



# The edge's scrape job: the Envoy pods Envoy Gateway runs for the Gateway. It labels them with the Gateway's name and
# namespace (v1.9 internal/gatewayapi/translator.go, OwningGatewayNameLabel and OwningGatewayNamespaceLabel; with
# mergeGateways the GatewayClass instead) and serves Envoy's statistics at /stats/prometheus on the container port it
# names "metrics" (19001), on by default.
EDGE_JOB = "envoy"
PROXY_METRICS_PORT, PROXY_METRICS_PATH = "metrics", "/stats/prometheus"


def proxy_pod_labels(settings: IngressSettings, namespace: str) -> dict[str, str]:
    """The labels of the Envoy pods that serve the stack's Gateway (its own in `namespace`, or the shared one)."""
    gateway = settings.gateway
    return {"gateway.envoyproxy.io/owning-gateway-name": gateway.name,
            "gateway.envoyproxy.io/owning-gateway-namespace": namespace if gateway.create else gateway.namespace}


# What edge.rules.yml and its runbook read of everything Envoy serves (every cluster, listener and histogram of a
# Gateway that may be shared): the route clusters' responses and Envoy's own failures.
EDGE_SERIES = ("envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_cx_none_healthy", "envoy_cluster_upstream_rq_timeout",
               "envoy_cluster_upstream_cx_connect_fail", "envoy_cluster_upstream_rq_rx_reset",
               "envoy_cluster_upstream_rq_pending_overflow")


def edge_series_kept(namespace: str) -> dict:
    """A metricRelabeling keeping EDGE_SERIES of the clusters Envoy Gateway names after `namespace`'s routes
    (httproute/<namespace>/<route>/rule/<n>[/backend/<m>])."""
    return {"action": "keep", "sourceLabels": ["__name__", "envoy_cluster_name"],
            "regex": f"({'|'.join(EDGE_SERIES)});httproute/{namespace}/.+"}


def parent_ref(settings: IngressSettings) -> dict:
    """The Gateway listener(s) the API's routes attach to: a created Gateway's HTTPS listener when TLS is on (plain
    HTTP only redirects), else its HTTP one; a shared Gateway's as configured."""
    gateway = settings.gateway
    if not gateway.create:
        ref = {"name": gateway.name, "namespace": gateway.namespace}
        return {**ref, "sectionName": gateway.section_name} if gateway.section_name else ref
    return {"name": gateway.name, "sectionName": HTTPS_LISTENER if settings.tls.enabled else HTTP_LISTENER}


def canary_opt_in_matches(header: str) -> list[dict]:
    """The public paths, for requests carrying `<header>: always` or the cookie `<header>=always`."""
    cookie = {"type": "RegularExpression", "name": "Cookie", "value": f"(^|.*; ?){header}={TESTER_VALUE}(;.*|$)"}
    return (http_route_matches([{"type": "Exact", "name": header, "value": TESTER_VALUE}])
            + http_route_matches([cookie]))


@dataclass
class GatewayRouteArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: IngressSettings
    service_name: pulumi.Input[str]
    service_port: int
    # Set while Flagger runs the API's releases: it owns the HTTPRoute; the testers' route goes to its canary Service.
    canary: Optional[CanarySettings] = None


class GatewayRoute(Component):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: GatewayRouteArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:gateway:GatewayRoute", name, opts)
        self._args = args
        s = args.settings
        if s.gateway.create:
            self._gateway()
        parent = parent_ref(s)
        if args.canary is None:
            self._route(NAME, [{"matches": http_route_matches(),
                                "backendRefs": [{"name": args.service_name, "port": args.service_port}]}], parent,
                        object_name=DIRECT_ROUTE)
        else:
            self._route(f"{NAME}-canary-testers", [{
                "matches": canary_opt_in_matches(args.canary.tester_header),
                # Flagger's canary Service: pods of the new version while a release runs, none between releases.
                "backendRefs": [{"name": pulumi.Output.concat(args.service_name, "-canary"), "port": args.service_port}],
            }], parent)
        self.url = pulumi.Output.from_input(f"{'https' if s.tls.enabled else 'http'}://{s.host}")
        self.register_outputs({"url": self.url})

    def _gateway(self) -> None:
        s, a = self._args.settings, self._args
        listeners = [{"name": HTTP_LISTENER, "protocol": "HTTP", "port": 80, "hostname": s.host,
                      "allowedRoutes": {"namespaces": {"from": "Same"}}}]
        annotations = {}
        if s.tls.enabled:
            # cert-manager's gateway-shim issues the listener's certificate into this Secret (same namespace).
            annotations["cert-manager.io/cluster-issuer"] = s.tls.cluster_issuer
            listeners.append({
                "name": HTTPS_LISTENER, "protocol": "HTTPS", "port": 443, "hostname": s.host,
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": s.tls_secret_name}]},
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            })
        k8s.apiextensions.CustomResource(
            self.child_name(f"gateway-{s.gateway.name}"),
            api_version=GATEWAY_API,
            kind="Gateway",
            metadata={"name": s.gateway.name, "namespace": a.namespace, "labels": labels(s.gateway.name, a.stack, "gateway"),
                      "annotations": annotations},
            spec={"gatewayClassName": s.gateway.class_name, "listeners": listeners},
            opts=pulumi.ResourceOptions(parent=self),
        )
        if s.tls.enabled:
            # Plain HTTP only redirects; cert-manager's HTTP-01 solver route (an exact path) still wins over it.
            self._route(f"{NAME}-https-redirect", [{
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}],
            }], {"name": s.gateway.name, "sectionName": HTTP_LISTENER})

    def _route(self, name: str, rules: list[dict], parent: dict, object_name: Optional[str] = None) -> None:
        """An HTTPRoute; `name` keeps its Pulumi name (and URN) when the object's name differs from it."""
        a = self._args
        object_name = object_name or name
        k8s.apiextensions.CustomResource(
            self.child_name(f"route-{name}"),
            api_version=GATEWAY_API,
            kind="HTTPRoute",
            metadata={"name": object_name, "namespace": a.namespace, "labels": labels(object_name, a.stack, "route")},
            spec={"parentRefs": [parent], "hostnames": [a.settings.host], "rules": rules},
            opts=pulumi.ResourceOptions(parent=self),
        )
