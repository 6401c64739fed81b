"""settings/rules.py at its edges: each cross-key rule just inside and just outside its limit, with the numbers its
message gives (the rules run on validated config, so these build PlatformConfig directly)."""

from __future__ import annotations

import pytest

from settings import PlatformConfig, rules
from tests.harness import DELETE, decoded_config, with_value

KEY = "real-estate-ai:"


def problems(stack: str, changes: dict) -> list[str]:
    config = decoded_config(stack)
    for path, new in changes.items():
        config = with_value(config, path, new)
    plain = {key.removeprefix(KEY): value for key, value in config.items() if key.startswith(KEY)}
    return rules.problems(PlatformConfig.model_validate(plain), stack)


def test_the_direct_connection_budget_at_its_limit():
    # dev: one API pod × (pool 10 + 1 probe) = 11, directly to PostgreSQL, after 20 reserved.
    assert problems("dev", {"postgres.maxConnections": 31}) == []
    assert problems("dev", {"postgres.maxConnections": 30}) == [
        "real-estate-ai:api.databasePoolSize: 1 API pods × (10 + 1 probe) = 11 connections, above the 10 that "
        "postgres.maxConnections 30 leaves after 20 reserved; lower the pool, raise maxConnections or enable PgBouncer"]


def test_pgbouncers_server_connections_at_their_limit():
    # test: 2 PgBouncer pods × 40 = 80 server connections against maxConnections 100 − 20 reserved.
    assert problems("test", {"postgres.pgbouncer.defaultPoolSize": 40}) == []
    assert problems("test", {"postgres.pgbouncer.defaultPoolSize": 41}) == [
        "real-estate-ai:postgres.pgbouncer.defaultPoolSize: 2 PgBouncer pods × 41 server connections = 82, above the 80 "
        "that postgres.maxConnections 100 leaves after 20 reserved"]


def test_the_redis_snapshot_volume_at_its_limit():
    # 24 snapshots a day × 7 days + 1, and 3 more while one is written, each a quarter of 384Mi, plus 5 %:
    # 172 × 402653184 // 4 × 105 // 100 = 18179791257 bytes.
    changes = {"backups.redis.retentionDays": 7, "backups.redis.schedule": "15 * * * *", "redis.maxmemory": "384Mi",
               "redis.resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}}
    assert problems("dev", {**changes, "backups.redis.storage": {"size": "18179791257"}}) == []
    assert problems("dev", {**changes, "backups.redis.storage": {"size": "18179791256"}}) == [
        "real-estate-ai:backups.redis.storage.size: 18179791256 cannot hold 169 snapshots (24 a day for 7 days, plus the "
        "boundary one) and the one being written, each up to a quarter of redis.maxmemory 384Mi; it needs at least 17Gi"]


def test_the_archive_queue_at_half_the_volume():
    assert problems("dev", {"backups.postgres.archivePushQueueMax": "1Gi", "postgres.storage": {"size": "2Gi"}}) == []
    assert problems("dev", {"backups.postgres.archivePushQueueMax": "1073741825", "postgres.storage": {"size": "2Gi"}}) == [
        "real-estate-ai:backups.postgres.archivePushQueueMax: 1073741825 is more than half of postgres.storage.size 2Gi; "
        "pg_wal shares that volume with the data"]


def test_the_operator_namespace_at_63_characters():
    # <namespace>-pg-operator: 51 + 12 characters fit a namespace name, 52 + 12 do not.
    assert problems("dev", {"namespace.name": "n" * 51}) == []
    assert problems("dev", {"namespace.name": "n" * 52}) == [
        f"real-estate-ai:postgres.operator.namespace: '{'n' * 52}-pg-operator' is longer than 63; set a shorter one"]


@pytest.mark.parametrize("changes,expected", [
    ({"namespace.name": "default"}, ["real-estate-ai:namespace.name: 'default' is Kubernetes' own namespace; this stack "
                                     "creates and deletes its namespaces, choose another"]),
    ({"namespace.name": "kube-system"}, ["real-estate-ai:namespace.name: 'kube-system' is Kubernetes' own namespace; this "
                                         "stack creates and deletes its namespaces, choose another"]),
    ({"postgres.operator.namespace": "kube-pg"}, ["real-estate-ai:postgres.operator.namespace: 'kube-pg' is Kubernetes' own "
                                                  "namespace; this stack creates and deletes its namespaces, choose another"]),
    ({"postgres.operator.namespace": "real-estate-dev"}, [
        "real-estate-ai:postgres.operator.namespace: 'real-estate-dev' is also namespace.name; each namespace this stack "
        "creates needs its own name"]),
    ({"monitoring.install": {"enabled": False}, "monitoring.namespace": "real-estate-dev"}, [
        "real-estate-ai:monitoring.namespace: 'real-estate-dev' is also namespace.name; Prometheus runs in its own "
        "namespace, and the NetworkPolicies admit every pod of that namespace as Prometheus"]),
    ({"monitoring.namespace": "real-estate-dev"}, [
        "real-estate-ai:monitoring.namespace: 'real-estate-dev' is also namespace.name; each namespace this stack "
        "creates needs its own name"]),
    ({"monitoring.install": {"enabled": True}, "monitoring.namespace": "real-estate-dev-pg-operator"}, [
        "real-estate-ai:monitoring.namespace: 'real-estate-dev-pg-operator' is also postgres.operator.namespace; each "
        "namespace this stack creates needs its own name"]),
    ({"monitoring.install": {"enabled": True}, "monitoring.namespace": "kube-monitoring"}, [
        "real-estate-ai:monitoring.namespace: 'kube-monitoring' is Kubernetes' own namespace; this stack creates and "
        "deletes its namespaces, choose another"]),
    # Not this stack's to create or delete: another team's Prometheus may live in kube-system, an operator elsewhere
    # may watch ours.
    ({"monitoring.install": {"enabled": False}, "monitoring.namespace": "kube-system"}, []),
    ({"postgres.operator": {"install": False, "namespace": "default"}}, []),
    ({"monitoring.enabled": False, "monitoring.install": {"enabled": False}, "monitoring.namespace": "real-estate-dev"}, []),
    ({"namespace.name": "defaults"}, []), ({"namespace.name": "kubernetes"}, []),
    # A cluster add-on this stack installs (Helm creates its namespace) shares none of them.
    ({"clusterAddons.gatewayController.namespace": "real-estate-dev", "ingress.controllerNamespace": "real-estate-dev"}, [
        "real-estate-ai:clusterAddons.gatewayController.namespace: 'real-estate-dev' is also namespace.name; each "
        "namespace this stack creates needs its own name"]),
    ({"clusterAddons.flagger.namespace": "real-estate-dev-pg-operator"}, [
        "real-estate-ai:clusterAddons.flagger.namespace: 'real-estate-dev-pg-operator' is also postgres.operator.namespace; "
        "each namespace this stack creates needs its own name"]),
    ({"clusterAddons.certManager": {"install": False, "namespace": "real-estate-dev"}}, []),
    # The operator's namespace derived from the platform's: 'kube-pg-operator' is Kubernetes'.
    ({"namespace.name": "kube"}, ["real-estate-ai:postgres.operator.namespace: 'kube-pg-operator' is Kubernetes' own "
                                  "namespace; this stack creates and deletes its namespaces, choose another"]),
])
def test_the_namespaces_a_stack_creates_are_its_own(changes, expected):
    assert problems("dev", {"namespace.name": "real-estate-dev", **changes}) == expected


def test_prod_floors_themselves_pass():
    # Autoscaling down to 2 (with a budget below it), on-call reachable by any one instant channel.
    assert problems("prod", {"api.autoscaling.minReplicas": 2, "api.podDisruptionBudgetMinAvailable": 1}) == []
    for channel in ({"sms": ["+8613800000001"]}, {"wecomUsers": ["oncall"]}, {"dingtalk": True}):
        on_call = {"emails": ["oncall@example.com"], **channel}
        assert problems("prod", {"monitoring.alerting.onCall": on_call}) == [], channel
    assert problems("prod", {"monitoring.alerting.onCall": {"emails": ["oncall@example.com"]}}) == [
        "real-estate-ai:monitoring.alerting.onCall: prod's on-call needs an instant channel (sms, wecomUsers or dingtalk), "
        "not e-mail alone: P0 means act now"]


def test_rendering_to_files_is_for_dev_only():
    assert problems("dev", {"kubernetes.renderYamlToDirectory": "build/yaml", "kubernetes.context": DELETE}) == []
    assert problems("test", {"kubernetes.renderYamlToDirectory": "build/yaml", "kubernetes.context": DELETE}) == [
        "real-estate-ai:kubernetes.renderYamlToDirectory: only for dev; on a stack that was deployed it replaces the "
        "provider and deletes every object from the cluster"]


@pytest.mark.parametrize("changes,expected", [
    ({"backups.offsite.enabled": False}, "postgres.restoreFrom: restores from the off-site bucket; backups.offsite must be enabled"),
    ({"backups.enabled": False}, "postgres.restoreFrom: restores from the off-site bucket; backups.offsite must be enabled"),
])
def test_restoring_needs_both_backups_and_the_off_site_copy(changes, expected):
    found = problems("test", {"postgres.restoreFrom": {"path": "/old"}, **changes})
    assert f"{KEY}{expected}" in found, found
    assert problems("test", {"postgres.restoreFrom": {"path": "/old"}}) == []


@pytest.mark.parametrize("changes, expected", [
    ({"backups.offsite.enabled": False}, ["postgres.standby: a standby replays the primary's off-site repository; "
                                          "backups.offsite must name it (the primary stack's bucket and path)"]),
    ({"backups.enabled": False}, ["postgres.standby: a standby replays the primary's off-site repository; "
                                  "backups.offsite must name it (the primary stack's bucket and path)"]),
    ({"postgres.restoreFrom": {"path": "/old"}},
     ["postgres.standby: and postgres.restoreFrom are two ways to start a cluster; choose one"]),
    ({}, []),
])
def test_a_standby_needs_the_off_site_copy_and_no_restore(changes, expected):
    found = problems("prod", {"postgres.standby": {"host": "db.example.com"}, **changes})
    assert [p for p in found if p.startswith(f"{KEY}postgres.standby")] == [KEY + e for e in expected]
    assert not [p for p in problems("prod", changes) if "postgres.standby" in p]


def test_a_grey_release_needs_a_share_of_users_above_0():
    enabled = {"appConfig.greyRelease.enabled": True, "appConfig.greyRelease.features": ["valuation"]}
    assert problems("dev", {**enabled, "appConfig.greyRelease.percent": 1}) == []
    assert problems("dev", {**enabled, "appConfig.greyRelease.percent": 0}) == [
        "real-estate-ai:appConfig.greyRelease.percent: must be above 0 when the grey release is enabled"]


def test_a_shared_clusters_monitoring_is_named_and_a_laptops_need_not_be():
    assert problems("test", {"monitoring.alertmanagerUrl": DELETE}) == [
        "real-estate-ai:monitoring.alertmanagerUrl: name the cluster's Alertmanager Service "
        "(http://<service>.<namespace>.svc:<port>): every release asks it whether it took this stack's monitoring "
        "(or set monitoring.install.enabled: true)"]
    assert problems("dev", {"monitoring.install.enabled": False}) == []


def test_an_enabled_ab_test_needs_users_in_variant_b():
    enabled = {"appConfig.abTest.enabled": True, "appConfig.abTest.variantB.recommendationModel": "content"}
    assert problems("dev", {**enabled, "appConfig.abTest.variantBPercent": 1}) == []
    assert problems("dev", {**enabled, "appConfig.abTest.variantBPercent": 0}) == [
        "real-estate-ai:appConfig.abTest.variantBPercent: must be above 0 when the A/B test is enabled"]


def test_prod_probes_its_public_url_and_a_probe_needs_one():
    assert problems("prod", {"monitoring.probes.enabled": False}) == [
        "real-estate-ai:monitoring.probes.enabled: prod is watched from outside too (the public URL through the Gateway)"]
    no_ingress = {"ingress.enabled": False, "ingress.tls.enabled": False}
    assert "real-estate-ai:monitoring.probes.url: with ingress.enabled false there is no public host to probe; name the URL users reach" in problems("test", no_ingress)
    assert not any("probes" in p for p in problems("test", {**no_ingress, "monitoring.probes.url": "https://api.example.com"}))
    assert problems("dev", {"monitoring.probes": {"enabled": True}, "monitoring.enabled": False,
                            "monitoring.install": {"enabled": False}}) == [
        "real-estate-ai:monitoring.probes.enabled: the probes are scraped by the cluster's Prometheus; they need monitoring.enabled true"]


def test_a_full_backup_keeps_the_others_out_of_its_window():
    # test: full 01:00, off-site full 03:00, incrementals at :30 except 01:30 and 03:30; the window is 60 minutes.
    assert problems("test", {}) == []
    assert problems("test", {"backups.postgres.incrementalSchedule": "30 0-23 * * *"}) == [
        "real-estate-ai:backups.postgres.incrementalSchedule: '30 0-23 * * *' starts within 60 minutes after "
        "backups.postgres.fullSchedule '0 1 * * *'; the full still holds pgBackRest's lock then "
        "(backups.postgres.fullBackupWindowMinutes)",
        "real-estate-ai:backups.postgres.incrementalSchedule: '30 0-23 * * *' starts within 60 minutes after "
        "backups.postgres.offsiteFullSchedule '0 3 * * *'; the full still holds pgBackRest's lock then "
        "(backups.postgres.fullBackupWindowMinutes)"]
    assert problems("test", {"backups.postgres.offsiteFullSchedule": "30 1 * * *"}) == [
        "real-estate-ai:backups.postgres.offsiteFullSchedule: '30 1 * * *' starts within 60 minutes after "
        "backups.postgres.fullSchedule '0 1 * * *'; the full still holds pgBackRest's lock then "
        "(backups.postgres.fullBackupWindowMinutes)"]
    # Without the off-site repository its full schedule is no backup of this stack's.
    assert problems("test", {"backups.offsite.enabled": False, "backups.postgres.incrementalSchedule": "30 0,1,2,4-23 * * *"}) == [
        "real-estate-ai:backups.postgres.incrementalSchedule: '30 0,1,2,4-23 * * *' starts within 60 minutes after "
        "backups.postgres.fullSchedule '0 1 * * *'; the full still holds pgBackRest's lock then "
        "(backups.postgres.fullBackupWindowMinutes)"]


@pytest.mark.parametrize("stack,environment,tied", [
    ("dev", "test", "dev"), ("test", "prod", "test"), ("prod", "dev", "prod"),
    ("dev-laptop", "prod", "dev"), ("test-eu", "dev", "test"), ("prod-eu", "dev", "prod"), ("prod-cn-north", "test", "prod"),
    # Other names are not tied to an environment: 'production' and 'eu-prod' do not start with 'prod-'.
    ("production", "dev", None), ("eu-prod", "dev", None), ("staging", "prod", None),
])
def test_a_stack_named_for_an_environment_is_that_environment(stack, environment, tied):
    config = decoded_config("dev")
    plain = {key.removeprefix(KEY): value for key, value in config.items() if key.startswith(KEY)}
    found = [p for p in rules.problems(PlatformConfig.model_validate({**plain, "environment": environment}), stack)
             if p.startswith(f"{KEY}environment")]
    assert found == ([f"real-estate-ai:environment: is '{environment}' but stack '{stack}' is a {tied} stack"] if tied else [])


def test_a_shared_clusters_prometheus_is_named_too():
    assert problems("test", {"monitoring.prometheusUrl": DELETE}) == [
        "real-estate-ai:monitoring.prometheusUrl: name the cluster's Prometheus Service "
        "(http://<service>.<namespace>.svc:<port>): every release asks it whether it took this stack's monitoring "
        "(or set monitoring.install.enabled: true)"]


def test_an_installed_gateway_controller_runs_the_proxies_the_routes_name():
    # dev installs Envoy Gateway in envoy-gateway-system and routes through a Gateway.
    assert problems("dev", {}) == []
    assert problems("dev", {"ingress.controllerNamespace": "gateway-proxies"}) == [
        "real-estate-ai:ingress.controllerNamespace: is 'gateway-proxies' but the installed gateway controller runs its "
        "proxies in clusterAddons.gatewayController.namespace 'envoy-gateway-system'"]
    assert problems("dev", {"ingress.controllerNamespace": "gateway-proxies", "ingress.via": "ingress"}) == []


@pytest.mark.parametrize("tester,grey", [("X-Grey-Release", "X-Grey-Release"), ("x-grey-release", "X-Grey-Release"),
                                         ("X-Canary", "x-CANARY")])
def test_the_canary_tester_header_is_not_the_grey_release_header_in_any_case(tester, grey):
    assert problems("dev", {"release.canary.testerHeader": tester, "appConfig.greyRelease.header": grey}) == [
        f"real-estate-ai:release.canary.testerHeader: '{tester}' is already appConfig.greyRelease.header"]
