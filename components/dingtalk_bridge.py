"""DingTalk (钉钉) for Alertmanager: timonwong/prometheus-webhook-dingtalk, which turns Alertmanager's webhook into
DingTalk robot messages. Alertmanager posts to http://dingtalk-bridge.<namespace>:8060/dingtalk/<target>/send.

Image evidence (timonwong/prometheus-webhook-dingtalk, tag v2.1.0, 2022-04-21, its latest release): Dockerfile final
stage `gcr.io/distroless/static:nonroot`, binary `/bin/prometheus-webhook-dingtalk` as ENTRYPOINT, `EXPOSE 8060`,
flags `--config.file`, `--web.listen-address`; health at `/-/healthy` and `/-/ready`. Its config has no `*_file`
variants, so the whole file (robot URL with its access token, signing secret) is a Kubernetes Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.component import Component
from components.single_pod import config_file_container, single_pod_service
from components.workload import empty_dir, labels, secret_volume, service_dns, sha256
from settings.monitoring import LEVELS, DingtalkSettings

NAME = "dingtalk-bridge"
PORT = 8060
CONFIG_DIR = "/etc/dingtalk"


def bridge_url(namespace: str) -> str:
    return f"http://{service_dns(NAME, namespace)}:{PORT}"


def render_config(settings: DingtalkSettings, robot_url: str, robot_secret: str) -> str:
    """config.yml: one target per escalation level, all posting to the stack's robot (its group). The URL's shape and
    the secret's single line are checked when the stack is loaded (settings.loading)."""
    targets = {settings.targets[level]: {"url": robot_url, "secret": robot_secret} for level in LEVELS}
    return yaml.safe_dump({"timeout": "5s", "targets": targets}, sort_keys=True)


@dataclass
class DingtalkBridgeArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: DingtalkSettings
    robot_url: pulumi.Input[str]
    robot_secret: pulumi.Input[str]


class DingtalkBridge(Component):
    def __init__(self, name: str, args: DingtalkBridgeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:monitoring:DingtalkBridge", name, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        meta = {"namespace": args.namespace, "labels": labels(NAME, args.stack, "monitoring")}
        config = pulumi.Output.all(args.robot_url, args.robot_secret).apply(lambda v: render_config(s, v[0], v[1]))
        secret = k8s.core.v1.Secret(
            self.child_name(f"{NAME}-config"),
            metadata={"name": f"{NAME}-config", **meta},
            string_data={"config.yml": pulumi.Output.secret(config)},
            opts=child,
        )
        container = config_file_container(NAME, s.image, f"{CONFIG_DIR}/config.yml", PORT, [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            # The image's WORKDIR, declared a VOLUME: writable, off the read-only root.
            {"name": "work", "mountPath": "/prometheus-webhook-dingtalk"},
        ], ready_path="/-/ready")
        single_pod_service(
            self, NAME, args.namespace, args.stack, container,
            [secret_volume("config", secret.metadata.name, {"config.yml": "config.yml"}), empty_dir("work", "16Mi")], PORT,
            # A new robot or secret restarts the bridge (it reads its file at start).
            template_annotations={"real-estate-ai/config-checksum": config.apply(sha256)},
        )
        self.register_outputs({})
