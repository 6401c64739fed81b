"""Application configuration and feature flags: `app.properties` in a ConfigMap the API mounts.

Nothing secret belongs here. The checksum of the rendered file goes on the API pod template,
so any change to config or flags rolls the API pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import AppConfigSettings
from components.workload import labels, sha256
from components.component import Component

CONFIG_MAP_NAME = "api-config"
PROPERTIES_FILE = "app.properties"


def render_properties(settings: AppConfigSettings, version: str, environment: str) -> str:
    """The properties file, in a stable order so the checksum changes only when a value does."""
    entries = [
        ("app.name", settings.name),
        ("app.version", version),
        ("app.environment", environment),
        ("recommendation.model", settings.recommendation.model),
        ("recommendation.top_k", str(settings.recommendation.top_k)),
        ("evaluation.model", settings.evaluation.model),
        ("evaluation.confidence_threshold", str(settings.evaluation.confidence_threshold)),
        ("ab_test.enabled", str(settings.ab_test.enabled).lower()),
        ("ab_test.variant_b_percent", str(settings.ab_test.variant_b_percent)),
        ("grey_release.enabled", str(settings.grey_release.enabled).lower()),
        ("grey_release.percent", str(settings.grey_release.percent)),
        ("grey_release.header", settings.grey_release.header),
        ("grey_release.features", ",".join(settings.grey_release.features)),
    ]
    if settings.ab_test.variant_b.recommendation_model:
        entries.append(("ab_test.variant_b.recommendation_model", settings.ab_test.variant_b.recommendation_model))
    entries += [(f"feature.{name}.enabled", str(enabled).lower()) for name, enabled in sorted(settings.features.items())]
    for key, value in entries:
        # Validation already refuses such values; the builder refuses them again, so no value can add a line.
        if not (key + value).isprintable() or "=" in key:
            raise ValueError(f"app.properties entry {key!r} would not be one line")
    return "".join(f"{key}={value}\n" for key, value in entries)


@dataclass
class AppConfigArgs:
    namespace: pulumi.Input[str]
    stack: str
    environment: str
    version: str
    settings: AppConfigSettings


class AppConfig(Component):
    config_map_name: pulumi.Output[str]
    checksum: str

    def __init__(self, name: str, args: AppConfigArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:app_config:AppConfig", name, opts)
        properties = render_properties(args.settings, args.version, args.environment)
        self.checksum = sha256(properties)
        config_map = k8s.core.v1.ConfigMap(
            self.child_name(CONFIG_MAP_NAME),
            metadata={
                "name": CONFIG_MAP_NAME,
                "namespace": args.namespace,
                "labels": labels("api", args.stack, "config", args.version),
            },
            data={PROPERTIES_FILE: properties},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.config_map_name = config_map.metadata.name
        self.register_outputs({"config_map_name": self.config_map_name, "checksum": self.checksum})
