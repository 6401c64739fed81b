"""What a stack needs of a cluster it does not own, checked before a plan or an up (ops/release/preflight.py): the
cluster owners' controllers and their settings. Without this each is silent: the provider previews objects of an
unserved kind client-side and passes, a Prometheus that selects none of the stack's monitors loads nothing, a
ClusterIssuer that cannot solve for a Gateway never issues, and HTTPS never comes up.

Read from the stack's own render (tools/render.py: the objects the program registers) and the cluster's answers:
- every kind the stack registers is served at its version (API discovery), except those whose CRDs the same `up`
  installs (the stack's own charts);
- a Prometheus in monitoring.namespace selects every PrometheusRule, PodMonitor and ServiceMonitor, an Alertmanager
  every AlertmanagerConfig, by labels and by the stack's namespace (prometheus-operator v0.93.0: a nil selector
  selects nothing, an empty one everything; a nil namespace selector only the object's own namespace);
- TLS: the ClusterIssuer exists, is Ready and can solve the way the stack is reached (an HTTP-01 solver for Gateway
  API or Ingress, or DNS-01), and cert-manager's Gateway API support is on (off by default:
  `--enable-gateway-api`, or `gatewayAPI.enabled` / `enableGatewayAPI` in its --config file);
- the GatewayClass of a created Gateway is Accepted, a shared Gateway exists; Flagger runs for a canary.

Each problem is one line naming the stack; a value read from the cluster is shown escaped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import yaml

# The API groups whose CRDs a stack installs itself, by the setting that installs them.
OWN_CRDS: dict[str, Callable[[Any], bool]] = {
    "pgv2.percona.com": lambda c: c.postgres.operator.install,
    "flagger.app": lambda c: c.cluster_addons.flagger.install,
    "gateway.networking.k8s.io": lambda c: c.cluster_addons.gateway_controller.install,
    "cert-manager.io": lambda c: c.cluster_addons.cert_manager.install,
    "monitoring.coreos.com": lambda c: c.monitoring.install.enabled,
}
# Who serves each group, for the line that says what to install.
PROVIDERS = {
    "pgv2.percona.com": "the Percona PostgreSQL operator's CRDs (or postgres.operator.install)",
    "flagger.app": "Flagger's CRDs (or clusterAddons.flagger.install)",
    "gateway.networking.k8s.io": "the Gateway API CRDs (or clusterAddons.gatewayController.install)",
    "cert-manager.io": "cert-manager (or clusterAddons.certManager.install)",
    "monitoring.coreos.com": "prometheus-operator's CRDs, as kube-prometheus-stack installs them (or monitoring.install.enabled)",
}
# Which selectors of a Prometheus (prometheus-operator v0.93.0 pkg/apis/monitoring/v1/prometheus_types.go) take which kind.
PROMETHEUS_SELECTORS = {
    "PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
    "PodMonitor": ("podMonitorSelector", "podMonitorNamespaceSelector"),
    "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
    "Probe": ("probeSelector", "probeNamespaceSelector"),
}
ALERTMANAGER_SELECTORS = {"AlertmanagerConfig": ("alertmanagerConfigSelector", "alertmanagerConfigNamespaceSelector")}


def shown(value: Any) -> str:
    """A value from the cluster in a message: escaped, so it cannot start a line of its own."""
    return json.dumps(value, ensure_ascii=True)


@dataclass(frozen=True)
class Obj:
    api_version: str
    kind: str
    name: str
    namespace: Optional[str]
    labels: Mapping[str, str]

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


def objects(registrations) -> list[Obj]:
    """The Kubernetes objects of a render (tools.render registrations), as the cluster would see them."""
    found = []
    for registration in registrations:
        props = registration.inputs
        if not (isinstance(props, dict) and isinstance(props.get("apiVersion"), str) and isinstance(props.get("kind"), str)):
            continue
        metadata = props.get("metadata") or {}
        found.append(Obj(props["apiVersion"], props["kind"], str(metadata.get("name", "")), metadata.get("namespace"),
                         {k: str(v) for k, v in (metadata.get("labels") or {}).items()}))
    return found


def discovery_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def serves(document: Optional[dict], kind: str) -> bool:
    """Whether a discovery document (an APIResourceList; None where the group version is not served) has `kind`."""
    return kind in {r.get("kind") for r in (document or {}).get("resources") or [] if "/" not in r.get("name", "")}


def unserved(stack: str, config, wanted: list[Obj], discovered: Mapping[str, Optional[dict]]) -> list[str]:
    """Kinds the stack registers that the cluster does not serve at their version. `discovered`: the discovery
    document (APIResourceList) of each apiVersion, None where the cluster answers 404."""
    problems = []
    seen = set()
    for obj in wanted:
        if (obj.api_version, obj.kind) in seen or (obj.group in OWN_CRDS and OWN_CRDS[obj.group](config)):
            continue
        seen.add((obj.api_version, obj.kind))
        if not serves(discovered.get(obj.api_version), obj.kind):
            provider = PROVIDERS.get(obj.group, "the API this kind belongs to")
            problems.append(f"stack '{stack}': the cluster does not serve {obj.kind} ({obj.api_version}); install {provider}")
    return problems


def matches(selector: Optional[Mapping], labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector over `labels`; None selects nothing, {} everything (prometheus-operator's reading)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def namespace_selected(selector: Optional[Mapping], own_namespace: str, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
    """prometheus-operator's namespace selectors: nil is the selecting object's own namespace only."""
    if selector is None:
        return namespace == own_namespace
    # The API server labels every namespace with its name.
    return matches(selector, {**namespace_labels, "kubernetes.io/metadata.name": namespace})


def unselected(stack: str, wanted: list[Obj], selectors: Mapping[str, tuple[str, str]], selecting_kind: str,
               selecting: list[dict], where: str, namespace_labels: Mapping[str, str]) -> list[str]:
    """Each object of `selectors`' kinds that no `selecting` object (Prometheus or Alertmanager, as listed) selects."""
    problems = []
    for kind, (selector_field, namespace_field) in selectors.items():
        mine = [obj for obj in wanted if obj.kind == kind]
        if not mine:
            continue
        if not selecting:
            problems.append(f"stack '{stack}': no {selecting_kind} in namespace '{where}' to load its {kind}s")
            continue
        for obj in mine:
            if any(matches((s.get("spec") or {}).get(selector_field), obj.labels)
                   and namespace_selected((s.get("spec") or {}).get(namespace_field), (s.get("metadata") or {}).get("namespace", ""),
                                          obj.namespace or "", namespace_labels)
                   for s in selecting):
                continue
            wants = "; ".join(f"{(s.get('metadata') or {}).get('name')} {selector_field} "
                              f"{shown((s.get('spec') or {}).get(selector_field))}, {namespace_field} "
                              f"{shown((s.get('spec') or {}).get(namespace_field))}" for s in selecting)
            problems.append(f"stack '{stack}': no {selecting_kind} in '{where}' selects {kind} '{obj.name}' "
                            f"(labels {shown(dict(obj.labels))}, namespace '{obj.namespace}'): {wants}; "
                            f"set monitoring.selectorLabels to what it selects")
    return problems


def condition(obj: Optional[dict], kind: str) -> tuple[bool, str]:
    """Whether `obj`'s condition `kind` is True, and its message."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status") == "True", str(c.get("message") or c.get("reason") or "")
    return False, "no such condition yet"


def issuer_problems(stack: str, ingress, issuer: Optional[dict]) -> list[str]:
    """The ClusterIssuer the stack names: there, Ready, and able to solve the way traffic reaches the stack."""
    name = ingress.tls.cluster_issuer
    if issuer is None:
        return [f"stack '{stack}': ClusterIssuer '{name}' (ingress.tls.clusterIssuer) does not exist; create it, with an "
                f"ACME solver for {'DNS-01' if ingress.tls.solver == 'dns01' else 'HTTP-01 on ' + ingress.via}"]
    problems = []
    ready, message = condition(issuer, "Ready")
    if not ready:
        problems.append(f"stack '{stack}': ClusterIssuer '{name}' is not Ready: {shown(message)}")
    acme = (issuer.get("spec") or {}).get("acme")
    if acme is not None:
        solvers = acme.get("solvers") or []
        if ingress.tls.solver == "dns01":
            able = any("dns01" in s for s in solvers)
            need = "a dns01 solver"
        elif ingress.via == "gateway":
            able = any("gatewayHTTPRoute" in (s.get("http01") or {}) for s in solvers)
            need = "an http01.gatewayHTTPRoute solver"
        else:
            able = any("ingress" in (s.get("http01") or {}) for s in solvers)
            need = "an http01.ingress solver"
        if not able:
            problems.append(f"stack '{stack}': ClusterIssuer '{name}' has no solver for this stack: it needs {need} "
                            f"(ingress.tls.solver {ingress.tls.solver}, ingress.via {ingress.via})")
    return problems


def _flag(args: list[str], name: str) -> Optional[str]:
    """The value of `--name=value` in a container's args ('true' for a bare flag), the last one winning."""
    value = None
    for arg in args:
        if arg == f"--{name}":
            # A bare boolean flag is true (pflag takes no separate value for one: `--flag false` is true).
            value = "true"
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def gateway_api_support(deployment: dict, config_maps: Mapping[str, dict]) -> bool:
    """cert-manager's controller runs with Gateway API support: the flag (which wins) or its --config file
    (ControllerConfiguration gatewayAPI.enabled, or v1.15–v1.20's enableGatewayAPI), read from the ConfigMap
    mounted where --config points. `config_maps`: the controller namespace's ConfigMaps by name."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        args = [str(a) for a in (container.get("args") or [])]
        flag = _flag(args, "enable-gateway-api")
        if flag is not None:
            return flag == "true"
        path = _flag(args, "config")
        if not path:
            continue
        for mount in container.get("volumeMounts") or []:
            directory = str(mount.get("mountPath", "")).rstrip("/")
            if not path.startswith(directory + "/"):
                continue
            volume = next((v for v in pod.get("volumes") or [] if v.get("name") == mount.get("name")), {})
            config_map = config_maps.get((volume.get("configMap") or {}).get("name", ""))
            text = ((config_map or {}).get("data") or {}).get(path[len(directory) + 1:], "")
            try:
                config = yaml.safe_load(text) or {}
            except yaml.YAMLError:
                return False
            if not isinstance(config, dict):
                return False
            enabled = (config.get("gatewayAPI") or {}).get("enabled")
            return bool(config.get("enableGatewayAPI") if enabled is None else enabled)
    return False
