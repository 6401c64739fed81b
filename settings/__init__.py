"""Stack configuration, read once at the edge and validated into typed settings.

Components never read Pulumi config: `__main__.py` calls `load_settings()` and hands the resulting
`PlatformSettings` to the components. Every problem in a stack's config is reported in one `StackConfigError` that
names the stack, the key path and what is allowed, and it is raised before any resource is registered.

One module per concern: `loading` (reading the stack, secrets, the report), `platform` (the namespace's shape and
its workloads), `app_config` (the API's config and feature flags), `postgres`, `monitoring`, `release`, `routing`,
`values` (the value types), `cron`, and `rules` (checks across keys). The program, the offline render and the tests
share them; this package names what they import.
"""

from settings.app_config import (
    FEATURES,
    AbTestSettings,
    AppConfigSettings,
    EvaluationSettings,
    GreyReleaseSettings,
    RecommendationSettings,
    VariantBSettings,
)
from settings.loading import (
    ALERT_SECRET_KEYS,
    MIN_SECRET_LENGTH,
    PROJECT,
    SECRET_KEYS,
    PlatformSettings,
    SecretOverrides,
    StackConfigError,
    load_settings,
    plain_values,
    required_secret_keys,
)
from settings.platform import (
    ApiSettings,
    AutoscalingSettings,
    BackupSettings,
    KubernetesSettings,
    MilvusSettings,
    NamespaceSettings,
    PlatformConfig,
    RedisSettings,
)
from settings.postgres import OffsiteSettings, PatroniSettings, PgBouncerSettings, PostgresSettings
from settings.routing import IngressSettings, TlsSettings
from settings.values import Resources, Storage, byte_count, cpu_millicores, make_resources

__all__ = [
    "ALERT_SECRET_KEYS", "FEATURES", "MIN_SECRET_LENGTH", "PROJECT", "SECRET_KEYS",
    "AbTestSettings", "ApiSettings", "AppConfigSettings", "AutoscalingSettings", "BackupSettings", "EvaluationSettings",
    "GreyReleaseSettings", "IngressSettings", "KubernetesSettings", "MilvusSettings", "NamespaceSettings",
    "OffsiteSettings", "PatroniSettings", "PgBouncerSettings", "PlatformConfig", "PlatformSettings", "PostgresSettings",
    "RecommendationSettings", "RedisSettings", "Resources", "SecretOverrides", "StackConfigError", "Storage",
    "TlsSettings", "VariantBSettings", "byte_count", "cpu_millicores", "load_settings", "make_resources",
    "plain_values", "required_secret_keys",
]
