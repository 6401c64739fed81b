"""Rules that span more than one key: prod guardrails, the PostgreSQL connection budget, backup schedules.

Each problem names the key path to change. `problems` runs only on a config that passed field validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.guardrails.contract import PROD_API_REPLICAS, PROD_AUTOSCALING_MIN
from settings import cron
from settings.values import byte_count

if TYPE_CHECKING:
    from settings import PlatformConfig

PROJECT = "real-estate-ai"
# Connections PostgreSQL keeps for everything but the API: superuser reserve, the operator, Patroni,
# pgBackRest, exporters, and a person with psql during an incident.
RESERVED_CONNECTIONS = 20
# The product spec's retention floor for prod.
PROD_FULL_RETENTION_DAYS = 30
PROD_POSTGRES_INSTANCES = 3


def _key(path: str) -> str:
    return f"{PROJECT}:{path}"


def operator_namespace(config: "PlatformConfig") -> str:
    """Where the PostgreSQL operator runs: its own setting, or one derived from the platform's namespace."""
    return config.postgres.operator.namespace or f"{config.namespace.name}-pg-operator"


def created_namespaces(config: "PlatformConfig") -> dict[str, str]:
    """Key path → name of every Namespace this stack creates (and deletes with `pulumi destroy`)."""
    created = {"namespace.name": config.namespace.name}
    if config.postgres.operator.install:
        created["postgres.operator.namespace"] = operator_namespace(config)
    if config.monitoring.enabled and config.monitoring.install.enabled:
        created["monitoring.namespace"] = config.monitoring.namespace
    return created


def installed_addon_namespaces(config: "PlatformConfig") -> dict[str, str]:
    """Key path → namespace of each cluster add-on this stack installs (Helm creates it and never deletes it)."""
    addons = config.cluster_addons
    return {f"clusterAddons.{key}.namespace": addon.namespace
            for key, addon in (("gatewayController", addons.gateway_controller), ("certManager", addons.cert_manager),
                               ("flagger", addons.flagger)) if addon.install}


def _kubernetes_own(namespace: str) -> bool:
    return namespace == "default" or namespace.startswith("kube-")


def namespace_rules(config: "PlatformConfig") -> list[str]:
    """Namespaces the stack creates are its own: not Kubernetes' ('default', 'kube-*': the API server refuses to delete
    them, and 'kube-' is reserved for the system), and never one name for two of them (the second Namespace would fail
    to create, or one `pulumi destroy` would delete the other's objects). The monitoring namespace is another team's
    even where this stack does not create it: sharing the platform's would let the platform's pods pass for Prometheus
    in every NetworkPolicy."""
    result = []
    created = created_namespaces(config)
    for path, name in created.items():
        derived_from_a_flagged_name = path == "postgres.operator.namespace" and config.postgres.operator.namespace is None \
            and _kubernetes_own(config.namespace.name)
        if _kubernetes_own(name) and not derived_from_a_flagged_name:
            result.append(f"{_key(path)}: '{name}' is Kubernetes' own namespace; this stack creates and deletes its namespaces, choose another")
    owners: dict[str, str] = {}
    # An add-on sharing a namespace the stack creates would go with it on `pulumi destroy`, and the NetworkPolicies
    # that admit the add-on would admit every pod of that namespace.
    for path, name in {**created, **installed_addon_namespaces(config)}.items():
        if name in owners:
            result.append(f"{_key(path)}: '{name}' is also {owners[name]}; each namespace this stack creates needs its own name")
        owners.setdefault(name, path)
    if config.monitoring.enabled and "monitoring.namespace" not in created and config.monitoring.namespace == config.namespace.name:
        result.append(f"{_key('monitoring.namespace')}: '{config.monitoring.namespace}' is also namespace.name; Prometheus "
                      f"runs in its own namespace, and the NetworkPolicies admit every pod of that namespace as Prometheus")
    return result


def max_api_pods(config: "PlatformConfig") -> int:
    api = config.api
    return max(api.replicas, api.autoscaling.max_replicas if api.autoscaling else 0)


def connection_budget(config: "PlatformConfig") -> list[str]:
    """Every connection the API can open must find a server slot, through PgBouncer or directly."""
    pg = config.postgres
    available = pg.max_connections - RESERVED_CONNECTIONS
    # Each pod holds its pool plus one connection of its own for the health probe (app/real_estate_api/health.py).
    per_pod = config.api.database_pool_size + 1
    api_connections = max_api_pods(config) * per_pod
    problems = []
    if pg.pgbouncer.enabled:
        bouncer = pg.pgbouncer
        server_side = bouncer.replicas * bouncer.default_pool_size
        if server_side > available:
            problems.append(
                f"{_key('postgres.pgbouncer.defaultPoolSize')}: {bouncer.replicas} PgBouncer pods × {bouncer.default_pool_size} "
                f"server connections = {server_side}, above the {available} that postgres.maxConnections "
                f"{pg.max_connections} leaves after {RESERVED_CONNECTIONS} reserved"
            )
        # The Service may send every client to one PgBouncer pod.
        if api_connections > bouncer.max_client_conn:
            problems.append(
                f"{_key('postgres.pgbouncer.maxClientConn')}: {max_api_pods(config)} API pods × (databasePoolSize "
                f"{config.api.database_pool_size} + 1 probe) = {api_connections} client connections, above maxClientConn "
                f"{bouncer.max_client_conn}"
            )
    elif api_connections > available:
        problems.append(
            f"{_key('api.databasePoolSize')}: {max_api_pods(config)} API pods × ({config.api.database_pool_size} + 1 probe) = "
            f"{api_connections} connections, above the {available} that postgres.maxConnections {pg.max_connections} "
            f"leaves after {RESERVED_CONNECTIONS} reserved; lower the pool, raise maxConnections or enable PgBouncer"
        )
    return problems


def backup_schedules(config: "PlatformConfig") -> list[str]:
    """pgBackRest takes one backup lock per cluster: two backups starting together make one of them fail."""
    pg = config.backups.postgres
    schedules = {"backups.postgres.fullSchedule": pg.full_schedule, "backups.postgres.incrementalSchedule": pg.incremental_schedule}
    if config.backups.offsite.enabled:
        schedules["backups.postgres.offsiteFullSchedule"] = pg.offsite_full_schedule
    problems = []
    keys = list(schedules)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            if cron.collide(schedules[first], schedules[second]):
                problems.append(
                    f"{_key(second)}: '{schedules[second]}' starts in the same minute as {first} '{schedules[first]}'; "
                    f"pgBackRest runs one backup at a time, so one of them would fail"
                )
    # A full runs for a while: nothing else starts within the window after it.
    window = pg.full_backup_window_minutes
    for full in ("backups.postgres.fullSchedule", "backups.postgres.offsiteFullSchedule"):
        for other in keys:
            if full not in schedules or other == full or cron.collide(schedules[full], schedules[other]):
                continue
            if cron.starts_within(schedules[full], schedules[other], window):
                problems.append(
                    f"{_key(other)}: '{schedules[other]}' starts within {window} minutes after {full} "
                    f"'{schedules[full]}'; the full still holds pgBackRest's lock then (backups.postgres.fullBackupWindowMinutes)"
                )
    return problems


# A gzipped RDB snapshot is assumed to be at most this fraction of Redis' maxmemory (RDB is denser than memory,
# and gzip halves it again); measure and lower backups.redis.storage where the data compresses better.
SNAPSHOT_FRACTION_OF_MAXMEMORY = 4


def redis_backup_room(config: "PlatformConfig") -> list[str]:
    """The snapshot volume must hold every snapshot the retention keeps, plus the one being written."""
    r = config.backups.redis
    schedule = cron.parse(r.schedule)
    per_day = len(schedule.hours) * len(schedule.minutes)
    # Kept: a day's runs × days, plus the one at the retention boundary (find -mmin rounds up); while one is taken,
    # its raw RDB (up to twice a compressed one) and its gzip sit beside them; 5 % for the filesystem.
    kept = per_day * r.retention_days + 1
    units = kept + 3
    needed = units * byte_count(config.redis.maxmemory) // SNAPSHOT_FRACTION_OF_MAXMEMORY * 105 // 100
    if byte_count(r.storage.size) < needed:
        return [
            f"{_key('backups.redis.storage.size')}: {r.storage.size} cannot hold {kept} snapshots ({per_day} a day for "
            f"{r.retention_days} days, plus the boundary one) and the one being written, each up to a quarter of "
            f"redis.maxmemory {config.redis.maxmemory}; it needs at least {-(-needed // 2**30)}Gi"
        ]
    return []


def prod_guardrails(config: "PlatformConfig") -> list[str]:
    problems = []
    api, pg = config.api, config.postgres
    if api.replicas < PROD_API_REPLICAS:
        problems.append(f"{_key('api.replicas')}: is {api.replicas}; prod needs at least {PROD_API_REPLICAS} API replicas")
    if api.autoscaling and api.autoscaling.min_replicas < PROD_AUTOSCALING_MIN:
        problems.append(f"{_key('api.autoscaling.minReplicas')}: is {api.autoscaling.min_replicas}; prod keeps at least {PROD_AUTOSCALING_MIN}")
    if api.registry is not None or api.image is None or "@sha256:" not in api.image:
        problems.append(
            f"{_key('api.image')}: prod deploys the image test ran, by digest (`pulumi stack output apiImage --stack test`), "
            f"and builds nothing itself"
        )
    if api.pod_disruption_budget_min_available is None:
        problems.append(f"{_key('api.podDisruptionBudgetMinAvailable')}: prod needs a PodDisruptionBudget for the API")
    if config.namespace.pod_security != "restricted":
        problems.append(f"{_key('namespace.podSecurity')}: must be 'restricted' in prod")
    if not config.protect_data:
        problems.append(f"{_key('protectData')}: must be true in prod")
    if not (config.ingress.enabled and config.ingress.tls.enabled):
        problems.append(f"{_key('ingress.tls.enabled')}: prod serves the API over TLS only")
    if not config.release.canary.enabled:
        problems.append(f"{_key('release.canary.enabled')}: prod releases through a canary analysis with automatic rollback")
    if not config.kubernetes.context:
        problems.append(f"{_key('kubernetes.context')}: prod names its cluster explicitly, never the ambient kubeconfig context")
    if pg.instances < PROD_POSTGRES_INSTANCES:
        problems.append(f"{_key('postgres.instances')}: is {pg.instances}; prod runs at least {PROD_POSTGRES_INSTANCES} for failover")
    if not pg.patroni.synchronous:
        problems.append(f"{_key('postgres.patroni.synchronous')}: must be true in prod, so a failover loses no committed transaction")
    if not pg.pgbouncer.enabled:
        problems.append(f"{_key('postgres.pgbouncer.enabled')}: prod connects through PgBouncer")
    backups = config.backups
    if not backups.enabled:
        problems.append(f"{_key('backups.enabled')}: prod cannot run without backups")
    else:
        if not backups.offsite.enabled:
            problems.append(f"{_key('backups.offsite.enabled')}: prod keeps an off-site copy of its backups")
        if backups.postgres.full_retention_days < PROD_FULL_RETENTION_DAYS:
            problems.append(
                f"{_key('backups.postgres.fullRetentionDays')}: is {backups.postgres.full_retention_days}; "
                f"prod keeps full backups at least {PROD_FULL_RETENTION_DAYS} days"
            )
    alerting = config.monitoring.alerting
    if not config.monitoring.enabled:
        problems.append(f"{_key('monitoring.enabled')}: prod runs with its alert rules and scrape targets")
    if not config.monitoring.probes.enabled:
        problems.append(f"{_key('monitoring.probes.enabled')}: prod is watched from outside too (the public URL through the Gateway)")
    if not alerting.notify:
        problems.append(f"{_key('monitoring.alerting.notify')}: prod alerts must reach people; configure the levels' channels")
    elif not (alerting.on_call.sms or alerting.on_call.wecom_users or alerting.on_call.dingtalk):
        problems.append(f"{_key('monitoring.alerting.onCall')}: prod's on-call needs an instant channel (sms, wecomUsers or dingtalk), "
                        "not e-mail alone: P0 means act now")
    return problems


def problems(config: "PlatformConfig", stack: str) -> list[str]:
    result = []
    env = config.environment
    # Pulumi.prod.yaml (or prod-<region>) must describe prod: the guardrails hang on this value.
    for name in ("dev", "test", "prod"):
        if (stack == name or stack.startswith(f"{name}-")) and env != name:
            result.append(f"{_key('environment')}: is '{env}' but stack '{stack}' is a {name} stack")
    if env == "prod":
        result += prod_guardrails(config)
    if config.kubernetes.render_yaml_to_directory and env != "dev":
        result.append(
            f"{_key('kubernetes.renderYamlToDirectory')}: only for dev; on a stack that was deployed it replaces the "
            f"provider and deletes every object from the cluster"
        )
    if len(operator_namespace(config)) > 63:
        result.append(f"{_key('postgres.operator.namespace')}: '{operator_namespace(config)}' is longer than 63; set a shorter one")
    result += namespace_rules(config)
    m = config.monitoring
    for key in ("prometheusUrl", "alertmanagerUrl"):
        # A laptop's dev cluster may run no monitoring the release can ask; a shared cluster's must answer.
        if env != "dev" and m.enabled and not m.install.enabled and getattr(m, "prometheus_url" if key == "prometheusUrl" else "alertmanager_url") is None:
            result.append(f"{_key(f'monitoring.{key}')}: name the cluster's {key.removesuffix('Url').capitalize()} Service "
                          f"(http://<service>.<namespace>.svc:<port>): every release asks it whether it took this stack's "
                          f"monitoring (or set monitoring.install.enabled: true)")
    probes = m.probes
    if probes.enabled and not m.enabled:
        result.append(f"{_key('monitoring.probes.enabled')}: the probes are scraped by the cluster's Prometheus; they need monitoring.enabled true")
    if probes.enabled and probes.url is None and not config.ingress.enabled:
        result.append(f"{_key('monitoring.probes.url')}: with ingress.enabled false there is no public host to probe; name the URL users reach")
    if config.ingress.tls.enabled and not config.ingress.enabled:
        result.append(f"{_key('ingress.tls.enabled')}: TLS needs ingress.enabled to be true")
    result += routing_rules(config)
    grey = config.app_config.grey_release
    if grey.enabled and grey.percent == 0:
        result.append(f"{_key('appConfig.greyRelease.percent')}: must be above 0 when the grey release is enabled")
    if grey.enabled and not grey.features:
        result.append(f"{_key('appConfig.greyRelease.features')}: name the features in the grey release when it is enabled")
    result += ab_test_rules(config)
    if byte_count(config.redis.maxmemory) >= byte_count(config.redis.resources.limits.memory):
        result.append(
            f"{_key('redis.maxmemory')}: {config.redis.maxmemory} must be below redis.resources.limits.memory "
            f"{config.redis.resources.limits.memory}, or Redis is OOM-killed before it evicts"
        )
    if config.backups.enabled:
        result += redis_backup_room(config)
    queue = byte_count(config.backups.postgres.archive_push_queue_max)
    if config.backups.enabled and queue * 2 > byte_count(config.postgres.storage.size):
        result.append(
            f"{_key('backups.postgres.archivePushQueueMax')}: {config.backups.postgres.archive_push_queue_max} is more than "
            f"half of postgres.storage.size {config.postgres.storage.size}; pg_wal shares that volume with the data"
        )
    source = config.postgres.restore_from
    if source is not None:
        offsite = config.backups.offsite
        if not (config.backups.enabled and offsite.enabled):
            result.append(f"{_key('postgres.restoreFrom')}: restores from the off-site bucket; backups.offsite must be enabled")
        elif source.path == offsite.path:
            result.append(
                f"{_key('postgres.restoreFrom.path')}: is this stack's own backups.offsite.path; the new cluster must "
                f"write to a path of its own, or it would mix its backups into the source's"
            )
    if config.postgres.standby is not None:
        offsite = config.backups.offsite
        if not (config.backups.enabled and offsite.enabled):
            result.append(f"{_key('postgres.standby')}: a standby replays the primary's off-site repository; "
                          f"backups.offsite must name it (the primary stack's bucket and path)")
        if source is not None:
            result.append(f"{_key('postgres.standby')}: and postgres.restoreFrom are two ways to start a cluster; choose one")
    result += connection_budget(config)
    if config.backups.enabled:
        result += backup_schedules(config)
    return result


def ab_test_rules(config: "PlatformConfig") -> list[str]:
    """An enabled A/B test needs users in variant B and something that differs for them."""
    ab, model = config.app_config.ab_test, config.app_config.recommendation.model
    if not ab.enabled:
        return []
    result = []
    if ab.variant_b_percent == 0:
        result.append(f"{_key('appConfig.abTest.variantBPercent')}: must be above 0 when the A/B test is enabled")
    if ab.variant_b.recommendation_model in (None, model):
        result.append(
            f"{_key('appConfig.abTest.variantB.recommendationModel')}: must name a model other than "
            f"appConfig.recommendation.model ({model}) when the A/B test is enabled"
        )
    return result


def routing_rules(config: "PlatformConfig") -> list[str]:
    """The canary needs Flagger's Gateway API router and metrics to judge by; an installed controller runs where the
    NetworkPolicies expect its proxies."""
    ingress, canary, addons = config.ingress, config.release.canary, config.cluster_addons
    result = []
    if canary.enabled and not (ingress.enabled and ingress.via == "gateway"):
        result.append(
            f"{_key('release.canary.enabled')}: the canary shifts traffic on the Gateway API; it needs ingress.enabled "
            f"true and ingress.via 'gateway'"
        )
    if canary.enabled and config.api.service_type != "ClusterIP":
        result.append(
            f"{_key('api.serviceType')}: is '{config.api.service_type}'; under a canary Flagger generates the API's "
            f"Services (ClusterIP) and users arrive through the Gateway"
        )
    if canary.enabled and not config.monitoring.enabled:
        result.append(f"{_key('release.canary.enabled')}: the analysis reads the API's metrics; it needs monitoring.enabled true")
    gateway = addons.gateway_controller
    if gateway.install and ingress.via == "gateway" and gateway.namespace != ingress.proxy_namespace:
        result.append(
            f"{_key('ingress.controllerNamespace')}: is '{ingress.proxy_namespace}' but the installed gateway controller "
            f"runs its proxies in clusterAddons.gatewayController.namespace '{gateway.namespace}'"
        )
    if canary.tester_header.lower() == config.app_config.grey_release.header.lower():
        result.append(
            f"{_key('release.canary.testerHeader')}: '{canary.tester_header}' is already appConfig.greyRelease.header"
        )
    return result
