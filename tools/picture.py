"""A picture of what a stack deploys, drawn from its render: each component with the objects it owns, its workloads,
and every network flow its NetworkPolicies allow (which is also where the backup and release paths show: the primary
to its repositories, the backup jobs to their stores, the Gateway's and Flagger's pods to the API).

    python -m tools.picture [--stack dev|test|prod ...]     write docs/stacks/<stack>.dot and .svg (needs Graphviz)

The .dot is the picture's source, rebuilt by tests/test_picture.py from the render and compared with the committed
one; the .svg records the SHA-256 of the .dot it was drawn from, so a stale .svg is noticed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tools.render import RenderedStack, available_stacks, render

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ROOT / "docs" / "stacks"
OWN_TYPES = "real-estate-ai:"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _template_labels(obj: dict) -> dict[str, str]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {}) or {}


def _owner(urn: str) -> str:
    """The innermost component of ours in a URN's type chain, by type and name."""
    chain = urn.split("::")[2].split("$")[:-1]
    components = [t for t in chain if t.startswith(OWN_TYPES)]
    return components[-1] if components else ""


@dataclass(frozen=True)
class Group:
    """Pods a NetworkPolicy names: by labels in the stack's namespace, or a whole other namespace, or addresses."""

    labels: tuple[tuple[str, str], ...] = ()
    namespace: str = ""
    cidr: str = ""

    def selects(self, selector: dict[str, str]) -> bool:
        return not self.namespace and not self.cidr and set(selector.items()) <= set(self.labels)

    def title(self) -> str:
        if self.cidr:
            return f"addresses {self.cidr}"
        if self.namespace:
            pods = ", ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in self.labels)
            return f"namespace {self.namespace}" + (f"\n{pods}" if pods else "")
        if not self.labels:
            return "every pod of the namespace"
        return "\n".join(f"{k.rsplit('/', 1)[-1]}={v}" if v else k.rsplit("/", 1)[-1] for k, v in self.labels)


def _peer_group(peer: dict, namespace: str) -> Group:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return Group(cidr="\n".join([block["cidr"], *(f"except {cidr}" for cidr in block.get("except", []))]))
    pods = tuple(sorted(peer.get("podSelector", {}).get("matchLabels", {}).items()))
    names = peer.get("namespaceSelector", {}).get("matchLabels", {})
    other = names.get("kubernetes.io/metadata.name", ",".join(f"{k}={v}" for k, v in sorted(names.items())))
    if "namespaceSelector" in peer and other != namespace:
        return Group(pods, namespace=other or "any")
    return Group(pods)


def _ports(rule: dict) -> tuple[str, ...]:
    return tuple(f"{p['port']}" + ("" if p.get("protocol", "TCP") == "TCP" else f"/{p['protocol']}")
                 for p in rule.get("ports", [])) or ("any",)


def flows(policies: list[dict], namespace: str) -> dict[tuple[Group, Group], set[str]]:
    """Every (source, target) → ports the policies allow: a flow inside the namespace needs the source's egress and
    the target's ingress (the namespace denies both by default); one across its edge needs its own side only."""
    egress: dict[tuple[Group, Group], set[str]] = defaultdict(set)
    ingress: dict[tuple[Group, Group], set[str]] = defaultdict(set)
    for policy in policies:
        selected = Group(tuple(sorted(policy["spec"]["podSelector"].get("matchLabels", {}).items())))
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                egress[(selected, _peer_group(peer, namespace))].update(_ports(rule))
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                ingress[(_peer_group(peer, namespace), selected)].update(_ports(rule))
    allowed: dict[tuple[Group, Group], set[str]] = defaultdict(set)
    for (source, target), ports in ingress.items():
        if source.namespace or source.cidr:
            allowed[(source, target)] |= ports
            continue
        # Egress rules whose source and target selectors pick these pods, on the same ports (or any port).
        out = set().union(*(p for (s, t), p in egress.items()
                            if not t.namespace and not t.cidr and source.selects(dict(s.labels))
                            and target.selects(dict(t.labels))))
        allowed_ports = ports if "any" in out else out if "any" in ports else ports & out
        if allowed_ports:
            allowed[(source, target)] |= allowed_ports
    for (source, target), ports in egress.items():
        if target.namespace or target.cidr:
            allowed[(source, target)] |= ports
    return allowed


def dot(rendered: RenderedStack) -> str:
    """The stack's picture in Graphviz's language, the same text for the same render."""
    objects = [r for r in rendered.registrations if r.inputs.get("kind") and not r.type.endswith("Patch")]
    policies = [r.inputs for r in objects if r.inputs["kind"] == "NetworkPolicy"]
    # The platform's namespace: its policies' (the operator's namespace is another Namespace object).
    namespace = min((p["metadata"].get("namespace", "") for p in policies), default="")
    by_owner: dict[str, list] = defaultdict(list)
    for registration in objects:
        by_owner[_owner(registration.urn)].append(registration.inputs)

    lines = [f"// {rendered.stack}: generated by tools/picture.py from the render; do not edit",
             "digraph stack {", "  rankdir=LR; newrank=true; ranksep=0.8; fontname=Helvetica; fontsize=11;",
             "  node [fontname=Helvetica, fontsize=10, shape=box, style=rounded];",
             "  edge [fontname=Helvetica, fontsize=9];",
             f"  label={_quote(f'stack {rendered.stack}: components, objects and allowed flows (namespace {namespace})')};"]
    workloads: dict[str, dict[str, str]] = {}
    for number, owner in enumerate(sorted(by_owner)):
        kind_names: dict[str, list[str]] = defaultdict(list)
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f"    label={_quote(owner.split(':')[-1] if owner else 'the stack')}; style=rounded; color=grey50;")
        for obj in sorted(by_owner[owner], key=lambda o: (o["kind"], o["metadata"].get("name", ""))):
            name = obj["metadata"].get("name", "")
            if obj["kind"] in WORKLOAD_KINDS:
                node = f"{obj['kind']}/{name}"
                workloads[node] = _template_labels(obj)
                title = _quote(name + "\n" + obj["kind"])
                lines.append(f'    {_quote(node)} [label={title}, style="rounded,bold"];')
            else:
                kind_names[obj["kind"]].append(name)
        if kind_names:
            rows = []
            for kind, names in sorted(kind_names.items()):
                # The policies are the arrows; their names would only repeat them.
                listed = f"{len(names)}, drawn as the arrows" if kind == "NetworkPolicy" else ", ".join(names)
                rows += textwrap.wrap(f"{kind}: {listed}", 72, subsequent_indent="    ")
            label = "".join(row.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for row in rows)
            lines.append(f'    "objects {number}" [shape=note, style="", fontsize=8, label="{label}"];')
        lines.append("  }")

    def nodes_for(group: Group) -> list[str]:
        matched = [node for node, labels in sorted(workloads.items())
                   if labels and group.labels and not group.namespace and not group.cidr
                   and set(group.labels) <= set(labels.items())]
        return matched or [f"pods: {group.title()}"]

    drawn: set[str] = set()
    edges = []
    for (source, target), ports in sorted(flows(policies, namespace).items(),
                                          key=lambda item: (item[0][0].title(), item[0][1].title())):
        for source_node in nodes_for(source):
            for target_node in nodes_for(target):
                for node, group in ((source_node, source), (target_node, target)):
                    if node.startswith("pods: ") and node not in drawn:
                        drawn.add(node)
                        shape = "ellipse" if group.namespace or group.cidr else "box"
                        lines.append(f"  {_quote(node)} [label={_quote(group.title())}, shape={shape}, style=dashed];")
                label = ", ".join(sorted(ports, key=lambda p: (len(p), p)))
                edges.append(f"  {_quote(source_node)} -> {_quote(target_node)} [label={_quote(label)}];")
    lines.extend(sorted(set(edges)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(source: str) -> str:
    """Graphviz's drawing of `source`, stamped with the source's SHA-256."""
    if shutil.which("dot") is None:
        raise SystemExit("picture: Graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    drawn = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=True).stdout
    return drawn.replace("<svg", f"<!-- drawn from {source_digest(source)} -->\n<svg", 1)


def source_digest(source: str) -> str:
    return "sha256:" + hashlib.sha256(source.encode()).hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="picture", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", choices=available_stacks())
    args = parser.parse_args(argv)
    PICTURES.mkdir(parents=True, exist_ok=True)
    for stack in args.stack or available_stacks():
        source = dot(render(stack))
        (PICTURES / f"{stack}.dot").write_text(source)
        (PICTURES / f"{stack}.svg").write_text(svg(source))
        print(f"picture: docs/stacks/{stack}.dot and .svg written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
