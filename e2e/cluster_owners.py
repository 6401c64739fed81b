"""What test's cluster owners run, as the objects the preflight reads (ops/release/prerequisites.py), for the e2e's
control plane. STAND-INS, labelled e2e.real-estate-ai/fake: no controller behind them (the ClusterIssuer's and the
GatewayClass' Ready/Accepted conditions are written here, as cert-manager and Envoy Gateway would write them), each
shaped as its chart renders it:

- Prometheus and Alertmanager as kube-prometheus-stack 88.3.0 (release "kube-prometheus") renders them with its
  default values (templates/prometheus/prometheus.yaml: `*SelectorNilUsesHelmValues` → matchLabels release, every
  namespace selector {}; templates/alertmanager/alertmanager.yaml: alertmanagerConfigSelector and its namespace
  selector {});
- cert-manager v1.21.1's controller Deployment as its chart renders it with `config.gatewayAPI.enabled: true`
  (templates/deployment.yaml: --config=/var/cert-manager/config/config.yaml from ConfigMap cert-manager), and a
  ClusterIssuer with an HTTP-01 Gateway API solver;
- Envoy Gateway's GatewayClass `eg`, and a Flagger Deployment (kwok runs its pod; the controller manager counts it
  available).
"""

from __future__ import annotations

import json
import subprocess

LABEL = {"e2e.real-estate-ai/fake": "true"}
RELEASE = "kube-prometheus"
CERT_MANAGER_CONFIG = "apiVersion: controller.config.cert-manager.io/v1alpha1\nkind: ControllerConfiguration\ngatewayAPI:\n  enabled: true\n"


def _deployment(name: str, namespace: str, labels: dict, args: list[str], volumes: list[dict], mounts: list[dict]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {**labels, **LABEL}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": f"e2e.invalid/{name}:1", "args": args,
                                                           "volumeMounts": mounts}],
                                           "volumes": volumes}}}}


def objects(monitoring: str, cert_manager: str, flagger: str, gateway_class: str, issuer: str) -> list[dict]:
    def selector() -> dict:
        return {"matchLabels": {"release": RELEASE}}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cert_manager, "labels": LABEL}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": flagger, "labels": LABEL}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
         "metadata": {"name": f"{RELEASE}-kube-prome-prometheus", "namespace": monitoring, "labels": LABEL},
         "spec": {"ruleSelector": selector(), "ruleNamespaceSelector": {}, "podMonitorSelector": selector(),
                  "podMonitorNamespaceSelector": {}, "serviceMonitorSelector": selector(),
                  "serviceMonitorNamespaceSelector": {}, "probeSelector": selector(), "probeNamespaceSelector": {}}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
         "metadata": {"name": f"{RELEASE}-kube-prome-alertmanager", "namespace": monitoring, "labels": LABEL},
         "spec": {"alertmanagerConfigSelector": {}, "alertmanagerConfigNamespaceSelector": {}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cert-manager", "namespace": cert_manager, "labels": LABEL},
         "data": {"config.yaml": CERT_MANAGER_CONFIG}},
        _deployment("cert-manager", cert_manager,
                    {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"},
                    ["--v=2", "--cluster-resource-namespace=$(POD_NAMESPACE)", "--config=/var/cert-manager/config/config.yaml"],
                    [{"name": "config", "configMap": {"name": "cert-manager"}}],
                    [{"name": "config", "mountPath": "/var/cert-manager/config"}]),
        {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": issuer, "labels": LABEL},
         "spec": {"acme": {"server": "https://acme.e2e.invalid/directory", "email": "ops@example.com",
                           "privateKeySecretRef": {"name": f"{issuer}-account-key"},
                           "solvers": [{"http01": {"gatewayHTTPRoute": {"serviceType": "ClusterIP"}}}]}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": gateway_class, "labels": LABEL},
         "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}},
        _deployment("flagger", flagger, {"app.kubernetes.io/name": "flagger"},
                    ["-mesh-provider=gatewayapi:v1", f"-metrics-server=http://{RELEASE}-kube-prome-prometheus.{monitoring}:9090"], [], []),
    ]


# The conditions their controllers would write (cert-manager pkg/issuer/acme/setup.go; Envoy Gateway
# internal/gatewayapi/status/gatewayclass.go).
STATUSES = [
    ("clusterissuers.cert-manager.io", {"conditions": [{"type": "Ready", "status": "True", "reason": "ACMEAccountRegistered",
                                                        "message": "The ACME account was registered with the ACME server",
                                                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    ("gatewayclasses.gateway.networking.k8s.io", {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                                                  "message": "Valid GatewayClass", "observedGeneration": 1,
                                                                  "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
]


def create(kubectl: list[str], names: dict) -> None:
    """Apply the stand-ins and write their controllers' conditions; wait for Flagger's Deployment to be available."""
    for obj in objects(**names):
        subprocess.run([*kubectl, "apply", "--server-side", "--field-manager", "e2e-cluster-owners", "-f", "-"],
                       input=json.dumps(obj), check=True, capture_output=True, text=True)
    for resource, status in STATUSES:
        name = names["issuer"] if resource.startswith("clusterissuers") else names["gateway_class"]
        subprocess.run([*kubectl, "patch", resource, name, "--subresource", "status", "--type", "merge",
                        "--patch", json.dumps({"status": status})], check=True, capture_output=True, text=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Available", "deployment/flagger", "--namespace", names["flagger"],
                    "--timeout=120s"], check=True, capture_output=True, text=True)
