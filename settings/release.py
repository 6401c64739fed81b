"""Releases: the API's canary analysis (Flagger) and the cluster add-ons a stack may install for itself.

A canary shifts `stepWeights` % of users to the new version, one step per `intervalSeconds` while the analysis
passes, then promotes it; `threshold` failed checks roll it back. Checks (components/canary.py): the user-facing
error rate above `maxErrorPercent`, the p99 latency above `maxLatencyMs`.
"""

from __future__ import annotations

import re
from typing import Annotated, Optional

from pydantic import Field, model_validator

from settings.monitoring import HttpUrl
from settings.values import DnsLabel, Settings, matching

HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# Helm chart versions, with or without the 'v' some projects tag with.
CHART_VERSION_RE = re.compile(r"v?(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")

HeaderName = Annotated[str, matching(HEADER_RE, "an HTTP header name (letters, digits and '-')")]
ChartVersion = Annotated[str, matching(CHART_VERSION_RE, "a chart version like '1.44.0'")]
CookieName = Annotated[str, matching(re.compile(r"[A-Za-z0-9_-]{1,64}"), "a cookie name (letters, digits, '_' and '-')")]
StepWeight = Annotated[int, Field(ge=1, le=99)]


class CanarySettings(Settings):
    enabled: bool = False
    # The share of users on the new version at each step; after the last step it is promoted to everyone.
    step_weights: Annotated[list[StepWeight], Field(min_length=1, max_length=10)] = [10, 50]
    interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    # Failed checks (counted over the whole analysis) before the canary is rolled back.
    threshold: Annotated[int, Field(ge=1, le=50)] = 5
    # The product spec: roll back when more than 5 % of user requests fail.
    max_error_percent: Annotated[float, Field(gt=0, le=50)] = 5
    max_latency_ms: Annotated[int, Field(ge=10, le=60000)] = 500
    # Synthetic requests per second the load tester sends the canary through the analysis, so each check has traffic.
    load_rps: Annotated[int, Field(ge=1, le=500)] = 10
    # Testers reach the canary with `<testerHeader>: always` (or the cookie `<testerHeader>=always`).
    tester_header: HeaderName = "X-Canary"
    # A user who met the canary keeps meeting it (this cookie) until the release ends.
    session_cookie: CookieName = "canary-session"
    session_max_age_seconds: Annotated[int, Field(ge=60, le=604800)] = 86400
    # How long a step may wait for the canary's pods before the release fails.
    progress_deadline_seconds: Annotated[int, Field(ge=60, le=7200)] = 600
    # The Prometheus the analysis queries; unset: monitoring.prometheusUrl, or the one monitoring.install runs.
    prometheus_url: Optional[HttpUrl] = None

    @model_validator(mode="after")
    def _increasing(self) -> "CanarySettings":
        weights = self.step_weights
        if any(later <= earlier for earlier, later in zip(weights, weights[1:])):
            raise ValueError(f"stepWeights {weights} must increase step by step")
        return self


class ReleaseSettings(Settings):
    canary: CanarySettings = CanarySettings()


class AddonSettings(Settings):
    install: bool = False
    chart_version: ChartVersion
    # Where the controller runs (installed here or by the cluster's owner): the NetworkPolicies admit it from there.
    namespace: DnsLabel


class GatewayControllerSettings(AddonSettings):
    """Envoy Gateway: serves the Gateway API objects (ingress.via: gateway); its chart charts/gateway-helm."""

    chart_version: ChartVersion = "v1.9.0"
    namespace: DnsLabel = "envoy-gateway-system"


class CertManagerSettings(AddonSettings):
    """cert-manager: certificates for the Gateway's or the Ingress' TLS listener."""

    chart_version: ChartVersion = "v1.21.1"
    namespace: DnsLabel = "cert-manager"


class FlaggerSettings(AddonSettings):
    """Flagger: runs the canary analysis (release.canary)."""

    chart_version: ChartVersion = "1.44.0"
    namespace: DnsLabel = "flagger-system"


class ClusterAddonsSettings(Settings):
    """Controllers a cluster runs once, for every stack on it. A stack installs them where it owns the cluster
    (dev on kind); shared clusters leave install off and name where their owners run them."""

    gateway_controller: GatewayControllerSettings = GatewayControllerSettings()
    cert_manager: CertManagerSettings = CertManagerSettings()
    flagger: FlaggerSettings = FlaggerSettings()
