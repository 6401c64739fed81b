"""Availability seen from outside the pods: a blackbox exporter (prometheus/blackbox_exporter) that fetches the stack's
public URL through the same DNS name, Gateway, certificate and route users take, and Probe objects that tell the
cluster's Prometheus (prometheus-operator) what to ask it and how often.

Two modules: `ready` (GET answering 200, for /ready and /version) and `recommendation` (one authenticated POST that
must answer 200 with its items). The API key reaches the exporter as a file from the API's Secret
(`http_headers: {X-API-Key: {files: [...]}}`, prometheus/common's HTTP client): blackbox.yml holds no secret, so the
exporter's /config page, which prints its whole configuration to whoever reaches its port, shows a path, never the
key. Over https the probe refuses a plain-http answer and reports the served certificate's expiry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.component import Component
from components.single_pod import config_file_container, single_pod_service
from components.workload import SecretKeyRef, labels, service_dns, sha256
from settings.monitoring import ProbeSettings
from settings.routing import IngressSettings

NAME = "blackbox"
PORT = 9115
# The job label of every probe's series (the rules select on it).
JOB = "blackbox"
CONFIG_DIR = "/etc/blackbox"
KEY_DIR = "/etc/blackbox-key"
KEY_FILE = f"{KEY_DIR}/api-key"
# A recommendation every stack can answer: schema-valid, one fixed user (its A/B variant stays put), one item.
RECOMMENDATION = {"user_id": "blackbox-probe", "budget": 3000000, "area_sqm": 90, "bedrooms": 2,
                  "latitude": 31.23, "longitude": 121.47, "top_k": 1}


def public_url(probes: ProbeSettings, ingress: IngressSettings) -> str:
    """The base URL users reach: the setting, else the ingress host (https when it serves TLS)."""
    if probes.url:
        return probes.url.rstrip("/")
    return f"{'https' if ingress.tls.enabled else 'http'}://{ingress.host}"


def blackbox_config(https: bool, key_file: str = KEY_FILE) -> dict:
    """blackbox.yml: the two modules; no secret (the key is a file)."""
    # No redirects: a redirect would take the key (sent on every request) to whatever host it names.
    common = {"preferred_ip_protocol": "ip4", "follow_redirects": False, **({"fail_if_not_ssl": True} if https else {})}
    return {"modules": {
        "ready": {"prober": "http", "timeout": "5s", "http": {"method": "GET", "valid_status_codes": [200], **common}},
        "recommendation": {"prober": "http", "timeout": "5s", "http": {
            "method": "POST",
            # Synthetic: the API keeps it out of the business metrics and the active users (real requests all the same).
            "headers": {"Content-Type": "application/json", "X-Synthetic": "blackbox"},
            "http_headers": {"X-API-Key": {"files": [key_file]}},
            "body": json.dumps(RECOMMENDATION, separators=(",", ":")),
            "valid_status_codes": [200],
            # At least one listing: an empty answer is no recommendation.
            "fail_if_body_not_matches_regexp": ['"items":\\s*\\[\\s*\\{'],
            **common,
        }},
    }}


def probes(base_url: str, recommendation: bool = True) -> dict[str, tuple[str, list[str]]]:
    """Probe object name → (module, targets). Without `recommendation` (the feature switched off, or only for a grey
    cohort the probe's user may not be in) there is no recommendation to expect."""
    found = {"api-public-ready": ("ready", [f"{base_url}/ready", f"{base_url}/version"])}
    if recommendation:
        found["api-public-recommendation"] = ("recommendation", [f"{base_url}/v1/recommendations"])
    return found


@dataclass
class PublicProbesArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    settings: ProbeSettings
    base_url: str
    api_key: SecretKeyRef
    # The labels the cluster's Prometheus selects Probes by (monitoring.selectorLabels).
    selector_labels: dict[str, str]
    # Every user gets recommendations (the feature on, not behind the grey release): they are probed.
    recommendation: bool = True


class PublicProbes(Component):
    def __init__(self, name: str, args: PublicProbesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:monitoring:PublicProbes", name, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        text = json.dumps(blackbox_config(args.base_url.startswith("https://")), indent=2)
        config = k8s.core.v1.ConfigMap(
            self.child_name("config"),
            metadata={"name": NAME, "namespace": args.namespace, "labels": labels(NAME, args.stack, "monitoring")},
            data={"blackbox.yml": text},
            opts=child,
        )
        # The image's entrypoint is /bin/blackbox_exporter (upstream Dockerfile).
        container = config_file_container(NAME, s.image, f"{CONFIG_DIR}/blackbox.yml", PORT, [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "api-key", "mountPath": KEY_DIR, "readOnly": True},
        ])
        volumes = [
            {"name": "config", "configMap": {"name": NAME}},
            # Only the key, not the rest of the API's Secret.
            args.api_key.volume("api-key", "api-key"),
        ]
        # The exporter reads its file at start: a changed configuration rolls the pod.
        single_pod_service(self, NAME, args.namespace, args.stack, container, volumes, PORT,
                           template_annotations={"real-estate-ai/config-checksum": sha256(text)})
        for probe, (module, targets) in probes(args.base_url, args.recommendation).items():
            k8s.apiextensions.CustomResource(
                self.child_name(probe),
                api_version="monitoring.coreos.com/v1",
                kind="Probe",
                metadata={"name": probe, "namespace": args.namespace,
                          "labels": {**labels(probe, args.stack, "monitoring"), **args.selector_labels}},
                spec={
                    "jobName": JOB,
                    "interval": f"{s.interval_seconds}s",
                    "module": module,
                    "prober": {"url": f"{service_dns(NAME, args.namespace_name)}:{PORT}", "path": "/probe"},
                    # prometheus-operator adds the Probe's namespace as `namespace` and each target as `instance`.
                    "targets": {"staticConfig": {"static": targets, "labels": {"probe": module}}},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config]),
            )
        self.register_outputs({})
