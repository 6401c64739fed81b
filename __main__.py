"""real-estate-ai platform: validate this stack's config, build the platform, export its outputs."""

import pulumi

from components.platform import Platform, PlatformArgs
from settings import load_settings
from settings.revision import APP_DIR, build_revision


# Validation raises before any resource is registered.
settings = load_settings()
platform = Platform(
    "real-estate-ai",
    PlatformArgs(settings=settings, api_build_context=APP_DIR, revision=build_revision()),
)

pulumi.export("environment", settings.config.environment)
pulumi.export("namespace", platform.namespace)
pulumi.export("apiService", platform.api_service)
pulumi.export("apiImage", platform.api_image)
pulumi.export("postgresService", platform.postgres_service)
pulumi.export("redisService", platform.redis_service)
pulumi.export("milvusService", platform.milvus_service)
pulumi.export("ingressUrl", platform.ingress_url)
# Secret: shown only with `pulumi stack output apiKey --show-secrets`.
pulumi.export("apiKey", platform.api_key)
# Secret: the X-Tester-Key that lets a tester join or leave the grey release (`pulumi stack output apiTesterKey --show-secrets`).
pulumi.export("apiTesterKey", platform.api_tester_key)
if platform.offsite_cipher_pass is not None:
    # Secret: the passphrase of the encrypted off-site backups, needed to restore them anywhere else.
    pulumi.export("offsiteBackupCipherPass", platform.offsite_cipher_pass)
