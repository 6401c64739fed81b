"""NetworkPolicy semantics, evaluated over the rendered policies: exactly the platform's flows are open."""

import dataclasses

import pytest

from components import postgres as pg
from components.network_policies import (
    PRIVATE_RANGES,
    ApiServerFlow,
    ExternalFlow,
    Flow,
    MetricsPort,
    NamespaceFlow,
    NetworkPolicies,
    NetworkPoliciesArgs,
    Pods,
    peer_name,
)
from components.platform import MILVUS_STORE_USERS, OFFSITE_WRITERS, flows
from tests.harness import pod_labels, render_with, run_component

NAMESPACE = "real-estate"


def _matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer, labels, namespace_labels, same_namespace):
    """namespace_labels None stands for a public address outside the cluster."""
    if "ipBlock" in peer:
        return namespace_labels is None and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    if namespace_labels is None:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif not same_namespace:
        return False
    return _matches(peer.get("podSelector", {}), labels)


def _port_matches(rule, port, protocol):
    ports = rule.get("ports")
    return not ports or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def allowed(policies, source, target, port, protocol="TCP"):
    """Kubernetes semantics: a connection needs egress allowed at the source and ingress at the target.

    `source`/`target` are (pod labels, namespace labels, managed) where managed says the pod lives in
    the platform namespace (so its policies apply)."""
    src_labels, src_ns, src_managed = source
    dst_labels, dst_ns, dst_managed = target
    same_ns = src_ns == dst_ns

    def permitted(direction, pod_labels_, peer_labels, peer_ns):
        selecting = [p for p in policies if direction in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], pod_labels_)]
        if not selecting:
            return True
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return any(
            _port_matches(rule, port, protocol)
            and any(_peer_matches(peer, peer_labels, peer_ns, same_ns) for peer in rule.get(peers_key, []))
            for policy in selecting
            for rule in policy["spec"].get(key, [])
        )

    egress_ok = permitted("Egress", src_labels, dst_labels, dst_ns) if src_managed else True
    ingress_ok = permitted("Ingress", dst_labels, src_labels, src_ns) if dst_managed else True
    return egress_ok and ingress_ok


@pytest.fixture(scope="module")
def prod(rendered_stacks):
    rendered = rendered_stacks["prod"]
    policies = [o for o in rendered.objects if o["kind"] == "NetworkPolicy"]
    pods = {
        labels["app.kubernetes.io/name"]: labels
        for labels in (pod_labels(o) for o in rendered.objects if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob"))
    }
    # Flagger's primary: the API pod template with app.kubernetes.io/name renamed (pkg/canary makePrimaryLabels).
    primary = {**pods["api"], "app.kubernetes.io/name": "api-primary"}
    return policies, {**pods, **OPERATOR_PODS, "api-primary": primary}


# The labels the Percona operator gives its pods (internal/naming/labels.go, v3.0.0), not only the ones we select on.
_LABEL = pg.LABEL
OPERATOR_PODS = {
    "postgres": {**pg.CLUSTER_SELECTOR, f"{_LABEL}/instance-set": "instance1", f"{_LABEL}/instance": "postgres-instance1-abcd",
                 f"{_LABEL}/data": "postgres", f"{_LABEL}/role": "primary"},
    "pgbouncer": {**pg.CLUSTER_SELECTOR, f"{_LABEL}/role": "pgbouncer"},
    "pgbackrest-repo-host": {**pg.CLUSTER_SELECTOR, f"{_LABEL}/pgbackrest": "", f"{_LABEL}/pgbackrest-dedicated": "",
                             f"{_LABEL}/data": "pgbackrest"},
    "pgbackrest": {**pg.CLUSTER_SELECTOR, f"{_LABEL}/pgbackrest": "", f"{_LABEL}/pgbackrest-repo": "repo1",
                   f"{_LABEL}/pgbackrest-backup": "scheduled", f"{_LABEL}/pgbackrest-cronjob": "full"},
}


def _pod(pods, name):
    return (pods[name], {"kubernetes.io/metadata.name": NAMESPACE}, True)


def test_default_deny_selects_every_pod(prod):
    policies, _ = prod
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _prod_flows():
    from tests.harness import decoded_config
    from settings import PlatformConfig

    config = {k.split(":", 1)[1]: v for k, v in decoded_config("prod").items()}
    return flows(PlatformConfig.model_validate(config))


@pytest.mark.parametrize("flow", _prod_flows(), ids=lambda f: f"{peer_name(f.source)}->{peer_name(f.target)}:{f.port}")
def test_platform_flows_are_open(prod, flow):
    policies, pods = prod
    # The API's flows hold for Flagger's primary pods as for the Deployment's own.
    sources = ["api", "api-primary"] if peer_name(flow.source) == "api" else [peer_name(flow.source)]
    targets = ["api", "api-primary"] if peer_name(flow.target) == "api" else [peer_name(flow.target)]
    for source in sources:
        for target in targets:
            assert allowed(policies, _pod(pods, source), _pod(pods, target), flow.port), (source, target)


def test_flagger_reaches_only_its_load_tester(prod):
    policies, pods = prod
    flagger = ({"app.kubernetes.io/name": "flagger"}, {"kubernetes.io/metadata.name": "flagger-system"}, False)
    assert allowed(policies, flagger, _pod(pods, "flagger-loadtester"), 8080)
    assert not allowed(policies, flagger, _pod(pods, "api"), 8000)
    assert not allowed(policies, _pod(pods, "flagger-loadtester"), _pod(pods, "postgres"), 5432)


DENIED = [
    ("api", "milvus-etcd", 2379),
    ("milvus", "postgres", 5432),
    ("postgres", "api", 8000),
    ("redis", "postgres", 5432),
    ("api", "pgbouncer", 6379),
    ("postgres", "redis", 6379),
    ("api", "postgres", 8432),
    # prod goes through PgBouncer: the API never reaches an instance directly.
    ("api", "postgres", 5432),
    ("api", "pgbackrest-repo-host", 8432),
    ("redis-backup", "postgres", 5432),
    ("pgbackrest", "redis", 6379),
    ("pg-restore-drill", "postgres", 8432),
    ("pg-verify", "pgbackrest-repo-host", 8432),
    ("pgbouncer", "pgbackrest-repo-host", 8432),
    ("api", "backup-s3", 8333),
    ("milvus-backup", "postgres", 5432),
    ("pgbouncer", "postgres", 8008),
]


@pytest.mark.parametrize("source,target,port", DENIED)
def test_everything_else_inside_the_namespace_is_denied(prod, source, target, port):
    policies, pods = prod
    assert not allowed(policies, _pod(pods, source), _pod(pods, target), port)


# Envoy Gateway runs each Gateway's Envoy pods in its own namespace (these labels: internal/infrastructure).
ENVOY = ({"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy"},
         {"kubernetes.io/metadata.name": "envoy-gateway-system"}, False)


def test_gateway_proxies_reach_only_the_api(prod):
    policies, pods = prod
    controller = ENVOY
    other = ({"app": "anything"}, {"kubernetes.io/metadata.name": "default"}, False)
    assert allowed(policies, controller, _pod(pods, "api"), 8000)
    assert allowed(policies, controller, _pod(pods, "api-primary"), 8000)
    assert not allowed(policies, controller, _pod(pods, "postgres"), 5432)
    assert not allowed(policies, other, _pod(pods, "api"), 8000)


def test_every_pod_may_resolve_names_and_nothing_else_outside(prod):
    policies, pods = prod
    dns = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"}, False)
    internet = ({}, {"kubernetes.io/metadata.name": "elsewhere"}, False)
    for name in pods:
        assert allowed(policies, _pod(pods, name), dns, 53, "UDP"), name
        assert not allowed(policies, _pod(pods, name), internet, 443), name


def test_only_the_backup_writers_and_the_dingtalk_bridge_reach_public_addresses(prod):
    policies, pods = prod
    offsite = ({}, None, False)  # a public address outside the cluster
    writers = {peer_name(source) for source in OFFSITE_WRITERS}
    # The repository host carries the operator's pgbackrest label too: it writes backups to repo2.
    assert writers == {"postgres", "pgbackrest", "pg-restore-drill", "pg-verify"}
    writers.add("pgbackrest-repo-host")
    # prod keeps Milvus' data in an external S3 service: Milvus and its backup jobs reach it on 443.
    writers |= set(MILVUS_STORE_USERS)
    # prod runs the DingTalk bridge: it posts to DingTalk's API, and Alertmanager (the monitoring namespace) to it.
    writers.add("dingtalk-bridge")
    # prod probes its public URL from outside the pods (its load balancer's address may be outside the cluster).
    writers.add("blackbox")
    for name in pods:
        assert allowed(policies, _pod(pods, name), offsite, 443) is (name in writers), name


def test_only_patroni_and_the_backup_jobs_reach_the_api_server(prod):
    policies, pods = prod
    private_api_server = {"ipBlock": {"cidr": "10.0.0.0/8"}}
    users = [p for p in policies if p["metadata"]["name"].endswith("-egress-api-server")]
    assert sorted(p["metadata"]["name"] for p in users) == ["allow-pgbackrest-egress-api-server", "allow-postgres-egress-api-server"]
    for policy in users:
        (rule,) = policy["spec"]["egress"]
        assert private_api_server in rule["to"] and {"protocol": "TCP", "port": 6443} in rule["ports"]
        assert all(peer["ipBlock"]["cidr"] != "0.0.0.0/0" for peer in rule["to"])


def test_flows_between_the_same_pods_share_one_policy_per_end():
    flows = [Flow("a", "b", 80), Flow("a", "b", 9091), Flow("a", "c", 80)]
    rendered, _ = run_component(
        lambda: NetworkPolicies(
            "np", NetworkPoliciesArgs("estate", "test", flows, ingress_target="a", ingress_port=80, ingress_controller_namespace="edge"),
        )
    )
    for name, direction in (("allow-a-to-b", "ingress"), ("allow-a-egress-to-b", "egress")):
        rule = rendered.find("NetworkPolicy", name)["spec"][direction][0]
        assert rule["ports"] == [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 9091}]
    assert rendered.find("NetworkPolicy", "allow-a-to-c")["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 80}]


def test_component_renders_both_ends_of_each_flow():
    flows = [Flow("a", "b", 1234)]
    rendered, _ = run_component(
        lambda: NetworkPolicies(
            "np",
            NetworkPoliciesArgs("estate", "test", flows, ingress_target="a", ingress_port=80, ingress_controller_namespace="edge"),
        )
    )
    names = sorted(o["metadata"]["name"] for o in rendered.objects)
    assert names == sorted(["default-deny", "allow-dns", "allow-ingress-controller-to-a", "allow-a-to-b", "allow-a-egress-to-b"])
    edge = rendered.find("NetworkPolicy", "allow-ingress-controller-to-a")["spec"]["ingress"][0]
    assert edge["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "edge"}
    assert edge["ports"] == [{"protocol": "TCP", "port": 80}]


def _render_with(changes, stack="prod"):
    rendered = render_with(stack, changes)
    return [o for o in rendered.objects if o["kind"] == "NetworkPolicy"], rendered


def test_monitoring_scrapes_exactly_the_metrics_ports(prod):
    policies, pods = prod
    prometheus = ({"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"}, False)
    assert allowed(policies, prometheus, _pod(pods, "api"), 8000)
    assert allowed(policies, prometheus, _pod(pods, "milvus"), 9091)
    assert not allowed(policies, prometheus, _pod(pods, "milvus"), 19530)
    assert not allowed(policies, prometheus, _pod(pods, "redis"), 6379)
    elsewhere = ({"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "default"}, False)
    assert not allowed(policies, elsewhere, _pod(pods, "api"), 8000)


def test_the_probes_reach_the_gateways_proxies_on_any_port_and_prometheus_reaches_them(prod):
    policies, pods = prod
    # Envoy Gateway listens on 10443 for a Gateway's 443: in the cluster the load balancer's address leads there.
    envoy = ({"app.kubernetes.io/name": "envoy"}, {"kubernetes.io/metadata.name": "envoy-gateway-system"}, False)
    assert allowed(policies, _pod(pods, "blackbox"), envoy, 10443)
    assert not allowed(policies, _pod(pods, "api"), envoy, 10443)
    assert not allowed(policies, _pod(pods, "blackbox"), _pod(pods, "api"), 8000)
    prometheus = ({"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"}, False)
    assert allowed(policies, prometheus, _pod(pods, "blackbox"), 9115)
    # It fetches any URL it is asked for with the API key: no other pod of the monitoring namespace may ask it.
    grafana = ({"app.kubernetes.io/name": "grafana"}, {"kubernetes.io/metadata.name": "monitoring"}, False)
    assert not allowed(policies, grafana, _pod(pods, "blackbox"), 9115)
    assert allowed(policies, grafana, _pod(pods, "api"), 8000) is allowed(policies, prometheus, _pod(pods, "api"), 8000)
    # Each PostgreSQL member's Patroni API, and not its database port.
    member = ({**pg.INSTANCE_PODS}, {"kubernetes.io/metadata.name": NAMESPACE}, True)
    assert allowed(policies, prometheus, member, pg.PATRONI_PORT)
    assert not allowed(policies, prometheus, member, pg.PORT)


def test_the_gateway_proxies_reach_cert_managers_http01_solver_in_prod(prod):
    policies, _ = prod
    solver = ({"acme.cert-manager.io/http01-solver": "true"}, {"kubernetes.io/metadata.name": NAMESPACE}, True)
    controller = ENVOY
    assert allowed(policies, controller, solver, 8089)
    dns01, _ = _render_with({"ingress.tls.solver": "dns01"})
    assert not allowed(dns01, controller, solver, 8089)


def test_a_load_balancer_service_is_reachable_from_its_source_ranges_only():
    # test without its canary: under one, Flagger generates the Services (ClusterIP) and settings refuse a LoadBalancer.
    policies, rendered = _render_with({"api.serviceType": "LoadBalancer", "api.loadBalancerSourceRanges": ["203.0.113.0/24"],
                                       "release.canary.enabled": False}, stack="test")
    public = next(p for p in policies if p["metadata"]["name"] == "allow-public-to-api")
    assert public["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert rendered.find("Service", "api-direct")["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


def test_node_local_dns_and_narrowed_offsite_egress():
    policies, _ = _render_with({"kubernetes.nodeLocalDns": "169.254.20.10", "backups.offsite.cidrs": ["198.51.100.0/24"]})
    dns = next(p for p in policies if p["metadata"]["name"] == "allow-dns")
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["spec"]["egress"][1]["to"]
    offsite = next(p for p in policies if p["metadata"]["name"] == "allow-postgres-egress-offsite")
    assert offsite["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "198.51.100.0/24"}}]


def test_an_ipv6_node_local_dns_and_bare_addresses_are_one_host_each():
    """Kubernetes' ipBlock takes a prefix: a bare address is its one host (/32, /128); an IPv6 address was once
    written as a /32 network."""
    policies, _ = _render_with({"kubernetes.nodeLocalDns": "fd00::a", "backups.offsite.cidrs": ["198.51.100.7"],
                                "kubernetes.apiServerCidrs": ["203.0.113.9", "2001:DB8::1"]})
    dns = next(p for p in policies if p["metadata"]["name"] == "allow-dns")
    assert {"ipBlock": {"cidr": "fd00::a/128"}} in dns["spec"]["egress"][1]["to"]
    offsite = next(p for p in policies if p["metadata"]["name"] == "allow-postgres-egress-offsite")
    assert offsite["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "198.51.100.7/32"}}]
    blocks = [to["ipBlock"]["cidr"] for p in policies for rule in p["spec"].get("egress", []) for to in rule.get("to", [])
              if "ipBlock" in to]
    assert "203.0.113.9/32" in blocks and "2001:db8::1/128" in blocks
    assert all("/" in block for block in blocks)


# What the operator's pods do, written down from the operator's v3.0.0 source rather than from our FLOWS list:
# replication and Patroni between members, archive-push and backups over pgBackRest's TLS port in both
# directions with the repository host, restores pulling from it, PgBouncer to the instances, the API through PgBouncer.
OPERATOR_TRAFFIC = [
    ("postgres", "postgres", 5432),
    ("postgres", "postgres", 8008),
    ("postgres", "pgbackrest-repo-host", 8432),
    ("pgbackrest-repo-host", "postgres", 8432),
    ("pgbackrest", "pgbackrest-repo-host", 8432),
    ("pgbouncer", "postgres", 5432),
    ("api", "pgbouncer", 5432),
]


@pytest.mark.parametrize("source,target,port", OPERATOR_TRAFFIC)
def test_the_traffic_the_operator_needs_is_open(prod, source, target, port):
    policies, pods = prod
    assert allowed(policies, _pod(pods, source), _pod(pods, target), port)


def test_patroni_and_backup_jobs_reach_a_private_api_server(prod):
    policies, pods = prod
    api_server = ({}, None, False)
    for source in ("postgres", "pgbackrest"):
        policy = next(p for p in policies if p["metadata"]["name"] == f"allow-{source}-egress-api-server")
        assert _matches(policy["spec"]["podSelector"], pods[source])
        assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in policy["spec"]["egress"][0]["to"]
    assert not allowed(policies, _pod(pods, "api"), api_server, 6443)


def _policies(**extra) -> dict[str, dict]:
    args = NetworkPoliciesArgs("estate", "test", [Flow("a", "b", 80), Flow("a", "b", 80), Flow("a", "b", 81)],
                               ingress_target="a", ingress_port=8000, ingress_controller_namespace="edge", **extra)
    rendered, _ = run_component(lambda: NetworkPolicies("np", args))
    return {o["metadata"]["name"]: o["spec"] for o in rendered.objects}


def test_every_edge_of_the_component_spelled_out():
    solver = Pods.labelled("solver", {"x": "y"})
    specs = _policies(
        external_flows=[ExternalFlow("a", 443), ExternalFlow("b", 9000, ("198.51.100.0/24",), "objects")],
        api_server_flows=[ApiServerFlow(solver)], api_server_cidrs=["10.0.0.1/32"],
        monitoring_namespace="monitoring", metrics_ports=[MetricsPort("a", 8000), MetricsPort("a", 9090)],
        acme_http01=True, public_sources=["203.0.113.0/24"], node_local_dns="169.254.20.10",
        namespace_flows=[NamespaceFlow("flagger-system", "b", 8080)],
    )
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert specs["allow-dns"]["egress"] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": dns_ports},
        {"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}], "ports": dns_ports}]
    # A repeated flow opens its port once.
    assert specs["allow-a-to-b"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 81}]
    assert specs["allow-a-egress-offsite"]["egress"] == [{
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}], "ports": [{"protocol": "TCP", "port": 443}]}]
    assert specs["allow-b-egress-objects"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "198.51.100.0/24"}}]
    assert specs["allow-solver-egress-api-server"] == {
        "podSelector": {"matchLabels": {"x": "y"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
                    "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]}
    assert specs["allow-monitoring-to-a"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 9090}]}]
    assert specs["allow-ingress-controller-to-acme-solver"] == {
        "podSelector": {"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}],
                     "ports": [{"protocol": "TCP", "port": 8089}]}]}
    assert specs["allow-public-to-a"]["ingress"] == [{
        "from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 8000}]}]
    assert specs["allow-flagger-system-to-b"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flagger-system"}}}]


def test_edges_are_opt_in():
    specs = _policies(metrics_ports=[MetricsPort("a", 8000)])
    # No monitoring namespace: nobody scrapes; no ACME solver, public source or node-local DNS unless asked for.
    assert sorted(specs) == ["allow-a-egress-to-b", "allow-a-to-b", "allow-dns", "allow-ingress-controller-to-a", "default-deny"]
    assert len(specs["allow-dns"]["egress"]) == 1


def test_the_flow_data_is_immutable_and_hashable():
    for item in (Pods.labelled("p", {"k": "v"}), Flow("a", "b", 1), ExternalFlow("a", 1), MetricsPort("a", 1),
                 NamespaceFlow("n", "a", 1), ApiServerFlow("a")):
        assert hash(item) == hash(dataclasses.replace(item))
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.port = 2
