"""How users' traffic reaches the API: a Gateway API HTTPRoute on a Gateway (default), or an Ingress for clusters that
still run an Ingress controller. TLS comes from cert-manager either way."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, model_validator

from settings.values import DnsLabel, Hostname, Settings, label_within


def _not_an_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ValueError(f"{value!r} is an IP address; a route's host is a DNS name (the Gateway API's and Ingress' "
                     f"hostnames refuse addresses)")


# The host users reach the API by: a DNS name (an HTTPRoute's or Ingress' host, the certificate's name).
RouteHost = Annotated[Hostname, AfterValidator(_not_an_address)]


class TlsSettings(Settings):
    enabled: bool = False
    # How cert-manager proves the host: http01 needs its solver pods reachable from the proxy pods
    # (the NetworkPolicies allow it); dns01 needs nothing in the cluster.
    solver: Literal["http01", "dns01"] = "http01"
    cluster_issuer: DnsLabel = "letsencrypt-prod"
    secret_name: Optional[DnsLabel] = None


class GatewaySettings(Settings):
    """The Gateway the API's HTTPRoute attaches to: one this stack creates in its namespace (create: true, of
    `className`), or an existing shared one (create: false, `name` in `namespace`, optionally one listener)."""

    create: bool = True
    # Envoy Gateway's GatewayClass as the cluster add-on installs it (components/cluster_addons.py).
    class_name: DnsLabel = "eg"
    name: DnsLabel = "api"
    # The shared Gateway's namespace (create: false); a created Gateway lives in the stack's namespace.
    namespace: Optional[DnsLabel] = None
    # The shared Gateway's listener to attach to (create: false); unset: every listener that admits the route.
    section_name: Optional[DnsLabel] = None

    @model_validator(mode="after")
    def _shared_or_own(self) -> "GatewaySettings":
        if self.create and (self.namespace or self.section_name):
            raise ValueError("namespace and sectionName name a shared Gateway (create: false); a created one lives in the stack's namespace")
        if not self.create and not self.namespace:
            raise ValueError("a shared Gateway (create: false) needs its namespace")
        return self


# Where the proxies run that forward to the API, by how traffic enters: Envoy Gateway runs a Gateway's Envoy pods in
# its own namespace; the community Ingress controller runs in ingress-nginx.
DEFAULT_PROXY_NAMESPACE = {"gateway": "envoy-gateway-system", "ingress": "ingress-nginx"}


class IngressSettings(Settings):
    """The public entry to the API (only its public paths: components/routes.py)."""

    enabled: bool = True
    # gateway: an HTTPRoute on a Gateway (Gateway API); ingress: a networking.k8s.io Ingress of `className`.
    via: Literal["gateway", "ingress"] = "gateway"
    host: RouteHost
    gateway: GatewaySettings = GatewaySettings()
    # The IngressClass (via: ingress).
    class_name: DnsLabel = "nginx"
    # Namespace of the proxy pods that forward to the API, allowed through its NetworkPolicy.
    # Unset: envoy-gateway-system (via: gateway) or ingress-nginx (via: ingress).
    controller_namespace: Optional[DnsLabel] = None
    tls: TlsSettings = TlsSettings()
    # Wait for the controller to publish an address; off where no controller reports status.
    await_address: bool = False

    @property
    def tls_secret_name(self) -> str:
        """Where cert-manager writes the host's certificate."""
        return self.tls.secret_name or label_within(f"{self.host.replace('.', '-')}-tls")

    @property
    def proxy_namespace(self) -> str:
        return self.controller_namespace or DEFAULT_PROXY_NAMESPACE[self.via]
