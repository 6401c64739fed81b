"""The stack pictures (tools/picture.py): each committed docs/stacks/<stack>.dot is what the render draws now and each
.svg was drawn from that .dot; the flows are the NetworkPolicies' (both sides inside the namespace, one across its
edge)."""

import pytest

from components.network_policies import PRIVATE_RANGES
from tools.render import available_stacks
from tools.picture import PICTURES, Group, dot, flows, source_digest

NAMESPACE = "real-estate"
API = {"app.kubernetes.io/name": "api"}
REDIS = {"app.kubernetes.io/name": "redis"}


def policy(selected: dict, ingress=(), egress=()) -> dict:
    return {"kind": "NetworkPolicy", "spec": {"podSelector": {"matchLabels": selected},
                                              "ingress": [dict(rule) for rule in ingress],
                                              "egress": [dict(rule) for rule in egress]}}


def group(labels: dict) -> Group:
    return Group(tuple(sorted(labels.items())))


@pytest.mark.parametrize("stack", available_stacks())
def test_the_committed_picture_is_the_renders(rendered_stacks, stack):
    committed = (PICTURES / f"{stack}.dot").read_text()
    assert dot(rendered_stacks[stack]) == committed, f"docs/stacks/{stack}.dot is stale: run `make pictures`"
    assert f"<!-- drawn from {source_digest(committed)} -->" in (PICTURES / f"{stack}.svg").read_text(), (
        f"docs/stacks/{stack}.svg was not drawn from its .dot: run `make pictures`")


def test_a_flow_inside_the_namespace_needs_egress_at_the_source_and_ingress_at_the_target():
    to_redis = {"from": [{"podSelector": {"matchLabels": API}}], "ports": [{"port": 6379}]}
    from_api = {"to": [{"podSelector": {"matchLabels": REDIS}}], "ports": [{"port": 6379}]}
    assert flows([policy(REDIS, ingress=[to_redis])], NAMESPACE) == {}
    assert flows([policy(API, egress=[from_api])], NAMESPACE) == {}
    both = flows([policy(REDIS, ingress=[to_redis]), policy(API, egress=[from_api])], NAMESPACE)
    assert both == {(group(API), group(REDIS)): {"6379"}}
    # Egress on another port opens nothing.
    other_port = {**from_api, "ports": [{"port": 6380}]}
    assert flows([policy(REDIS, ingress=[to_redis]), policy(API, egress=[other_port])], NAMESPACE) == {}


def test_a_flow_across_the_namespaces_edge_needs_its_own_side_only():
    from_gateway = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy"}}}],
                    "ports": [{"port": 8000}]}
    offsite = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}
    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
           "ports": [{"port": 53, "protocol": "UDP"}]}
    assert flows([policy(API, ingress=[from_gateway], egress=[offsite]), policy({}, egress=[dns])], NAMESPACE) == {
        (Group(namespace="envoy"), group(API)): {"8000"},
        (group(API), Group(cidr="0.0.0.0/0\nexcept 10.0.0.0/8")): {"443"},
        (Group(), Group(namespace="kube-system")): {"53/UDP"},
    }


def test_prods_picture_shows_the_release_and_backup_paths(rendered_stacks):
    prod = dot(rendered_stacks["prod"])
    offsite_except = "\\n".join(f"except {cidr}" for cidr in PRIVATE_RANGES)
    pgbouncer, instances = '"pods: cluster=postgres\\nrole=pgbouncer"', '"pods: cluster=postgres\\ndata=postgres"'
    for edge in ['"pods: namespace envoy-gateway-system" -> "Deployment/api" [label="8000"]',
                 '"Deployment/flagger-loadtester" -> "Deployment/api" [label="8000"]',
                 f'"Deployment/api" -> {pgbouncer} [label="5432"]',
                 f'{instances} -> "pods: cluster=postgres\\ndata=pgbackrest" [label="8432"]',
                 f'{instances} -> "pods: addresses 0.0.0.0/0\\n{offsite_except}" [label="443"]',
                 '"CronJob/redis-backup" -> "StatefulSet/redis" [label="6379"]',
                 '"CronJob/milvus-backup" -> "StatefulSet/backup-s3" [label="8333"]']:
        assert edge in prod, edge
