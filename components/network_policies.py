"""NetworkPolicies: deny everything in the namespace, then allow exactly the platform's traffic.

The allowed traffic is data (`Flow`), one per arrow of the architecture, so the policy set
and its tests read the same list.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional, Union

import pulumi
import pulumi_kubernetes as k8s

from components.workload import labels, selector_labels
from components.component import Component


@dataclass(frozen=True)
class Pods:
    """Pods chosen by their labels: the operator's pods carry its labels, not ours."""

    name: str
    match_labels: tuple[tuple[str, str], ...]

    @classmethod
    def labelled(cls, name: str, match: dict[str, str]) -> "Pods":
        return cls(name, tuple(sorted(match.items())))


# A peer is our own workload (its app.kubernetes.io/name) or a labelled group of pods.
Peer = Union[str, Pods]


@dataclass(frozen=True)
class Flow:
    """Pods of `source` may open TCP connections to `port` on pods of `target`."""

    source: Peer
    target: Peer
    port: int


@dataclass(frozen=True)
class ExternalFlow:
    """Pods of `source` may open TCP connections to `port` outside the cluster: to `cidrs` where they are known,
    else to any address outside the private ranges (off-site storage)."""

    source: Peer
    port: int
    cidrs: tuple[str, ...] = ()
    # Names the policy: what is out there (the off-site backups, an external object store).
    purpose: str = "offsite"


@dataclass(frozen=True)
class MetricsPort:
    """A port the monitoring namespace's Prometheus scrapes; with `prometheus_only`, only its Prometheus pods (the
    blackbox exporter fetches any URL it is asked with the API key: no other pod there may ask it)."""

    target: Peer
    port: int
    prometheus_only: bool = False


# The labels prometheus-operator gives every Prometheus server pod.
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class NamespaceFlow:
    """Pods in another namespace (a controller's) open TCP connections to `port` on pods of `target`."""

    namespace: str
    target: Peer
    port: int


@dataclass(frozen=True)
class NamespaceEgress:
    """Pods of `source` may open TCP connections to any port of pods in `namespace`: a controller's proxies, whose
    container ports are theirs to choose (Envoy Gateway listens on 10443 for a Gateway's 443)."""

    source: Peer
    namespace: str


@dataclass(frozen=True)
class ApiServerFlow:
    """Pods of `source` talk to the Kubernetes API (Patroni's consensus store, the operator's backup jobs)."""

    source: Peer


# The API server's ports on common distributions (443 behind the kubernetes Service, 6443 on the nodes).
API_SERVER_PORTS = (443, 6443)


def peer_name(peer: Peer) -> str:
    return peer if isinstance(peer, str) else peer.name


def peer_selector(peer: Peer, stack: str) -> dict[str, str]:
    return selector_labels(peer, stack) if isinstance(peer, str) else dict(peer.match_labels)


# Addresses that are never "outside": pod, service and node networks of common clusters.
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]


def _namespace(name: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _ports_by_pair(flows: list[Flow]) -> dict[tuple[Peer, Peer], list[int]]:
    pairs: dict[tuple[str, str], list[int]] = {}
    for flow in flows:
        ports = pairs.setdefault((flow.source, flow.target), [])
        if flow.port not in ports:
            ports.append(flow.port)
    return pairs


@dataclass
class NetworkPoliciesArgs:
    namespace: pulumi.Input[str]
    stack: str
    flows: list[Flow]
    # The pods the ingress controller's (or the Gateway's) proxies may reach, and on which port.
    ingress_target: Peer
    ingress_port: int
    ingress_controller_namespace: str
    external_flows: list[ExternalFlow] = field(default_factory=list)
    api_server_flows: list[ApiServerFlow] = field(default_factory=list)
    # Where the API server answers.
    api_server_cidrs: list[str] = field(default_factory=list)
    monitoring_namespace: Optional[str] = None
    metrics_ports: list[MetricsPort] = field(default_factory=list)
    # cert-manager's HTTP-01 solver pods answer the ACME server through the ingress controller.
    acme_http01: bool = False
    # Sources allowed straight to the ingress target (a NodePort or LoadBalancer Service); empty for none.
    public_sources: list[str] = field(default_factory=list)
    # NodeLocal DNSCache's address, where the cluster runs it.
    node_local_dns: Optional[str] = None
    namespace_egress: list[NamespaceEgress] = field(default_factory=list)
    # Controllers elsewhere that call into the namespace (Flagger calling its load tester).
    namespace_flows: list[NamespaceFlow] = field(default_factory=list)


class NetworkPolicies(Component):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:network_policies:NetworkPolicies", name, opts)
        self._args = args
        self._policy(
            "default-deny",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        )
        self._policy(
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                    *(
                        [{"to": [{"ipBlock": {"cidr": str(ipaddress.ip_network(args.node_local_dns))}}],
                          "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
                        if args.node_local_dns else []
                    ),
                ],
            },
        )
        self._ingress(
            f"allow-ingress-controller-to-{peer_name(args.ingress_target)}", peer_selector(args.ingress_target, args.stack),
            [_namespace(args.ingress_controller_namespace)], [args.ingress_port],
        )
        # Each pair of pods needs both ends opened: egress from the source and ingress to the target,
        # one policy per end listing every port of the pair (a policy name can exist only once).
        for (source, target), ports in _ports_by_pair(args.flows).items():
            source_pods, target_pods = peer_selector(source, args.stack), peer_selector(target, args.stack)
            self._ingress(f"allow-{peer_name(source)}-to-{peer_name(target)}", target_pods,
                          [{"podSelector": {"matchLabels": source_pods}}], ports)
            self._egress(f"allow-{peer_name(source)}-egress-to-{peer_name(target)}", source_pods,
                         [{"podSelector": {"matchLabels": target_pods}}], ports)
        for external in args.external_flows:
            self._egress(
                f"allow-{peer_name(external.source)}-egress-{external.purpose}", peer_selector(external.source, args.stack),
                [{"ipBlock": {"cidr": cidr}} for cidr in external.cidrs]
                or [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}],
                [external.port],
            )
        for egress in args.namespace_egress:
            self._policy(f"allow-{peer_name(egress.source)}-egress-to-{egress.namespace}", {
                "podSelector": {"matchLabels": peer_selector(egress.source, args.stack)},
                "policyTypes": ["Egress"],
                "egress": [{"to": [_namespace(egress.namespace)]}],
            })
        self._edge_policies()
        for flow in args.api_server_flows:
            self._egress(
                f"allow-{peer_name(flow.source)}-egress-api-server", peer_selector(flow.source, args.stack),
                [{"ipBlock": {"cidr": cidr}} for cidr in args.api_server_cidrs], list(API_SERVER_PORTS),
            )
        self.register_outputs({})

    def _edge_policies(self) -> None:
        """Traffic from outside the namespace: scrapes, ACME challenges, a public Service."""
        a = self._args
        ports_by_target: dict[tuple[Peer, bool], list[int]] = {}
        for metrics in a.metrics_ports:
            ports_by_target.setdefault((metrics.target, metrics.prometheus_only), []).append(metrics.port)
        for (target, prometheus_only), ports in ports_by_target.items() if a.monitoring_namespace else ():
            peer = _namespace(a.monitoring_namespace)
            if prometheus_only:
                peer = {**peer, "podSelector": {"matchLabels": PROMETHEUS_PODS}}
            self._ingress(f"allow-monitoring-to-{peer_name(target)}", peer_selector(target, a.stack), [peer], ports)
        for flow in a.namespace_flows:
            self._ingress(f"allow-{flow.namespace}-to-{peer_name(flow.target)}", peer_selector(flow.target, a.stack),
                          [_namespace(flow.namespace)], [flow.port])
        if a.acme_http01:
            # cert-manager labels its HTTP-01 solver pods so, and they listen on 8089.
            self._ingress("allow-ingress-controller-to-acme-solver", {"acme.cert-manager.io/http01-solver": "true"},
                          [_namespace(a.ingress_controller_namespace)], [8089])
        if a.public_sources:
            self._ingress(f"allow-public-to-{peer_name(a.ingress_target)}", peer_selector(a.ingress_target, a.stack),
                          [{"ipBlock": {"cidr": cidr}} for cidr in a.public_sources], [a.ingress_port])

    def _ingress(self, name: str, pods: dict[str, str], peers: list[dict], ports: list[int]) -> None:
        """One rule: `pods` accept TCP on `ports` from `peers`."""
        self._policy(name, {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port} for port in ports]}],
        })

    def _egress(self, name: str, pods: dict[str, str], peers: list[dict], ports: list[int]) -> None:
        """One rule: `pods` may open TCP to `peers` on `ports`."""
        self._policy(name, {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Egress"],
            "egress": [{"to": peers, "ports": [{"protocol": "TCP", "port": port} for port in ports]}],
        })

    def _policy(self, name: str, spec: dict) -> None:
        k8s.networking.v1.NetworkPolicy(
            self.child_name(name),
            metadata={
                "name": name,
                "namespace": self._args.namespace,
                "labels": labels("network-policy", self._args.stack, "security"),
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
