"""The API's releases through Flagger (release.canary): a Canary for the API Deployment, the analysis' metric
templates over the API's own metrics, and Flagger's load tester, which runs the smoke test before any user meets the
new version and sends synthetic traffic to it at every step so each check has requests to judge.

Flagger owns what it generates: the 'api-primary' Deployment (and its HPA, from autoscalerRef), the Services 'api',
'api-primary' and 'api-canary', and the HTTPRoute 'api'. The program keeps only the target Deployment 'api', whose
pod template is the release: a `pulumi up` that changes it (image, config, secrets) starts a canary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.component import Component
from components.routes import flagger_matches
from components.single_pod import single_pod_service
from components.slo_rules import REFUSED
from components.workload import (
    SecretKeyRef,
    container_security_context,
    empty_dir,
    http_probe,
    labels,
    service_dns,
)
from settings.release import CanarySettings

NAME = "api"
FLAGGER_API = "flagger.app/v1beta1"
LOADTESTER = "flagger-loadtester"
# fluxcd/flagger charts/loadtester 0.38.0: image ghcr.io/fluxcd/flagger-loadtester:0.38.0, built from
# Dockerfile.loadtester (bash:5.2 with curl, jq and hey; USER app; ENTRYPOINT ./loadtester in WORKDIR /home/app,
# built mode 0755, so it runs as any UID) and started by the chart as `./loadtester -port=8080 ...`.
LOADTESTER_IMAGE = "ghcr.io/fluxcd/flagger-loadtester:0.38.0"
LOADTESTER_PORT = 8080
SCRIPTS_DIR = "/scripts"
# The API key as a file (not an environment variable): the smoke script and the load command read it.
API_KEY_FILE = "/var/run/secrets/real-estate-ai/api-key"
SMOKE_SCRIPT = Path(__file__).resolve().parent.parent / "ops" / "release" / "smoke.sh"
# The API's pods of the version under test: Deployment 'api' names them api-<replicaset>-<pod>; the primary's pods
# (api-primary-<replicaset>-<pod>) have one segment more and do not match (PromQL regexes match the whole value).
CANARY_PODS = '{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)'
_USER_REQUESTS = f'namespace="{{{{ namespace }}}}", pod=~"{CANARY_PODS}", route=~"/v1/.+", status!~"{REFUSED}"'
# Percent of the canary's user requests (the /v1 routes) that failed with a server error. No errors at all is 0, not
# "no data"; no requests at all is no data, which Flagger counts as a failed check.
ERROR_RATE_QUERY = (
    f'100 * (sum(rate(http_requests_total{{{_USER_REQUESTS}, status=~"5.."}}[{{{{ interval }}}}])) or on() vector(0))'
    f' / sum(rate(http_requests_total{{{_USER_REQUESTS}}}[{{{{ interval }}}}]))'
)
# p99 of the canary's user requests, in milliseconds.
LATENCY_QUERY = (
    f'1000 * histogram_quantile(0.99, sum by (le) '
    f'(rate(http_request_duration_seconds_bucket{{{_USER_REQUESTS}}}[{{{{ interval }}}}])))'
)
# The recommendation a synthetic user asks for (app/real_estate_api/app.py RecommendationIn).
LOAD_REQUEST = '{"user_id": "canary-load", "budget": 2000000, "area_sqm": 80, "bedrooms": 2, "latitude": 31.2, "longitude": 121.5}'


def metric_window(settings: CanarySettings) -> str:
    """The rate() window of each check: one analysis interval, and never under four 15 s scrapes."""
    return f"{max(60, settings.interval_seconds)}s"


def smoke_command(canary_url: str, version: str) -> str:
    return f"sh {SCRIPTS_DIR}/smoke.sh {canary_url} {version}"


def load_seconds(settings: CanarySettings) -> int:
    """The longest an analysis runs: every step, every tolerated failed check, and the promotion, one interval each."""
    return (len(settings.step_weights) + settings.threshold + 1) * settings.interval_seconds


def load_command(settings: CanarySettings, canary_url: str) -> str:
    """hey: -q is per worker, so one worker sends load_rps, from before the first step to the end of the analysis
    (started by the pre-rollout webhook: the first check then already has a minute of traffic)."""
    return (f"hey -z {load_seconds(settings)}s -q {settings.load_rps} -c 1 -m POST -T application/json "
            f"-H \"X-API-Key: $(cat {API_KEY_FILE})\" -H 'X-User-ID: canary-load' -H 'X-Synthetic: canary' -d '{LOAD_REQUEST}' "
            f"{canary_url}/v1/recommendations")


@dataclass
class CanaryArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    settings: CanarySettings
    # The API's semantic version: the smoke test checks the canary reports it.
    version: str
    deployment_name: pulumi.Input[str]
    # The HPA Flagger copies for the primary (autoscalerRef); None without autoscaling.
    autoscaler_name: Optional[pulumi.Input[str]]
    service_port: int
    container_port_name: str
    host: str
    gateway_ref: dict
    prometheus_url: str
    api_key: SecretKeyRef


class Canary(Component):
    def __init__(self, name: str, args: CanaryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:release:Canary", name, opts)
        self._args = args
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        canary_url = f"http://{service_dns(f'{NAME}-canary', args.namespace_name)}"
        tester_url = f"http://{service_dns(LOADTESTER, args.namespace_name)}/"
        templates = {"error-rate": ERROR_RATE_QUERY, "latency": LATENCY_QUERY}
        for metric, query in templates.items():
            k8s.apiextensions.CustomResource(
                self.child_name(f"metric-{metric}"),
                api_version=FLAGGER_API,
                kind="MetricTemplate",
                metadata=self._meta(f"{NAME}-{metric}"),
                spec={"provider": {"type": "prometheus", "address": args.prometheus_url}, "query": query},
                opts=child,
            )
        self._loadtester()
        window = metric_window(s)
        metrics = [
            {"name": "error-rate", "templateRef": {"name": f"{NAME}-error-rate", "namespace": args.namespace},
             "thresholdRange": {"max": s.max_error_percent}, "interval": window},
            {"name": "latency", "templateRef": {"name": f"{NAME}-latency", "namespace": args.namespace},
             "thresholdRange": {"max": s.max_latency_ms}, "interval": window},
        ]
        spec: dict = {
            # Named here, not left to the cluster's Flagger default: traffic is shifted on the Gateway API.
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.deployment_name},
            # Deleting the Canary (release.canary.enabled: false) hands the API back to the Deployment, scaled up
            # and serving, instead of garbage-collecting the primary and its Services under the users.
            "revertOnDeletion": True,
            "progressDeadlineSeconds": s.progress_deadline_seconds,
            "service": {
                "port": args.service_port,
                "targetPort": args.container_port_name,
                "portName": "http",
                "gatewayRefs": [args.gateway_ref],
                "hosts": [args.host],
                "match": flagger_matches(),
            },
            "analysis": {
                "interval": f"{s.interval_seconds}s",
                "threshold": s.threshold,
                "stepWeights": list(s.step_weights),
                "sessionAffinity": {"cookieName": s.session_cookie, "maxAge": s.session_max_age_seconds},
                "metrics": metrics,
                "webhooks": [
                    {"name": "smoke", "type": "pre-rollout", "url": tester_url, "timeout": "60s",
                     "metadata": {"type": "bash", "cmd": smoke_command(canary_url, args.version)}},
                    # `cmd` runs in the background: the webhook answers at once and the load goes on.
                    {"name": "load", "type": "pre-rollout", "url": tester_url, "timeout": "15s",
                     "metadata": {"type": "cmd", "cmd": load_command(s, canary_url)}},
                ],
            },
        }
        if args.autoscaler_name is not None:
            spec["autoscalerRef"] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": args.autoscaler_name}
        k8s.apiextensions.CustomResource(
            self.child_name(NAME),
            api_version=FLAGGER_API,
            kind="Canary",
            # Created means initialized: Flagger sets status.lastPromotedSpec once its primary, Services and HTTPRoute
            # exist (flagger v1.44.0 pkg/controller/scheduler.go setPhaseInitialized → pkg/canary/status.go). Only
            # then may the engine go on to delete the program's own route and Service (switching the canary on);
            # later updates find the field set and pass at once (a Canary has no observedGeneration to wait on).
            metadata={**self._meta(NAME), "annotations": {"pulumi.com/waitFor": "jsonpath={.status.lastPromotedSpec}"}},
            spec=spec,
            opts=child,
        )
        self.register_outputs({})

    def _loadtester(self) -> None:
        a = self._args
        scripts = k8s.core.v1.ConfigMap(
            self.child_name("canary-scripts"),
            metadata=self._meta("canary-scripts"),
            data={"smoke.sh": SMOKE_SCRIPT.read_text()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        container = {
            "name": LOADTESTER,
            "image": LOADTESTER_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["./loadtester", f"-port={LOADTESTER_PORT}", "-log-level=info", "-timeout=1h",
                        # Only this namespace's canaries may run commands here.
                        f"-namespace-regexp=^{a.namespace_name}$"],
            "env": [{"name": "API_KEY_FILE", "value": API_KEY_FILE}],
            "ports": [{"name": "http", "containerPort": LOADTESTER_PORT, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            "securityContext": container_security_context(),
            "livenessProbe": http_probe("/healthz", "http", 5, 20),
            "readinessProbe": http_probe("/healthz", "http", 2, 10),
            "volumeMounts": [{"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
                             {"name": "api-key", "mountPath": str(Path(API_KEY_FILE).parent), "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
        }
        single_pod_service(
            self, LOADTESTER, a.namespace, a.stack, container,
            [{"name": "scripts", "configMap": {"name": scripts.metadata.name}},
             a.api_key.volume("api-key", Path(API_KEY_FILE).name), empty_dir("tmp", "64Mi")],
            80, component="release",
        )

    def _meta(self, name: str) -> dict:
        return {"name": name, "namespace": self._args.namespace, "labels": labels(name, self._args.stack, "release")}
