"""Config validation at the edge: every stack file loads, every malformed value is named precisely."""

import os
import subprocess

import pytest

from settings import StackConfigError, byte_count, cpu_millicores, load_settings
from tests.harness import DELETE, STACKS, decoded_config, encode_config, with_value
from tools.render import PROJECT, RenderedStack, render, run_program, with_stand_in_secrets


def _raw(config):
    """Strip the namespace as the engine's config map is keyed, JSON-encoding objects as the engine does."""
    return {k.split(":", 1)[1]: v for k, v in encode_config(config).items() if k.startswith(f"{PROJECT}:")}


def _load(stack, decoded):
    """Validate a decoded config as `pulumi up` would, with the secrets it requires set as Pulumi secrets."""
    config, secret_keys = with_stand_in_secrets(stack, encode_config(decoded))
    _, settings = run_program(stack, load_settings, config, secret_keys)
    return settings


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_load(stack):
    settings = _load(stack, decoded_config(stack))
    assert settings.config.environment == stack
    assert settings.stack == stack


def test_stack_specific_values():
    dev = _load("dev", decoded_config("dev")).config
    test = _load("test", decoded_config("test")).config
    prod = _load("prod", decoded_config("prod")).config
    assert (dev.api.replicas, test.api.replicas, prod.api.replicas) == (1, 2, 3)
    assert prod.api.resources.requests.cpu == "500m" and prod.api.resources.limits.memory == "2Gi"
    assert prod.ingress.host == "api.real-estate.example.com" and prod.ingress.tls.enabled
    assert not dev.ingress.tls.enabled
    assert prod.api.autoscaling is not None and dev.api.autoscaling is None
    assert byte_count(prod.postgres.storage.size) > byte_count(dev.postgres.storage.size)
    assert prod.backups.offsite.enabled and test.backups.offsite.enabled and not dev.backups.offsite.enabled
    assert prod.backups.postgres.full_retention_days == 30
    assert (dev.postgres.instances, test.postgres.instances, prod.postgres.instances) == (1, 2, 3)
    assert prod.postgres.patroni.synchronous and test.postgres.patroni.synchronous and not dev.postgres.patroni.synchronous
    assert prod.postgres.pgbouncer.enabled and not dev.postgres.pgbouncer.enabled


DIGEST = "@sha256:" + "0" * 64
# The stack-file contract's third pass (issue 26): what the consumers themselves refuse, reasoned from their parsers.
CONTRACT_CASES = [
    # Ports a dialer cannot use, and hosts that are neither a name nor an address as written (Go's parser refuses
    # leading zeros; a last label of digits is no DNS name).
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com:0", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com:65536", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com:99999", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.alerting.smtp.smarthost", "010.0.0.1:25", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.alerting.smtp.smarthost", "mail.1:25", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.runbookBaseUrl", "https://git.example.com:0/runbooks", "real-estate-ai:monitoring.runbookBaseUrl"),
    ("monitoring.runbookBaseUrl", "https://git.example.com:70000/runbooks", "real-estate-ai:monitoring.runbookBaseUrl"),
    ("monitoring.prometheusUrl", "http://prometheus.monitoring.svc:0", "real-estate-ai:monitoring.prometheusUrl"),
    ("monitoring.alertmanagerUrl", "http://alertmanager.monitoring.svc:65536", "real-estate-ai:monitoring.alertmanagerUrl"),
    ("monitoring.probes.url", "https://010.1.1.1/", "real-estate-ai:monitoring.probes.url"),
    ("monitoring.probes.url", "https://api.example.123", "real-estate-ai:monitoring.probes.url"),
    ("monitoring.alerting.wecom.apiUrl", "https://qyapi.weixin.qq.com:0/cgi-bin/", "real-estate-ai:monitoring.alerting.wecom.apiUrl"),
    ("monitoring.alerting.dingtalk", {"bridgeUrl": "http://bridge.1:8060"}, "real-estate-ai:monitoring.alerting.dingtalk.bridgeUrl"),
    ("monitoring.alerting.dingtalk", {"bridgeUrl": "http://bridge.example.com:65536"}, "real-estate-ai:monitoring.alerting.dingtalk.bridgeUrl"),
    ("api.registry", "registry.example.com:0/team", "real-estate-ai:api.registry"),
    ("api.registry", "010.0.0.1:5000/team", "real-estate-ai:api.registry"),
    ("ingress.host", "010.0.0.1", "real-estate-ai:ingress.host"),
    ("ingress.host", "api.example.123", "real-estate-ai:ingress.host"),
    ("backups.offsite.endpoint", "010.0.0.1", "real-estate-ai:backups.offsite.endpoint"),
    ("backups.offsite.endpoint", "s3.1", "real-estate-ai:backups.offsite.endpoint"),
    ("milvus.externalS3.endpoint", "s3.example.123", "real-estate-ai:milvus.externalS3.endpoint"),
    ("kubernetes.apiServerCidrs", ["010.0.0.0/8"], "real-estate-ai:kubernetes.apiServerCidrs[0]"),
    ("kubernetes.nodeLocalDns", "169.254.020.10", "real-estate-ai:kubernetes.nodeLocalDns"),
    ("monitoring.probes.cidrs", ["0010.0.0.0/8"], "real-estate-ai:monitoring.probes.cidrs[0]"),
    ("backups.offsite.cidrs", ["10.0.0.1/33"], "real-estate-ai:backups.offsite.cidrs[0]"),
    # Image references as the runtime reads them: a first component with '.' or ':' is a registry host (no '_').
    ("api.image", "my_registry.example.com/real-estate-api" + DIGEST, "real-estate-ai:api.image"),
    ("api.image", "registry.example.com:65536/real-estate-api" + DIGEST, "real-estate-ai:api.image"),
    ("milvus.milvus.image", "my_registry.example.com/milvus:v2.6.24", "real-estate-ai:milvus.milvus.image"),
    ("milvus.etcd.image", "registry.example.com:0/etcd:3.5", "real-estate-ai:milvus.etcd.image"),
    ("redis.image", "localhost_1:5000/redis:7", "real-estate-ai:redis.image"),
    # Addresses Go's net/mail refuses when Alertmanager sends; senders that would split, quote or template.
    ("monitoring.alerting.onCall.emails", [".oncall@example.com"], "real-estate-ai:monitoring.alerting.onCall.emails[0]"),
    ("monitoring.alerting.onCall.emails", ["oncall.@example.com"], "real-estate-ai:monitoring.alerting.onCall.emails[0]"),
    ("monitoring.alerting.onCall.emails", ["on..call@example.com"], "real-estate-ai:monitoring.alerting.onCall.emails[0]"),
    ("monitoring.alerting.techLead.emails", ["lead@-example.com"], "real-estate-ai:monitoring.alerting.techLead.emails[0]"),
    ("monitoring.alerting.management.emails", ["cto@example-.com"], "real-estate-ai:monitoring.alerting.management.emails[0]"),
    ("monitoring.alerting.smtp.sender", "alerts..x@example.com", "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", "Ops, Team <alerts@example.com>", "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", '"Ops" <alerts@example.com>', "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", "运维告警 <alerts@example.com>", "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", "{{ .CommonLabels.team }} <alerts@example.com>", "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", "Ops <alerts@example.com>\nBcc: x@example.com", "real-estate-ai:monitoring.alerting.smtp.sender"),
    ("monitoring.alerting.smtp.sender", "alerts@example.com, boss@example.com", "real-estate-ai:monitoring.alerting.smtp.sender"),
    # A WeCom agent id is digits, however YAML typed it.
    ("monitoring.alerting.wecom.agentId", -1000002, "real-estate-ai:monitoring.alerting.wecom.agentId"),
    ("monitoring.alerting.wecom.agentId", 1000002.5, "real-estate-ai:monitoring.alerting.wecom.agentId"),
    ("monitoring.alerting.wecom.agentId", True, "real-estate-ai:monitoring.alerting.wecom.agentId"),
    ("monitoring.alerting.wecom.agentId", 10**13, "real-estate-ai:monitoring.alerting.wecom.agentId"),
    # Namespaces the stack creates and deletes: never Kubernetes' own, never one name for two.
    ("namespace.name", "kube-system", "real-estate-ai:namespace.name"),
    ("namespace.name", "default", "real-estate-ai:namespace.name"),
    ("namespace.name", "kube-public", "real-estate-ai:namespace.name"),
    ("namespace.name", "kube", "real-estate-ai:postgres.operator.namespace"),  # kube-pg-operator
    ("postgres.operator", {"install": True, "namespace": "real-estate"}, "real-estate-ai:postgres.operator.namespace"),
    ("postgres.operator", {"install": True, "namespace": "kube-system"}, "real-estate-ai:postgres.operator.namespace"),
    ("postgres.operator", {"install": True, "namespace": "default"}, "real-estate-ai:postgres.operator.namespace"),
    ("monitoring.namespace", "real-estate", "real-estate-ai:monitoring.namespace"),
    # Bucket names S3 keeps for itself.
    ("backups.offsite.bucket", "xn--backups", "real-estate-ai:backups.offsite.bucket"),
    ("backups.offsite.bucket", "sthree-backups", "real-estate-ai:backups.offsite.bucket"),
    ("backups.offsite.bucket", "backups-s3alias", "real-estate-ai:backups.offsite.bucket"),
    ("backups.offsite.bucket", "backups--ol-s3", "real-estate-ai:backups.offsite.bucket"),
    ("milvus.externalS3.bucket", "milvus.mrap", "real-estate-ai:milvus.externalS3.bucket"),
    ("milvus.externalS3.bucket", "milvus--x-s3", "real-estate-ai:milvus.externalS3.bucket"),
    ("milvus.externalS3.bucket", "amzn-s3-demo-bucket", "real-estate-ai:milvus.externalS3.bucket"),
    ("milvus.externalS3.bucket", "milvus--table-s3", "real-estate-ai:milvus.externalS3.bucket"),
]

# (what is wrong, key path to change, value; DELETE removes it) -> the key path the error must name
MALFORMED = [
    ("environment", "staging", "real-estate-ai:environment"),
    ("environment", DELETE, "real-estate-ai:environment"),
    ("api", DELETE, "real-estate-ai:api"),
    ("api", "3", "real-estate-ai:api"),
    ("api.replicas", 0, "real-estate-ai:api.replicas"),
    ("api.replicas", -2, "real-estate-ai:api.replicas"),
    ("api.replicas", "three", "real-estate-ai:api.replicas"),
    ("api.replicas", 1, "real-estate-ai:api.replicas"),  # prod needs >= 3
    ("api.version", "1.0", "real-estate-ai:api.version"),
    ("api.version", "v1.0.0", "real-estate-ai:api.version"),
    ("api.image", "real-estate-api:latest", "real-estate-ai:api.image"),
    ("api.image", "real-estate-api", "real-estate-ai:api.image"),
    ("api.image", "Registry/API:1.0.0", "real-estate-ai:api.image"),
    ("api.registry", "https://registry.example.com", "real-estate-ai:api.registry"),
    ("api.resources.requests.memory", "2Gb", "real-estate-ai:api.resources.requests.memory"),
    ("api.resources.limits.cpu", "2 cores", "real-estate-ai:api.resources.limits.cpu"),
    ("api.resources.requests.cpu", "-1", "real-estate-ai:api.resources.requests.cpu"),
    ("api.resources.requests.cpu", "4", "real-estate-ai:api.resources"),  # above the 2-CPU limit
    ("api.serviceType", "Ingress", "real-estate-ai:api.serviceType"),
    ("api.autoscaling.minReplicas", 0, "real-estate-ai:api.autoscaling.minReplicas"),
    ("api.autoscaling.maxReplicas", 2, "real-estate-ai:api.autoscaling"),  # below minReplicas 3
    ("api.autoscaling.targetCpuUtilization", 150, "real-estate-ai:api.autoscaling.targetCpuUtilization"),
    ("api.podDisruptionBudgetMinAvailable", 3, "real-estate-ai:api"),  # would block every drain
    ("api.liveness.periodSeconds", 0, "real-estate-ai:api.liveness.periodSeconds"),
    ("api.replica", 3, "real-estate-ai:api.replica"),
    ("replicas", 3, "real-estate-ai:replicas"),
    ("namespace.name", "Real_Estate", "real-estate-ai:namespace.name"),
    ("namespace.podSecurity", "baseline", "real-estate-ai:namespace.podSecurity"),  # prod must be restricted
    ("namespace.podSecurity", "strict", "real-estate-ai:namespace.podSecurity"),
    ("kubernetes.renderYamlToDirectory", "out/", "real-estate-ai:kubernetes"),  # with a context set
    ("protectData", "sometimes", "real-estate-ai:protectData"),
    ("ingress.host", "not a host", "real-estate-ai:ingress.host"),
    ("ingress.className", "", "real-estate-ai:ingress.className"),
    ("ingress.tls.enabled", "maybe", "real-estate-ai:ingress.tls.enabled"),
    ("ingress.enabled", False, "real-estate-ai:ingress.tls.enabled"),  # TLS left on without an ingress
    ("postgres.storage.size", "10GB", "real-estate-ai:postgres.storage.size"),
    ("postgres.storage.size", DELETE, "real-estate-ai:postgres.storage.size"),
    ("postgres.storage.storageClass", "SSD!", "real-estate-ai:postgres.storage.storageClass"),
    ("postgres.database", "real-estate", "real-estate-ai:postgres.database"),
    ("postgres.image", "postgres", "real-estate-ai:postgres.image"),
    ("redis.maxmemory", "1.5 Gi", "real-estate-ai:redis.maxmemory"),
    # The API refuses to start with an empty name.
    ("appConfig.name", "  ", "real-estate-ai:appConfig.name"),
    ("api.resources.limits.memory", "402653184", "real-estate-ai:api.resources.limits.memory"),
    ("milvus.milvus.image", "milvusdb/milvus:latest", "real-estate-ai:milvus.milvus.image"),
    ("milvus.etcd.resources.limits.memory", "lots", "real-estate-ai:milvus.etcd.resources.limits.memory"),
    ("appConfig.recommendation.topK", 0, "real-estate-ai:appConfig.recommendation.topK"),
    ("appConfig.recommendation.model", "deep", "real-estate-ai:appConfig.recommendation.model"),
    ("appConfig.evaluation.confidenceThreshold", 1.5, "real-estate-ai:appConfig.evaluation.confidenceThreshold"),
    ("appConfig.features", {"Market-Analysis": True}, "real-estate-ai:appConfig.features"),
    ("appConfig.features", {"valuation": "sometimes"}, "real-estate-ai:appConfig.features.valuation"),
    ("appConfig.greyRelease.percent", 120, "real-estate-ai:appConfig.greyRelease.percent"),
    ("appConfig.greyRelease", {"enabled": True, "percent": 0}, "real-estate-ai:appConfig.greyRelease.percent"),
    ("appConfig.greyRelease", {"enabled": True, "percent": 5}, "real-estate-ai:appConfig.greyRelease.features"),
    ("appConfig.greyRelease.features", ["pricing"], "real-estate-ai:appConfig.greyRelease.features"),
    ("appConfig.features", {"valuaton": False}, "real-estate-ai:appConfig.features"),
    ("appConfig.abTest", {"enabled": True, "variantBPercent": 0, "variantB": {"recommendationModel": "content"}},
     "real-estate-ai:appConfig.abTest.variantBPercent"),
    ("appConfig.abTest", {"enabled": True, "variantBPercent": 10}, "real-estate-ai:appConfig.abTest.variantB.recommendationModel"),
    ("appConfig.abTest", {"enabled": True, "variantBPercent": 10, "variantB": {"recommendationModel": "hybrid"}},
     "real-estate-ai:appConfig.abTest.variantB.recommendationModel"),
    ("appConfig.abTest.variantB.recommendationModel", "deep", "real-estate-ai:appConfig.abTest.variantB.recommendationModel"),
    ("backups.postgres.fullSchedule", "daily", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.incrementalSchedule", "0 * * *", "real-estate-ai:backups.postgres.incrementalSchedule"),
    ("backups.postgres.fullRetentionDays", 0, "real-estate-ai:backups.postgres.fullRetentionDays"),
    ("backups.postgres.archiveTimeoutSeconds", 5, "real-estate-ai:backups.postgres.archiveTimeoutSeconds"),
    ("backups.offsite.endpoint", DELETE, "real-estate-ai:backups.offsite"),
    ("backups.offsite.bucket", "Bad_Bucket", "real-estate-ai:backups.offsite.bucket"),
    ("backups.offsite.enabled", False, "real-estate-ai:backups.offsite.enabled"),  # prod keeps an off-site copy
    ("backups.enabled", False, "real-estate-ai:backups.enabled"),
    ("backups.redis.retentionDays", -1, "real-estate-ai:backups.redis.retentionDays"),
    ("backups.milvus.image", "milvusdb/milvus-backup", "real-estate-ai:backups.milvus.image"),
    # PostgreSQL on the operator
    ("postgres.instances", 2, "real-estate-ai:postgres.instances"),  # prod runs three
    ("postgres.instances", 0, "real-estate-ai:postgres.instances"),
    ("postgres.instances", 10, "real-estate-ai:postgres.instances"),
    ("postgres.patroni.synchronous", False, "real-estate-ai:postgres.patroni.synchronous"),
    ("postgres.patroni.leaderLeaseDurationSeconds", 7, "real-estate-ai:postgres.patroni.leaderLeaseDurationSeconds"),
    ("postgres.patroni.leaderLeaseDurationSeconds", 8, "real-estate-ai:postgres.patroni"),  # 5 s sync leaves 1 s retries
    ("postgres.patroni.syncPeriodSeconds", 0, "real-estate-ai:postgres.patroni.syncPeriodSeconds"),
    ("postgres.pgbouncer.enabled", False, "real-estate-ai:postgres.pgbouncer.enabled"),
    ("postgres.pgbouncer.defaultPoolSize", 61, "real-estate-ai:postgres.pgbouncer.defaultPoolSize"),  # 3 × 61 > 200 - 20
    ("postgres.pgbouncer.maxClientConn", 109, "real-estate-ai:postgres.pgbouncer.maxClientConn"),  # 10 pods × (10 + 1 probe)
    ("postgres.pgbouncer.poolMode", "statement", "real-estate-ai:postgres.pgbouncer.poolMode"),
    ("postgres.user", "real_estate", "real-estate-ai:postgres.user"),
    ("postgres.user", "Admin", "real-estate-ai:postgres.user"),
    ("postgres.user", "postgres", "real-estate-ai:postgres.user"),  # the superuser
    ("backups.offsite.path", "/" + "a" * 40 + "!", "real-estate-ai:backups.offsite.path"),  # no catastrophic backtracking
    ("backups.offsite.path", "/prod/", "real-estate-ai:backups.offsite.path"),
    ("backups.postgres.incrementalSchedule", "30 * * * *", "real-estate-ai:backups.postgres.incrementalSchedule"),  # 01:30, in the full's hour
    ("backups.postgres.fullBackupWindowMinutes", 0, "real-estate-ai:backups.postgres.fullBackupWindowMinutes"),
    ("postgres.version", 16, "real-estate-ai:postgres"),  # the image is 17
    ("postgres.version", 14, "real-estate-ai:postgres.version"),
    ("postgres.maxConnections", 24, "real-estate-ai:postgres.maxConnections"),
    ("postgres.zoneSpread", "always", "real-estate-ai:postgres.zoneSpread"),
    ("postgres.operator.chartVersion", "3.0", "real-estate-ai:postgres.operator.chartVersion"),
    ("postgres.operator.namespace", "Operators", "real-estate-ai:postgres.operator.namespace"),
    ("backups.postgres.incrementalSchedule", "0 1 * * *", "real-estate-ai:backups.postgres.incrementalSchedule"),
    ("backups.postgres.offsiteFullSchedule", "0 */1 * * *", "real-estate-ai:backups.postgres.offsiteFullSchedule"),
    ("backups.postgres.offsiteFullSchedule", "30 0 * * *", "real-estate-ai:backups.postgres.fullSchedule"),  # full 30 min later
    ("backups.postgres.fullRetentionDays", 29, "real-estate-ai:backups.postgres.fullRetentionDays"),
    ("backups.postgres.archivePushQueueMax", "51Gi", "real-estate-ai:backups.postgres.archivePushQueueMax"),
    ("backups.postgres.archivePushQueueMax", "32Mi", "real-estate-ai:backups.postgres"),
    ("backups.postgres.archiveTimeoutSeconds", 61, "real-estate-ai:backups.postgres.archiveTimeoutSeconds"),
    ("backups.postgres.incrementalRetentionDays", 7, "real-estate-ai:backups.postgres.incrementalRetentionDays"),
    ("backups.postgres.fullSchedule", "99 99 99 99 99", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "60 1 * * *", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "0 24 * * *", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "0 1 0 * *", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "0 1 * 13 *", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "0 1 * * 8", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.fullSchedule", "0 1 31 2 *", "real-estate-ai:backups.postgres.fullSchedule"),  # never comes
    ("backups.postgres.fullSchedule", "0 1 * * *\n", "real-estate-ai:backups.postgres.fullSchedule"),
    ("backups.postgres.verifySchedule", "*/0 * * * *", "real-estate-ai:backups.postgres.verifySchedule"),
    ("backups.postgres.restoreDrillSchedule", "@weekly", "real-estate-ai:backups.postgres.restoreDrillSchedule"),
    ("backups.postgres.offsiteDrillSchedule", "45 6 1 * * *", "real-estate-ai:backups.postgres.offsiteDrillSchedule"),
    ("backups.postgres.offsiteDrillSchedule", "45 6 30 2 *", "real-estate-ai:backups.postgres.offsiteDrillSchedule"),
    # Text that would add a line to a generated file
    ("backups.offsite.region", "eu-central-1\nrepo2-storage-verify-tls=n", "real-estate-ai:backups.offsite.region"),
    ("backups.offsite.region", "eu-central-1\n", "real-estate-ai:backups.offsite.region"),
    ("backups.offsite.path", "/prod\nrepo1-path=/x", "real-estate-ai:backups.offsite.path"),
    ("backups.offsite.path", "/prod/../other", "real-estate-ai:backups.offsite.path"),
    ("backups.offsite.bucket", "bucket\n", "real-estate-ai:backups.offsite.bucket"),
    ("backups.offsite.endpoint", "s3.example.com\n", "real-estate-ai:backups.offsite.endpoint"),
    ("appConfig.name", "estate\nfeature.valuation=false", "real-estate-ai:appConfig.name"),
    ("appConfig.greyRelease.header", "X-Grey\nX-Other", "real-estate-ai:appConfig.greyRelease.header"),
    ("kubernetes.context", "prod\nother", "real-estate-ai:kubernetes.context"),
    ("kubernetes.apiServerCidrs", ["10.0.0.1/8"], "real-estate-ai:kubernetes.apiServerCidrs[0]"),
    # disaster recovery from another stack's off-site repository
    ("postgres.restoreFrom", {"path": "/prod"}, "real-estate-ai:postgres.restoreFrom.path"),  # this stack's own path
    ("postgres.restoreFrom", {"path": "/old", "target": "2099-01-01 00:00:00+00"}, "real-estate-ai:postgres.restoreFrom.target"),
    ("postgres.restoreFrom", {"path": "/old", "target": "2026-11-28 10:15:00"}, "real-estate-ai:postgres.restoreFrom.target"),
    ("postgres.restoreFrom", {"path": "/old", "target": "2026-02-30 10:15:00+00"}, "real-estate-ai:postgres.restoreFrom.target"),
    ("postgres.restoreFrom", {"path": "old\nrepo1-path=/x"}, "real-estate-ai:postgres.restoreFrom.path"),
    # a standby of another stack's primary
    ("postgres.standby", {"host": "db.example.com", "port": 80}, "real-estate-ai:postgres.standby.port"),
    ("postgres.standby", {"host": "10.0.0.300"}, "real-estate-ai:postgres.standby.host"),
    ("postgres.standby", {"host": "db\nother"}, "real-estate-ai:postgres.standby.host"),
    ("postgres.standby", {"enabled": "yes please"}, "real-estate-ai:postgres.standby.enabled"),
    ("postgres.standby", {"replicas": 2}, "real-estate-ai:postgres.standby.replicas"),
    # Milvus' external S3 service (prod)
    ("milvus.externalS3.endpoint", "s3.example.com\n", "real-estate-ai:milvus.externalS3.endpoint"),
    ("milvus.externalS3.bucket", "Bucket_1", "real-estate-ai:milvus.externalS3.bucket"),
    ("milvus.externalS3.port", 70000, "real-estate-ai:milvus.externalS3.port"),
    ("milvus.externalS3.cidrs", ["300.0.0.0/8"], "real-estate-ai:milvus.externalS3.cidrs[0]"),
    # traffic settings
    ("kubernetes.nodeLocalDns", "169.254.20", "real-estate-ai:kubernetes.nodeLocalDns"),
    ("ingress.tls.solver", "tls-alpn-01", "real-estate-ai:ingress.tls.solver"),
    ("api.loadBalancerSourceRanges", ["0.0.0.0/33"], "real-estate-ai:api.loadBalancerSourceRanges[0]"),
    ("api.loadBalancerSourceRanges", [], "real-estate-ai:api.loadBalancerSourceRanges"),
    ("backups.offsite.cidrs", ["s3.example.com"], "real-estate-ai:backups.offsite.cidrs[0]"),
    ("monitoring.namespace", "Monitoring", "real-estate-ai:monitoring.namespace"),
    # prod guardrails the stack file cannot switch off
    ("api.image", "registry.example.com/real-estate-ai/real-estate-api:1.0.0", "real-estate-ai:api.image"),  # a tag can move
    ("api.platform", "linux/386", "real-estate-ai:api.platform"),
    ("environment", "dev", "real-estate-ai:environment"),
    ("protectData", False, "real-estate-ai:protectData"),
    ("ingress.tls.enabled", False, "real-estate-ai:ingress.tls.enabled"),
    ("kubernetes.context", DELETE, "real-estate-ai:kubernetes.context"),
    ("api.podDisruptionBudgetMinAvailable", DELETE, "real-estate-ai:api.podDisruptionBudgetMinAvailable"),
    # values Kubernetes would refuse at deploy time
    ("api.version", "1.0.0+build.5", "real-estate-ai:api.version"),
    ("api.replicas", 2**31, "real-estate-ai:api.replicas"),
    ("api.resources.limits.cpu", "9" * 400, "real-estate-ai:api.resources.limits.cpu"),
    ("api.databasePoolSize", 0, "real-estate-ai:api.databasePoolSize"),
    ("redis.maxmemory", "2Gi", "real-estate-ai:redis.maxmemory"),  # the container limit
    ("backups.redis.storage.size", "67Gi", "real-estate-ai:backups.redis.storage.size"),  # 172 × 1536Mi / 4 × 1.05 = 67.7Gi
    ("backups.redis.retentionDays", 8, "real-estate-ai:backups.redis.storage.size"),
    # Monitoring and incident routing
    ("monitoring.alerting.notify", False, "real-estate-ai:monitoring.alerting.notify"),  # prod alerts reach people
    ("monitoring.alerting.onCall", {"emails": ["oncall@example.com"]}, "real-estate-ai:monitoring.alerting.onCall"),  # P0 needs an instant channel
    ("monitoring.alerting.onCall.emails", ["oncall"], "real-estate-ai:monitoring.alerting.onCall.emails[0]"),
    ("monitoring.alerting.onCall.emails", ["oncall@example.com\nBcc: x@example.com"], "real-estate-ai:monitoring.alerting.onCall.emails[0]"),
    ("monitoring.alerting.onCall.sms", ["13800000001"], "real-estate-ai:monitoring.alerting.onCall.sms[0]"),
    ("monitoring.alerting.onCall.sms", ["+86138000000011234567"], "real-estate-ai:monitoring.alerting.onCall.sms[0]"),
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com", "real-estate-ai:monitoring.alerting.smtp.smarthost"),
    ("monitoring.alerting.smtp", DELETE, "real-estate-ai:monitoring.alerting"),  # e-mails without a mail server
    ("monitoring.alerting.wecom", DELETE, "real-estate-ai:monitoring.alerting"),
    ("monitoring.alerting.smsGateway", False, "real-estate-ai:monitoring.alerting"),
    ("monitoring.alerting.wecom.agentId", "10000x2", "real-estate-ai:monitoring.alerting.wecom.agentId"),
    ("monitoring.alerting.wecom.apiUrl", "https://qyapi.weixin.qq.com/cgi-bin", "real-estate-ai:monitoring.alerting.wecom"),
    ("monitoring.alerting.dingtalk", {"deploy": True, "bridgeUrl": "http://bridge:8060"}, "real-estate-ai:monitoring.alerting.dingtalk"),
    ("monitoring.alerting.dingtalk", {"deploy": False}, "real-estate-ai:monitoring.alerting.dingtalk"),
    ("monitoring.alerting.dingtalk", {"bridgeUrl": "http://bridge:8060/?x=1"}, "real-estate-ai:monitoring.alerting.dingtalk.bridgeUrl"),
    ("monitoring.alerting.dingtalk.targets", {"onCall": "a"}, "real-estate-ai:monitoring.alerting.dingtalk"),
    ("monitoring.alerting.management", {}, "real-estate-ai:monitoring.alerting"),  # a level with no channel
    ("monitoring.alerting.escalation.p0Level3Minutes", 15, "real-estate-ai:monitoring.alerting.escalation"),
    ("monitoring.alerting.escalation.p0Level2Minutes", 0, "real-estate-ai:monitoring.alerting.escalation.p0Level2Minutes"),
    ("monitoring.alerting.timing.repeatIntervalMinutes", 4, "real-estate-ai:monitoring.alerting.timing.repeatIntervalMinutes"),
    ("monitoring.runbookBaseUrl", "http://git.example.com/runbooks", "real-estate-ai:monitoring.runbookBaseUrl"),
    ("monitoring.selectorLabels", {"release": "kube prometheus"}, "real-estate-ai:monitoring.selectorLabels.release"),
    ("monitoring.install", {"enabled": True, "retention": "7 days"}, "real-estate-ai:monitoring.install.retention"),
    ("monitoring.install.chartVersion", "latest", "real-estate-ai:monitoring.install.chartVersion"),
    ("monitoring.enabled", False, "real-estate-ai:monitoring.enabled"),
    *CONTRACT_CASES,
]


@pytest.mark.parametrize("path,new,expected", MALFORMED, ids=[f"{p}=" + ("<deleted>" if v is DELETE else repr(v)) for p, v, _ in MALFORMED])
def test_malformed_config_names_key_path(path, new, expected):
    with pytest.raises(StackConfigError) as error:
        _load("prod", with_value(decoded_config("prod"), path, new))
    message = str(error.value)
    assert "stack 'prod'" in message
    problem_paths = [line.split(": ", 1)[0].strip(" -") for line in message.splitlines()[1:]]
    assert expected in problem_paths, message


def test_prod_autoscaling_keeps_two_pods():
    config = with_value(decoded_config("prod"), "api.podDisruptionBudgetMinAvailable", DELETE)
    with pytest.raises(StackConfigError) as error:
        _load("prod", with_value(config, "api.autoscaling.minReplicas", 1))
    assert "real-estate-ai:api.autoscaling.minReplicas: is 1; prod keeps at least 2" in str(error.value)
    assert "real-estate-ai:api.podDisruptionBudgetMinAvailable: prod needs a PodDisruptionBudget" in str(error.value)


# Value-level problems every stack must refuse, whatever its environment: the battery runs on all three.
EVERY_STACK = [case for case in MALFORMED if case[0] in {
    "api.replicas", "api.version", "api.image", "api.resources.requests.memory", "api.resources.limits.cpu",
    "api.liveness.periodSeconds", "namespace.name", "ingress.host", "postgres.user", "postgres.image",
    "backups.postgres.fullSchedule", "backups.postgres.verifySchedule", "backups.postgres.restoreDrillSchedule",
    "appConfig.name", "appConfig.greyRelease.header", "kubernetes.context", "kubernetes.nodeLocalDns",
    "redis.maxmemory", "milvus.milvus.image", "appConfig.features",
} and case[1] is not DELETE and not (case[0] == "api.replicas" and case[1] == 1)
    and "@sha256" not in str(case[1]) and not str(case[1]).endswith("real-estate-api:1.0.0")]


@pytest.mark.parametrize("stack", ["dev", "test"])
@pytest.mark.parametrize("path,new,expected", EVERY_STACK, ids=[f"{p}={v!r}" for p, v, _ in EVERY_STACK])
def test_every_stack_refuses_bad_values(stack, path, new, expected):
    with pytest.raises(StackConfigError) as error:
        _load(stack, with_value(decoded_config(stack), path, new))
    assert f"stack '{stack}'" in str(error.value)
    problem_paths = [line.split(": ", 1)[0].strip(" -") for line in str(error.value).splitlines()[1:]]
    assert expected in problem_paths, str(error.value)


def test_malformed_table_is_large_enough():
    # Over 100 cases on prod, and the value-level ones again on dev and test.
    assert len(MALFORMED) >= 100 and len(EVERY_STACK) >= 30


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(StackConfigError, match=r"api\.replica: unknown key; allowed here: .*replicas"):
        _load("prod", with_value(decoded_config("prod"), "api.replica", 3))


def test_all_problems_reported_at_once():
    config = with_value(decoded_config("prod"), "api.replicas", 0)
    config = with_value(config, "redis.maxmemory", "1GB")
    with pytest.raises(StackConfigError) as error:
        _load("prod", config)
    assert "api.replicas" in str(error.value) and "redis.maxmemory" in str(error.value)


def test_invalid_config_registers_no_resource():
    config = encode_config(with_value(decoded_config("prod"), "api.version", "latest"))
    rendered = RenderedStack(stack="prod")
    with pytest.raises(StackConfigError, match="api.version"):
        run_program("prod", lambda: __import__("runpy").run_path("__main__.py"), config, into=rendered)
    assert rendered.registrations == []


def test_offsite_backups_need_their_credentials_as_secrets():
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(decoded_config("prod")))
    message = str(error.value)
    for key in ("backupOffsiteAccessKeyId", "backupOffsiteSecretAccessKey"):
        assert f"real-estate-ai:{key}: is required while backups.offsite.enabled is true" in message


def test_an_external_milvus_store_needs_its_credentials_as_secrets():
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(decoded_config("prod")))
    for key in ("milvusS3AccessKeyId", "milvusS3SecretAccessKey"):
        assert f"real-estate-ai:{key}: is required while milvus.externalS3 is set" in str(error.value)


def test_restoring_from_another_stack_needs_its_passphrase():
    config = with_value(decoded_config("prod"), "postgres.restoreFrom", {"path": "/old"})
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(config))
    assert "real-estate-ai:backupOffsiteCipherPass: is required with postgres.restoreFrom" in str(error.value)


def test_a_standby_needs_the_primarys_passphrase_and_its_offsite_repository():
    config = with_value(decoded_config("prod"), "postgres.standby", {"host": "db.eu-west.example.com"})
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(config))
    assert "real-estate-ai:backupOffsiteCipherPass: is required with postgres.standby: the primary stack's passphrase" in str(error.value)
    config = with_value(with_value(config, "backups.offsite.enabled", False), "postgres.restoreFrom", {"path": "/old"})
    encoded = {**encode_config(config), "real-estate-ai:backupOffsiteCipherPass": "p" * 40}
    with pytest.raises(StackConfigError) as error:
        run_program("dev", load_settings, encoded)
    message = str(error.value)
    assert "real-estate-ai:postgres.standby: a standby replays the primary's off-site repository" in message
    assert "real-estate-ai:postgres.standby: and postgres.restoreFrom are two ways to start a cluster; choose one" in message


def test_alert_channels_need_their_credentials_as_secrets():
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(decoded_config("prod")))
    message = str(error.value)
    assert "real-estate-ai:alertWecomApiSecret: is required while monitoring.alerting.wecom is set" in message
    assert "real-estate-ai:alertSmsWebhookUrl: is required while monitoring.alerting.smsGateway is true" in message
    for key in ("alertDingtalkRobotUrl", "alertDingtalkRobotSecret"):
        assert f"real-estate-ai:{key}: is required while monitoring.alerting.dingtalk.deploy is true" in message
    # prod's mail server takes mail without a login: no SMTP password is asked for.
    assert "alertSmtpPassword" not in message
    config = with_value(decoded_config("prod"), "monitoring.alerting.smtp.username", "alerts")
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, encode_config(config))
    assert "real-estate-ai:alertSmtpPassword: is required while monitoring.alerting.smtp.username is set" in str(error.value)


def test_a_value_with_a_line_break_is_reported_on_one_line():
    config = with_value(decoded_config("prod"), "monitoring.alerting.onCall.emails", ["oncall@example.com\nBcc: x@example.com"])
    with pytest.raises(StackConfigError) as error:
        _load("prod", config)
    (line,) = [l for l in str(error.value).splitlines() if "onCall.emails" in l]
    assert line.endswith("'oncall@example.com\\nBcc: x@example.com' is not an e-mail address like 'oncall@example.com'")


def test_routing_defaults_are_the_documented_ones():
    from settings.monitoring import AlertingSettings, MonitoringSettings

    assert MonitoringSettings().alerting.notify is False and MonitoringSettings().enabled is True
    assert MonitoringSettings().install.enabled is False and MonitoringSettings().install.chart_version == "88.3.0"
    with pytest.raises(ValueError, match="install.enabled installs a monitoring stack"):
        MonitoringSettings.model_validate({"enabled": False, "install": {"enabled": True}})
    e = AlertingSettings(notify=False).escalation
    assert (e.p0_level2_minutes, e.p0_level3_minutes, e.p1_level2_minutes, e.p1_level3_minutes) == (15, 45, 60, 240)


def test_dev_needs_no_secret_at_all():
    _, settings = run_program("dev", load_settings, encode_config(decoded_config("dev")))
    assert settings.config.environment == "dev"


def test_secret_override_must_be_a_pulumi_secret():
    config = encode_config(decoded_config("prod"))
    plaintext = "p" * 40
    config[f"{PROJECT}:redisPassword"] = plaintext
    with pytest.raises(StackConfigError) as error:
        run_program("prod", lambda: load_settings(), config)
    assert "real-estate-ai:redisPassword: is stored in plain text" in str(error.value)
    assert plaintext not in str(error.value)


def test_short_secret_override_is_rejected_without_echoing_it():
    config = encode_config(decoded_config("prod"))
    short = "tooShortSecret"
    config[f"{PROJECT}:apiKey"] = short
    with pytest.raises(StackConfigError) as error:
        run_program("prod", lambda: load_settings(), config, secret_keys=[f"{PROJECT}:apiKey"])
    assert "real-estate-ai:apiKey: must be a string of at least 32 characters" in str(error.value)
    assert short not in str(error.value)


@pytest.mark.parametrize("value", [" " + "k" * 40, "k" * 40 + " ", "  " + "k" * 40 + "  "])
def test_a_secret_with_a_space_at_either_end_is_refused_without_echoing_it(value):
    config = {**encode_config(decoded_config("prod")), f"{PROJECT}:apiKey": value}
    with pytest.raises(StackConfigError) as error:
        run_program("prod", lambda: load_settings(), config, secret_keys=[f"{PROJECT}:apiKey"])
    assert "real-estate-ai:apiKey: must not begin or end with a space (configuration files drop it)" in str(error.value)
    assert "k" * 40 not in str(error.value)


def test_secret_with_a_line_break_is_rejected_without_echoing_it():
    config = encode_config(decoded_config("prod"))
    value = "k" * 40 + "\nrepo2-storage-verify-tls=n"
    config[f"{PROJECT}:backupOffsiteSecretAccessKey"] = value
    config[f"{PROJECT}:backupOffsiteAccessKeyId"] = "AKIDEXAMPLE"
    keys = [f"{PROJECT}:backupOffsiteSecretAccessKey", f"{PROJECT}:backupOffsiteAccessKeyId"]
    with pytest.raises(StackConfigError) as error:
        run_program("prod", lambda: load_settings(), config, secret_keys=keys)
    assert "backupOffsiteSecretAccessKey: must be one line of at most 1024 printable characters" in str(error.value)
    assert "verify-tls" not in str(error.value)


@pytest.mark.parametrize("key, value, message", [
    ("alertSmsWebhookUrl", "http://sms.example.com/hook?token=t0k3n", "an https URL without query or fragment"),
    ("alertSmsWebhookUrl", "https://sms.example.com/hook?token=t0k3n", "an https URL without query or fragment"),
    ("alertHeartbeatUrl", "https://hc.example.com/ping?key=t0k3n", "an https URL without query or fragment"),
    ("alertDingtalkRobotUrl", "http://oapi.dingtalk.com/robot/send?access_token=t0k3n", "the robot's https webhook URL with its access_token query"),
    ("alertDingtalkRobotUrl", "https://oapi.dingtalk.com/robot/send?access_token=t0k3n#fragment", "the robot's https webhook URL with its access_token query"),
])
def test_a_secrets_shape_is_checked_at_load_before_any_resource_without_showing_it(key, value, message):
    """A malformed URL secret once surfaced after 100+ resources were registered, as a traceback."""
    config = encode_config(decoded_config("prod"))
    secrets = {"alertWecomApiSecret": "w" * 8, "alertSmsWebhookUrl": "https://sms.example.com/hook",
               "alertDingtalkRobotUrl": "https://oapi.dingtalk.com/robot/send?access_token=ok", "alertDingtalkRobotSecret": "SECsign",
               "alertHeartbeatUrl": "https://hc.example.com/ping/", key: value}
    config.update({f"{PROJECT}:{k}": v for k, v in secrets.items()})
    rendered = RenderedStack(stack="prod")
    with pytest.raises(StackConfigError) as error:
        run_program("prod", lambda: load_settings(), config, secret_keys=[f"{PROJECT}:{k}" for k in secrets], into=rendered)
    found = [line for line in str(error.value).splitlines() if key in line]
    assert found == [f"  - {PROJECT}:{key}: must be {message} (the value is not shown: it may carry a token)"]
    assert "t0k3n" not in str(error.value) and rendered.registrations == []


# Valid Kubernetes that an over-strict check once refused.
ACCEPTED = [
    ("api.resources.limits.cpu", 2),
    ("api.resources.requests.cpu", 0.5),
    ("backups.postgres.restoreDrillSchedule", "45 5 * * SUN"),
    ("backups.postgres.offsiteDrillSchedule", "45 6 1 */3 *"),
    ("backups.postgres.verifySchedule", "15 5 * JAN-DEC MON-FRI"),
    ("backups.postgres.incrementalSchedule", "45 0,2,4-23 * * *"),
    ("redis.image", "redis:7"),
    ("milvus.etcd.image", "registry.example.com:5000/etcd:3.5"),
    ("api.version", "1.2.0-rc.1"),
    # What users write that the consumers take (issue 26): each was refused once, or nearly.
    ("monitoring.alerting.smtp.sender", "Platform Alerts <alerts@example.com>"),
    ("monitoring.alerting.smtp.sender", "Real Estate AI - P0 <alerts@example.com>"),
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com:465"),
    ("monitoring.alerting.smtp.smarthost", "10.0.0.25:25"),
    ("monitoring.alerting.smtp.smarthost", "smtp.example.com:65535"),
    ("monitoring.alerting.wecom.agentId", 1000002),
    ("monitoring.alerting.onCall.emails", ["first.last+oncall@example.com", "on-call_team@mail-1.example.com"]),
    ("monitoring.runbookBaseUrl", "https://git.example.com:8443/runbooks"),
    ("monitoring.alerting.wecom.apiUrl", "https://wecom.example.com:8443/cgi-bin/"),
    ("monitoring.namespace", "observability"),
    ("postgres.operator", {"install": True, "namespace": "percona-operator"}),
    ("namespace.name", "kubernetes-apps"),
    ("backups.offsite.bucket", "real-estate.backups.prod"),
    ("backups.offsite.bucket", "s3alias-backups"),
    ("milvus.externalS3.bucket", "xn-milvus"),
    ("backups.offsite.endpoint", "10.1.2.3"),
    ("api.resources.requests.memory", "1.5Gi"),
    ("redis.maxmemory", "1.5Gi"),
    ("kubernetes.nodeLocalDns", "fd00::a"),
    ("backups.offsite.cidrs", ["203.0.113.7"]),
    ("milvus.etcd.image", "registry.example.com:5000/team_a/etcd:3.5"),
    ("milvus.milvus.image", "localhost:5000/milvus:v2.6.24"),
    ("ingress.host", "api.real-estate-2.example.com"),
]


@pytest.mark.parametrize("path,new", ACCEPTED, ids=[f"{p}={v!r}" for p, v in ACCEPTED])
def test_valid_kubernetes_values_are_accepted(path, new):
    settings = _load("prod", with_value(decoded_config("prod"), path, new))
    assert settings.config.environment == "prod"


def test_secret_override_replaces_the_generated_value():
    config = encode_config(decoded_config("prod"))
    chosen = "S" * 20 + "e" * 20
    config[f"{PROJECT}:apiKey"] = chosen
    rendered = render("prod", config, secret_keys=[f"{PROJECT}:apiKey"])
    assert rendered.find("Secret", "api-secrets")["stringData"]["api-key"] == chosen
    assert "secrets-api-key" not in [r.name for r in rendered.registrations if r.type.startswith("random:")]
    assert "secrets-redis-password" in [r.name for r in rendered.registrations if r.type.startswith("random:")]
    assert rendered.outputs["apiKey"].is_secret and rendered.outputs["apiKey"].value == chosen


@pytest.mark.parametrize("quantity,millicores", [("500m", 500), ("2", 2000), ("0.5", 500), ("1.25", 1250)])
def test_cpu_quantities(quantity, millicores):
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize("quantity,size", [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("10G", 10**10), ("100", 100)])
def test_byte_quantities(quantity, size):
    assert byte_count(quantity) == size


@pytest.mark.parametrize("given,expected", [
    ("3f2a9c1d", "3f2a9c1d"),
    ("v1.2.3-4-gabc", "v1.2.3-4-gabc"),
    ("abc\nrepo=x", "abcrepox"),
    ("-leading", "leading"),
    ("é+1", "1"),
    ("", None),
])
def test_build_revision_is_safe_for_a_tag_and_a_label(monkeypatch, given, expected):
    from settings import revision

    monkeypatch.setenv("BUILD_REVISION", given)
    result = revision.build_revision()
    if expected is None:
        # Falls back to the checkout's commit (or 'unknown' outside one).
        assert result and all(c.isalnum() for c in result)
    else:
        assert result == expected


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def test_the_build_revision_names_app_s_content_not_the_commit(monkeypatch, tmp_path):
    """A docs commit builds the same tag (no new digest to canary through test and prod); a change to app/ does not;
    uncommitted changes say so."""
    from settings import revision

    monkeypatch.delenv("BUILD_REVISION", raising=False)
    assert revision.build_revision(tmp_path) == "unknown"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "README.md").write_text("a\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "one")
    first = revision.build_revision(tmp_path)
    assert len(first) == 12 and all(c in "0123456789abcdef" for c in first)
    (tmp_path / "README.md").write_text("b\n")
    _git(tmp_path, "commit", "-qam", "docs")
    assert revision.build_revision(tmp_path) == first
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    assert revision.build_revision(tmp_path) == f"{first}-dirty"
    _git(tmp_path, "commit", "-qam", "app")
    second = revision.build_revision(tmp_path)
    assert second != first and len(second) == 12
    monkeypatch.setenv("BUILD_REVISION", "override-1")
    assert revision.build_revision(tmp_path) == "override-1"


def test_the_connection_budget_counts_each_pods_probe_connection():
    config = decoded_config("prod")
    assert config["real-estate-ai:api"]["autoscaling"]["maxReplicas"] == 10 and config["real-estate-ai:api"].get("databasePoolSize", 10) == 10
    _load("prod", with_value(config, "postgres.pgbouncer.maxClientConn", 110))  # exactly 10 × (10 + 1)
    with pytest.raises(StackConfigError, match=r"10 API pods × \(databasePoolSize 10 \+ 1 probe\) = 110 client connections, above maxClientConn 109"):
        _load("prod", with_value(config, "postgres.pgbouncer.maxClientConn", 109))


FORGED = "x\n  - real-estate-ai: 164 objects written\x1b[32m OK\x1b[0m\r"


@pytest.mark.parametrize("path", ["api.image", "api.version", "backups.offsite.bucket", "backups.postgres.fullSchedule",
                                  "postgres.restoreFrom.target", "ingress.host", "api.resources.limits.cpu"])
def test_no_value_can_print_a_line_of_its_own(path):
    """Each problem is one line whatever the value holds: line breaks, carriage returns and terminal escapes escaped."""
    config = with_value(decoded_config("prod"), path, FORGED)
    with pytest.raises(StackConfigError) as error:
        _load("prod", config)
    lines = str(error.value).split("\n")
    assert lines[0] == "invalid configuration for stack 'prod':"
    assert all(line.startswith(f"  - {PROJECT}:") for line in lines[1:])
    assert not any(c in str(error.value) for c in "\r\x1b")
    (line,) = [line for line in lines if path.split(".")[-1] in line]
    assert "\\n  - real-estate-ai: 164 objects written\\x1b[32m OK\\x1b[0m\\r" in line
