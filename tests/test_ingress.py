import pytest

from components.ingress import Ingress, IngressArgs
from settings import IngressSettings, TlsSettings
from tests.harness import run_component, value


def _ingress(**settings):
    ingress_settings = IngressSettings(**{"host": "api.estate.example.com", **settings})
    return Ingress("ingress", IngressArgs("estate", "test", ingress_settings, "api", 80))


def test_plain_http_ingress():
    rendered, ingress = run_component(_ingress)
    obj = rendered.find("Ingress", "api")
    assert obj["spec"]["ingressClassName"] == "nginx"
    rule = obj["spec"]["rules"][0]
    assert rule["host"] == "api.estate.example.com"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "api", "port": {"number": 80}}}
    assert "tls" not in obj["spec"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/v1", "Prefix"), ("/version", "Exact"), ("/ready", "Exact")]
    assert "cert-manager.io/cluster-issuer" not in obj["metadata"]["annotations"]
    assert value(ingress.url) == "http://api.estate.example.com"


def test_tls_through_cert_manager():
    rendered, ingress = run_component(lambda: _ingress(tls=TlsSettings(enabled=True, cluster_issuer="letsencrypt-prod")))
    obj = rendered.find("Ingress", "api")
    assert obj["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert obj["spec"]["tls"] == [{"hosts": ["api.estate.example.com"], "secretName": "api-estate-example-com-tls"}]
    assert value(ingress.url) == "https://api.estate.example.com"


@pytest.mark.parametrize("await_address,skip", [(False, True), (True, False)])
def test_await_is_deliberate(await_address, skip):
    rendered, _ = run_component(lambda: _ingress(await_address=await_address))
    annotations = rendered.find("Ingress", "api")["metadata"]["annotations"]
    assert (annotations.get("pulumi.com/skipAwait") == "true") is skip


@pytest.mark.parametrize("path,public", [
    ("/v1/recommendations", True), ("/v1/valuations/1/feedback", True), ("/version", True), ("/ready", True),
    ("/metrics", False), ("/docs", False), ("/openapi.json", False), ("/health", False), ("/", False), ("/v1", True),
    ("/versions", False),
])
def test_internal_endpoints_are_off_the_public_route(path, public):
    """Matched as Kubernetes defines Prefix (element-wise on '/') and Exact."""
    rendered, _ = run_component(_ingress)
    paths = rendered.find("Ingress", "api")["spec"]["rules"][0]["http"]["paths"]

    def matches(rule):
        if rule["pathType"] == "Exact":
            return path == rule["path"]
        prefix = rule["path"].rstrip("/").split("/")
        return path.split("/")[: len(prefix)] == prefix

    assert any(matches(rule) for rule in paths) is public
