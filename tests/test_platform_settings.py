"""The platform's settings (settings/platform.py) at their edges: every bound on both sides, every default (a flipped
default changes every stack that omits the key), and each cross-key rule with its exact message."""

from __future__ import annotations

import pytest

from settings.app_config import AppConfigSettings
from settings.platform import (
    ApiSettings,
    AutoscalingSettings,
    ExternalS3Settings,
    KubernetesSettings,
    MilvusBackupSettings,
    PlatformConfig,
    ProbeTiming,
    RedisBackupSettings,
)
from tests.test_values import errors

MINIMAL = {"environment": "dev", "api": {"replicas": 1, "version": "1.0.0"}, "ingress": {"host": "api.example.com"}}
API = {"replicas": 3, "version": "1.0.0"}


def test_platform_defaults_are_the_documented_ones():
    d = PlatformConfig.model_validate(MINIMAL).model_dump()
    assert d["namespace"] == {"name": "real-estate", "pod_security": "restricted"}
    assert d["kubernetes"] == {"context": None, "kubeconfig": None, "render_yaml_to_directory": None,
                               "api_server_cidrs": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], "node_local_dns": None}
    # Data is protected unless a stack says otherwise.
    assert d["protect_data"] is True
    assert d["redis"] == {
        "image": "redis:7.4.11", "exporter_image": "docker.io/oliver006/redis_exporter:v1.88.0",
        "storage": {"size": "2Gi", "storage_class": None},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "maxmemory": "384Mi"}
    assert d["milvus"] == {
        "milvus": {"image": "milvusdb/milvus:v2.6.24", "storage": {"size": "10Gi", "storage_class": None},
                   "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}},
        "etcd": {"image": "quay.io/coreos/etcd:v3.5.33", "storage": {"size": "2Gi", "storage_class": None},
                 "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}},
        "object_store": {"image": "chrislusf/seaweedfs:4.44", "storage": {"size": "20Gi", "storage_class": None},
                         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
        "external_s3": None}
    assert d["app_config"] == AppConfigSettings().model_dump()
    backups = d["backups"]
    assert (backups["enabled"], backups["redis"], backups["milvus"]) == (
        True, {"schedule": "15 * * * *", "retention_days": 7, "storage": {"size": "17Gi", "storage_class": None}},
        {"enabled": True, "schedule": "0 3 * * *", "image": "milvusdb/milvus-backup:v0.5.16", "retention_days": 7})
    assert backups["storage"] == {
        "image": "chrislusf/seaweedfs:4.44", "storage": {"size": "50Gi", "storage_class": None},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}


def test_api_defaults():
    assert ApiSettings(**API).model_dump() == {
        "replicas": 3, "version": "1.0.0", "image": None, "registry": None, "platform": "linux/amd64",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "service_type": "ClusterIP", "load_balancer_source_ranges": ["0.0.0.0/0"], "await_load_balancer": False,
        "autoscaling": None, "pod_disruption_budget_min_available": None,
        "liveness": {"initial_delay_seconds": 30, "period_seconds": 10, "timeout_seconds": 3, "failure_threshold": 3},
        "readiness": {"initial_delay_seconds": 5, "period_seconds": 5, "timeout_seconds": 3, "failure_threshold": 3},
        "database_pool_size": 10}
    assert AutoscalingSettings(min_replicas=2, max_replicas=4).target_cpu_utilization == 70
    assert ExternalS3Settings(endpoint="s3.example.com", bucket="milvus").model_dump() == {
        "endpoint": "s3.example.com", "port": 443, "use_ssl": True, "bucket": "milvus", "region": "us-east-1", "cidrs": []}


@pytest.mark.parametrize("model,base,field,low_ok,low_bad,high_ok,high_bad", [
    (AutoscalingSettings, {"min_replicas": 1, "max_replicas": 1000}, "target_cpu_utilization", 10, 9, 95, 96),
    (AutoscalingSettings, {"max_replicas": 1000}, "min_replicas", 1, 0, 1000, 1001),
    (AutoscalingSettings, {"min_replicas": 1}, "max_replicas", 1, 0, 1000, 1001),
    (ProbeTiming, {"period_seconds": 1}, "initial_delay_seconds", 0, -1, 3600, 3601),
    (ProbeTiming, {"initial_delay_seconds": 0}, "period_seconds", 1, 0, 3600, 3601),
    (ProbeTiming, {"initial_delay_seconds": 0, "period_seconds": 1}, "timeout_seconds", 1, 0, 3600, 3601),
    (ProbeTiming, {"initial_delay_seconds": 0, "period_seconds": 1}, "failure_threshold", 1, 0, 100, 101),
    (ApiSettings, {"version": "1.0.0"}, "replicas", 1, 0, 1000, 1001),
    (ApiSettings, API, "database_pool_size", 1, 0, 100, 101),
    (ApiSettings, {"version": "1.0.0", "replicas": 1000}, "pod_disruption_budget_min_available", 1, 0, 999, 1001),
    (ExternalS3Settings, {"endpoint": "s3.example.com", "bucket": "milvus"}, "port", 1, 0, 65535, 65536),
    (RedisBackupSettings, {}, "retention_days", 1, 0, 365, 366),
    (MilvusBackupSettings, {}, "retention_days", 1, 0, 365, 366),
])
def test_bounds_on_both_sides(model, base, field, low_ok, low_bad, high_ok, high_bad):
    for value in (low_ok, high_ok):
        assert getattr(model(**{**base, field: value}), field) == value
    for value, word in ((low_bad, "greater than or equal to"), (high_bad, "less than or equal to")):
        assert word in errors(model, **{**base, field: value})[0]


@pytest.mark.parametrize("model,base,field,item,low,high", [
    (KubernetesSettings, {}, "api_server_cidrs", "10.0.0.0/8", 1, 16),
    (ApiSettings, API, "load_balancer_source_ranges", "203.0.113.0/24", 1, 32),
    (ExternalS3Settings, {"endpoint": "s3.example.com", "bucket": "milvus"}, "cidrs", "203.0.113.0/24", 0, 32),
])
def test_list_lengths_on_both_sides(model, base, field, item, low, high):
    for count in (low, high):
        assert len(getattr(model(**{**base, field: [item] * count}), field)) == count
    for count in ((low - 1,) if low else ()) + (high + 1,):
        assert errors(model, **{**base, field: [item] * count})


def test_render_target_or_cluster_not_both():
    both = ["Value error, set either renderYamlToDirectory or context/kubeconfig, not both"]
    assert errors(KubernetesSettings, render_yaml_to_directory="out", context="kind") == both
    assert errors(KubernetesSettings, render_yaml_to_directory="out", kubeconfig="/k") == both
    assert KubernetesSettings(render_yaml_to_directory="out").render_yaml_to_directory == "out"
    assert KubernetesSettings(context="kind", kubeconfig="/k").context == "kind"


def test_autoscaling_min_at_most_max():
    assert AutoscalingSettings(min_replicas=4, max_replicas=4).max_replicas == 4
    assert errors(AutoscalingSettings, min_replicas=5, max_replicas=4) == ["Value error, minReplicas 5 exceeds maxReplicas 4"]


def test_image_or_registry_not_both():
    assert errors(ApiSettings, **API, image="registry.example.com/api:1.0.0", registry="registry.example.com") == [
        "Value error, set either image (deploy a pinned image) or registry (build and push), not both"]
    assert ApiSettings(**API, registry="registry.example.com").registry == "registry.example.com"
    assert ApiSettings(**API, image="registry.example.com/api:1.0.0").image == "registry.example.com/api:1.0.0"


def test_a_disruption_budget_leaves_a_pod_to_drain():
    # The budget's own bound lets 1000 through to the rule that names the replica count.
    assert errors(ApiSettings, **{**API, "replicas": 1000}, pod_disruption_budget_min_available=1000) == [
        "Value error, podDisruptionBudgetMinAvailable 1000 must be below the minimum replica count 1000, or no node could ever be drained"]
    assert ApiSettings(**API, pod_disruption_budget_min_available=2).pod_disruption_budget_min_available == 2
    assert errors(ApiSettings, **API, pod_disruption_budget_min_available=3) == [
        "Value error, podDisruptionBudgetMinAvailable 3 must be below the minimum replica count 3, or no node could ever be drained"]
    # With autoscaling, the floor is its minimum, not replicas.
    scaled = {**API, "autoscaling": {"min_replicas": 2, "max_replicas": 6}}
    assert ApiSettings(**scaled, pod_disruption_budget_min_available=1).pod_disruption_budget_min_available == 1
    assert errors(ApiSettings, **scaled, pod_disruption_budget_min_available=2) == [
        "Value error, podDisruptionBudgetMinAvailable 2 must be below the minimum replica count 2, or no node could ever be drained"]


@pytest.mark.parametrize("model,field,choices", [
    ("NamespaceSettings", "pod_security", ["privileged", "baseline", "restricted"]),
    ("ApiSettings", "platform", ["linux/amd64", "linux/arm64"]),
    ("ApiSettings", "service_type", ["ClusterIP", "NodePort", "LoadBalancer"]),
])
def test_every_choice_is_taken_and_its_near_misses_are_not(model, field, choices):
    import settings.platform as platform

    kind = getattr(platform, model)
    extra = API if kind is ApiSettings else {}
    for choice in choices:
        assert getattr(kind(**extra, **{field: choice}), field) == choice
        for near_miss in (choice.upper() if choice != choice.upper() else choice.lower(), choice + "x"):
            assert errors(kind, **extra, **{field: near_miss})[0].startswith("Input should be "), near_miss
