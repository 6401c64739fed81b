import pytest

from components.namespace import Namespace, NamespaceArgs
from settings import NamespaceSettings
from tests.harness import run_component, value


@pytest.mark.parametrize("level,protect", [("restricted", True), ("baseline", False)])
def test_namespace_pod_security_and_protection(level, protect):
    rendered, ns = run_component(
        lambda: Namespace("ns", NamespaceArgs(NamespaceSettings(name="estate", pod_security=level), "test", protect))
    )
    assert value(ns.name) == "estate"
    obj = rendered.find("Namespace", "estate")
    labels = obj["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == level
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["real-estate-ai/environment"] == "test"
    registration = rendered.registration("Namespace", "estate")
    assert registration.protect is protect and registration.retain_on_delete is protect
