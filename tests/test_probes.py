"""The outside-in probes as each stack renders them (components/probes.py): test and prod probe their public URL, dev
does not; the Probe objects name the exporter's Service and modules its configuration defines; the configuration
holds no secret and the pod reads only the API key from the API's Secret. The probes against the real exporter and
API: tests/monitoring/test_probes.py."""

from __future__ import annotations

import json

import pytest

from components.probes import KEY_FILE, NAME, PORT, public_url
from settings.monitoring import ProbeSettings
from settings.routing import IngressSettings
from tests.harness import decoded_config


def _of(rendered, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == kind}


def test_dev_runs_no_probe(rendered_stacks):
    dev = rendered_stacks["dev"]
    assert _of(dev, "Probe") == {} and NAME not in _of(dev, "Deployment")


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_the_public_url_is_probed_through_the_exporters_service(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    probes = _of(rendered, "Probe")
    assert set(probes) == {"api-public-ready", "api-public-recommendation"}
    host = decoded_config(stack)["real-estate-ai:ingress"]["host"]
    config = json.loads(rendered.find("ConfigMap", NAME)["data"]["blackbox.yml"])
    service = rendered.find("Service", NAME)
    assert [p["port"] for p in service["spec"]["ports"]] == [PORT]
    namespace = service["metadata"]["namespace"]
    expected = {"api-public-ready": ("ready", [f"https://{host}/ready", f"https://{host}/version"]),
                "api-public-recommendation": ("recommendation", [f"https://{host}/v1/recommendations"])}
    for name, probe in probes.items():
        spec = probe["spec"]
        module, targets = expected[name]
        assert spec["module"] == module and module in config["modules"]
        assert spec["targets"]["staticConfig"] == {"static": targets, "labels": {"probe": module}}
        assert spec["prober"] == {"url": f"{NAME}.{namespace}.svc.cluster.local:{PORT}", "path": "/probe"}
        assert spec["jobName"] == "blackbox" and spec["interval"] == "30s"
        # The cluster's Prometheus selects Probes by the stack's selector labels.
        assert probe["metadata"]["labels"]["release"] == "kube-prometheus"
    # Over https a plain-http answer fails the probe.
    assert all(m["http"]["fail_if_not_ssl"] for m in config["modules"].values())


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_the_key_is_a_file_from_the_apis_secret_and_never_in_the_configuration(stack, rendered_stacks):
    rendered = rendered_stacks[stack]
    text = rendered.find("ConfigMap", NAME)["data"]["blackbox.yml"]
    api_secret = next(o for o in rendered.objects if o["kind"] == "Secret" and "api-key" in o.get("stringData", o.get("data", {})))
    key = api_secret.get("stringData", {}).get("api-key")
    assert key and key not in text
    assert json.loads(text)["modules"]["recommendation"]["http"]["http_headers"] == {"X-API-Key": {"files": [KEY_FILE]}}
    pod = rendered.find("Deployment", NAME)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == api_secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "api-key", "path": "api-key"}]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"{mounts[volume['name']]}/api-key" == KEY_FILE
    assert container["image"] == ProbeSettings().image
    assert not any("api-key" in str(e) for e in container.get("env", []))


def test_the_url_setting_wins_and_the_ingress_gives_the_scheme():
    ingress = IngressSettings(host="api.example.com")
    assert public_url(ProbeSettings(), ingress) == "http://api.example.com"
    assert public_url(ProbeSettings(), IngressSettings(host="api.example.com", tls={"enabled": True})) == "https://api.example.com"
    assert public_url(ProbeSettings(url="https://edge.example.com:8443/base/"), ingress) == "https://edge.example.com:8443/base"


def test_no_recommendation_is_expected_where_not_everyone_gets_one(rendered_stacks):
    from components.platform import recommendation_for_everyone
    from components.probes import probes
    from settings import PlatformConfig
    from settings.loading import plain_values
    from tests.harness import decoded_config

    assert list(probes("https://h", recommendation=False)) == ["api-public-ready"]
    raw = {k.removeprefix("real-estate-ai:"): v for k, v in decoded_config("prod").items() if k.startswith("real-estate-ai:")}
    config = PlatformConfig.model_validate(plain_values(raw))
    assert recommendation_for_everyone(config)
    off = config.model_copy(update={"app_config": config.app_config.model_copy(
        update={"features": {**config.app_config.features, "recommendation": False}})})
    assert not recommendation_for_everyone(off)
    grey = config.app_config.grey_release.model_copy(update={"enabled": True, "percent": 10, "features": ["recommendation"]})
    behind = config.model_copy(update={"app_config": config.app_config.model_copy(update={"grey_release": grey})})
    assert not recommendation_for_everyone(behind)


def test_the_recommendation_probe_needs_an_item_and_says_it_is_synthetic():
    import re

    from components.probes import blackbox_config

    http = blackbox_config(https=True)["modules"]["recommendation"]["http"]
    (pattern,) = http["fail_if_body_not_matches_regexp"]
    assert re.search(pattern, '{"model":"hybrid","items":[{"listing_id":1}]}')
    assert not re.search(pattern, '{"model":"hybrid","items":[]}') and not re.search(pattern, '{"items": [ ]}')
    assert http["headers"]["X-Synthetic"] == "blackbox"
    # No redirect: it would carry the key to the host it names.
    assert all(m["http"]["follow_redirects"] is False for m in blackbox_config(https=True)["modules"].values())
