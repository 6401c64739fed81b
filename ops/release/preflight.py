"""Before a preview, a plan or an up of STACK (make preview, CI): the tools are there, the stack's cluster answers,
and it runs what the stack needs of it (ops/release/prerequisites.py). A preview against an unreachable cluster
succeeds with the Kubernetes provider skipping every check, and one against a cluster that lacks a controller or
its settings passes and deploys what never works; this makes both fail, one line per problem.

    python -m ops.release.preflight STACK
"""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Optional

from ops.release import prerequisites as pre
from ops.release.shell import Failed, Steps, main, require, run
from ops.release.stack import Stack, check_cluster
from tools.render import render


def _get_json(stack: Stack, args: list[str], what: str) -> Optional[dict]:
    """kubectl's JSON answer; None where the object (or the API path) does not exist."""
    try:
        text = run(stack.kubectl(*args), what, capture=True)
    except Failed as failure:
        if "NotFound" in str(failure) or "not found" in str(failure):
            return None
        raise
    return json.loads(text) if text.strip() else None


def _items(stack: Stack, resource: str, namespace: str, selector: Optional[str] = None) -> list[dict]:
    args = ["get", resource, "--namespace", namespace, "--output", "json", *(["--selector", selector] if selector else [])]
    return (_get_json(stack, args, f"list {resource} in namespace '{namespace}'") or {}).get("items") or []


def _object(stack: Stack, resource: str, name: str, namespace: Optional[str] = None) -> Optional[dict]:
    args = ["get", resource, name, "--ignore-not-found", "--output", "json", *(["--namespace", namespace] if namespace else [])]
    return _get_json(stack, args, f"read {resource} '{name}'")


def can_write(stack: Stack) -> bool:
    """Whether this identity may patch the stack's Deployments: the provider's server-side dry-runs need it, and
    without it previews fall back to client-side ones without a word."""
    done = subprocess.run(stack.kubectl("auth", "can-i", "patch", "deployments.apps", "--namespace", stack.namespace),
                          capture_output=True, text=True)
    return done.stdout.strip() == "yes"


def problems(stack: Stack, registrations: Optional[list] = None) -> list[str]:
    """Every way the stack's cluster falls short of what the stack needs; `registrations`: the stack's render
    (default: rendered here from its file)."""
    wanted = pre.objects(render(stack.name).registrations if registrations is None else registrations)
    discovered: dict[str, Optional[dict]] = {}

    def serves(version: str, kind: str) -> bool:
        if version not in discovered:
            discovered[version] = _get_json(stack, ["get", "--raw", pre.discovery_path(version)], f"discover {version}")
        return pre.serves(discovered[version], kind)

    for obj in wanted:
        serves(obj.api_version, obj.kind)
    found = pre.unserved(stack.name, stack.config, wanted, discovered)
    c, ingress, addons = stack.config, stack.config.ingress, stack.config.cluster_addons
    namespace_labels = next((dict(o.labels) for o in wanted if o.kind == "Namespace" and o.name == stack.namespace), {})
    if c.monitoring.enabled and not c.monitoring.install.enabled:
        where = c.monitoring.namespace
        for kind, resource, selectors in (("Prometheus", "prometheuses", pre.PROMETHEUS_SELECTORS),
                                          ("Alertmanager", "alertmanagers", pre.ALERTMANAGER_SELECTORS)):
            if not serves("monitoring.coreos.com/v1", kind):
                found.append(f"stack '{stack.name}': the cluster serves no {kind} (monitoring.coreos.com/v1) to load the "
                             f"stack's monitoring; install kube-prometheus-stack (or monitoring.install.enabled)")
                continue
            found += pre.unselected(stack.name, wanted, selectors, kind,
                                    _items(stack, f"{resource}.monitoring.coreos.com", where), where, namespace_labels)
    if ingress.enabled and ingress.tls.enabled and not addons.cert_manager.install:
        if not serves("cert-manager.io/v1", "ClusterIssuer"):
            found.append(f"stack '{stack.name}': TLS needs cert-manager, and the cluster serves no ClusterIssuer (cert-manager.io/v1)")
        else:
            found += pre.issuer_problems(stack.name, ingress,
                                         _object(stack, "clusterissuers.cert-manager.io", ingress.tls.cluster_issuer))
        if ingress.via == "gateway":
            namespace = addons.cert_manager.namespace
            controllers = _items(stack, "deployments.apps", namespace,
                                 "app.kubernetes.io/name=cert-manager,app.kubernetes.io/component=controller")
            config_maps = {(m.get("metadata") or {}).get("name", ""): m for m in _items(stack, "configmaps", namespace)} \
                if controllers else {}
            if not controllers:
                found.append(f"stack '{stack.name}': no cert-manager controller in namespace '{namespace}' "
                             f"(clusterAddons.certManager.namespace) to issue the Gateway's certificate")
            elif not any(pre.gateway_api_support(d, config_maps) for d in controllers):
                found.append(f"stack '{stack.name}': cert-manager in '{namespace}' runs without Gateway API support (off by "
                             f"default), so the Gateway's certificate is never issued; set its chart value "
                             f"config.gatewayAPI.enabled: true (or the flag --enable-gateway-api)")
    if ingress.enabled and ingress.via == "gateway" and not addons.gateway_controller.install:
        gateway = ingress.gateway
        if gateway.create and serves("gateway.networking.k8s.io/v1", "GatewayClass"):
            gateway_class = _object(stack, "gatewayclasses.gateway.networking.k8s.io", gateway.class_name)
            accepted, message = pre.condition(gateway_class, "Accepted")
            if gateway_class is None:
                found.append(f"stack '{stack.name}': GatewayClass '{gateway.class_name}' (ingress.gateway.className) does not exist")
            elif not accepted:
                found.append(f"stack '{stack.name}': GatewayClass '{gateway.class_name}' is not Accepted by its controller: "
                             f"{pre.shown(message)}")
        elif not gateway.create and serves("gateway.networking.k8s.io/v1", "Gateway") and \
                _object(stack, "gateways.gateway.networking.k8s.io", gateway.name, gateway.namespace) is None:
            found.append(f"stack '{stack.name}': the shared Gateway '{gateway.namespace}/{gateway.name}' does not exist")
    if c.release.canary.enabled and not addons.flagger.install:
        namespace = addons.flagger.namespace
        flaggers = _items(stack, "deployments.apps", namespace, "app.kubernetes.io/name=flagger")
        if not any((d.get("status") or {}).get("availableReplicas") for d in flaggers):
            found.append(f"stack '{stack.name}': no running Flagger in namespace '{namespace}' (clusterAddons.flagger.namespace) "
                         f"to release the canary")
    return found


def check_prerequisites(stack: Stack, steps: Steps) -> None:
    """The stack's cluster answers, and runs what the stack needs of it."""
    steps.step(f"checking that stack '{stack.name}' reaches its cluster ({stack.context or 'current context'})")
    check_cluster(stack)
    steps.step(f"checking what stack '{stack.name}' needs of its cluster")
    found = problems(stack)
    if found:
        raise Failed("\n".join(found))
    if not can_write(stack):
        steps.note(f"this identity cannot write in namespace '{stack.namespace}': the provider previews client-side "
                   f"(without the API server's defaults and admission); the plan's goals hold all the same")


def preflight(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="preflight", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    stack = Stack.load(parser.parse_args(argv).stack)
    steps = Steps("preflight")
    steps.step("checking prerequisites: pulumi, kubectl")
    require(["pulumi", "kubectl"])
    check_prerequisites(stack, steps)


if __name__ == "__main__":
    raise SystemExit(main(preflight))
