"""The release and routing settings at their edges: every bound on both sides, every pattern with values that
differ late, every default (a flipped default changes every stack that omits the key)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings.release import (
    CanarySettings,
    CertManagerSettings,
    ChartVersion,
    CookieName,
    FlaggerSettings,
    GatewayControllerSettings,
    HeaderName,
    ReleaseSettings,
)
from settings.routing import GatewaySettings, IngressSettings, TlsSettings
from tests.test_values import accepts


def test_canary_defaults_are_the_documented_ones():
    assert CanarySettings().model_dump() == {
        "enabled": False, "step_weights": [10, 50], "interval_seconds": 60, "threshold": 5, "max_error_percent": 5,
        "max_latency_ms": 500, "load_rps": 10, "tester_header": "X-Canary", "session_cookie": "canary-session",
        "session_max_age_seconds": 86400, "progress_deadline_seconds": 600, "prometheus_url": None,
    }
    assert ReleaseSettings().canary == CanarySettings()


def test_addon_defaults_are_the_pins_the_readme_gives():
    assert [(a.install, a.chart_version, a.namespace) for a in
            (GatewayControllerSettings(), CertManagerSettings(), FlaggerSettings())] == [
        (False, "v1.9.0", "envoy-gateway-system"), (False, "v1.21.1", "cert-manager"), (False, "1.44.0", "flagger-system")]


def test_routing_defaults():
    ingress = IngressSettings(host="api.example.com")
    assert (ingress.enabled, ingress.via, ingress.class_name, ingress.controller_namespace, ingress.await_address) == (
        True, "gateway", "nginx", None, False)
    assert ingress.gateway == GatewaySettings(create=True, class_name="eg", name="api")
    assert ingress.gateway.namespace is None and ingress.gateway.section_name is None
    assert ingress.tls == TlsSettings(enabled=False, solver="http01", cluster_issuer="letsencrypt-prod")
    assert ingress.proxy_namespace == "envoy-gateway-system"
    assert IngressSettings(host="api.example.com", via="ingress").proxy_namespace == "ingress-nginx"
    assert IngressSettings(host="api.example.com", controller_namespace="edge").proxy_namespace == "edge"


def test_the_certificate_secret_name_fits_a_dns_label():
    assert IngressSettings(host="api.example.com").tls_secret_name == "api-example-com-tls"
    assert IngressSettings(host="api.example.com", tls={"secretName": "mine"}).tls_secret_name == "mine"


@pytest.mark.parametrize("field,low_ok,low_bad,high_ok,high_bad", [
    ("interval_seconds", 10, 9, 3600, 3601),
    ("threshold", 1, 0, 50, 51),
    ("max_latency_ms", 10, 9, 60000, 60001),
    ("load_rps", 1, 0, 500, 501),
    ("session_max_age_seconds", 60, 59, 604800, 604801),
    ("progress_deadline_seconds", 60, 59, 7200, 7201),
])
def test_canary_bounds_on_both_sides(field, low_ok, low_bad, high_ok, high_bad):
    for value in (low_ok, high_ok):
        assert getattr(CanarySettings(**{field: value}), field) == value
    for value, word in ((low_bad, "greater than or equal to"), (high_bad, "less than or equal to")):
        with pytest.raises(ValidationError) as error:
            CanarySettings(**{field: value})
        assert word in error.value.errors()[0]["msg"]


def test_error_percent_and_step_weights_bounds():
    assert CanarySettings(max_error_percent=50).max_error_percent == 50
    assert CanarySettings(max_error_percent=0.01).max_error_percent == 0.01
    for bad in (0, 50.01):
        with pytest.raises(ValidationError):
            CanarySettings(max_error_percent=bad)
    assert CanarySettings(step_weights=[1, 99]).step_weights == [1, 99]
    assert CanarySettings(step_weights=list(range(1, 11))).step_weights == list(range(1, 11))
    for bad in ([0], [99, 100], list(range(1, 12)), [], [50, 10], [10, 10]):
        with pytest.raises(ValidationError):
            CanarySettings(step_weights=bad)
    # One step back anywhere is enough to refuse them.
    for bad in ([10, 50, 40], [10, 5, 50], [10, 20, 30, 30]):
        with pytest.raises(ValidationError, match=r"stepWeights \[.*\] must increase step by step"):
            CanarySettings(step_weights=bad)


@pytest.mark.parametrize("solver", ["http01", "dns01"])
def test_each_certificate_solver_is_taken(solver):
    assert TlsSettings(solver=solver).solver == solver
    for near_miss in (solver.upper(), solver + "x", "dns-01"):
        with pytest.raises(ValidationError, match="Input should be "):
            TlsSettings(solver=near_miss)


@pytest.mark.parametrize("kind,value,ok", [
    (HeaderName, "X" + "a" * 63, True), (HeaderName, "X" + "a" * 64, False), (HeaderName, "-X", False), (HeaderName, "9-Canary", True),
    (HeaderName, "X-Canary-2", True), (HeaderName, "X_Canary", False), (HeaderName, "X-Canary:", False),
    (CookieName, "c" * 64, True), (CookieName, "c" * 65, False), (CookieName, "Canary_Session-1", True),
    (CookieName, "canary session", False), (CookieName, "", False),
    (ChartVersion, "1.44.0", True), (ChartVersion, "v1.9.0", True), (ChartVersion, "9999.9999.9999", True),
    (ChartVersion, "10000.0.0", False), (ChartVersion, "1.10000.0", False), (ChartVersion, "1.0.10000", False),
    (ChartVersion, "01.0.0", False), (ChartVersion, "1.0", False), (ChartVersion, "1.0.0-rc1", False),
    (ChartVersion, "V1.0.0", False), (ChartVersion, "1.0.0\n", False),
])
def test_release_value_patterns(kind, value, ok):
    assert accepts(kind, value) is ok


def test_a_gateway_is_created_here_or_shared_by_name():
    shared_only = ("Value error, namespace and sectionName name a shared Gateway (create: false); "
                   "a created one lives in the stack's namespace")
    for extra in ({"namespace": "edge"}, {"section_name": "https"}, {"namespace": "edge", "section_name": "https"}):
        with pytest.raises(ValidationError) as error:
            GatewaySettings(create=True, **extra)
        assert [e["msg"] for e in error.value.errors()] == [shared_only]
    with pytest.raises(ValidationError) as error:
        GatewaySettings(create=False, section_name="https")
    assert [e["msg"] for e in error.value.errors()] == ["Value error, a shared Gateway (create: false) needs its namespace"]
    shared = GatewaySettings(create=False, namespace="edge", section_name="https")
    assert (shared.create, shared.namespace, shared.section_name) == (False, "edge", "https")


def test_a_long_hosts_certificate_secret_stays_a_dns_label_of_its_own():
    from settings.routing import IngressSettings
    from settings.values import DNS_LABEL_RE

    # 62 characters, then a dot: cut at 63, the old name ended in '-' (refused by the API server).
    host = "a" * 30 + "." + "b" * 31 + ".example.com"
    name = IngressSettings(host=host).tls_secret_name
    assert DNS_LABEL_RE.fullmatch(name) and len(name) == 63, name
    other = IngressSettings(host=host.replace("example", "example2")).tls_secret_name
    assert other != name and DNS_LABEL_RE.fullmatch(other)
    assert IngressSettings(host="api.example.com").tls_secret_name == "api-example-com-tls"


def test_a_routes_host_is_a_dns_name_never_an_address():
    from settings.routing import IngressSettings

    assert IngressSettings(host="1.example.com").host == "1.example.com"
    for address in ("10.0.0.1", "203.0.113.9"):
        with pytest.raises(ValueError, match=rf"'{address}' is an IP address; a route's host is a DNS name"):
            IngressSettings(host=address)
