"""Redis: a StatefulSet with append-only persistence and a password from the Secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import RedisSettings
from components.stateful import StatefulService, StatefulServiceArgs
from components.secrets import RedisCredentials
from components.component import Component
from components.workload import (
    byte_count_to_redis,
    container_security_context,
    empty_dir,
    exec_probe,
    image_version,
    labels,
    secret_volume,
    service_dns,
    sha256,
)

NAME = "redis"
PORT = 6379
METRICS_PORT = 9121
DATA_PATH = "/data"
CONFIG_PATH = "/etc/redis"
# Outside CONFIG_PATH: a mount nested in a read-only ConfigMap volume cannot be created.
SECRET_PATH = "/run/secrets/redis"


def host(namespace: str) -> str:
    return service_dns(NAME, namespace)


def render_redis_conf(settings: RedisSettings) -> str:
    """redis.conf without the password, which is passed from the Secret at start."""
    return "".join(
        f"{line}\n"
        for line in [
            f"port {PORT}",
            f"include {SECRET_PATH}/requirepass.conf",
            f"dir {DATA_PATH}",
            # AOF with one fsync a second: at most a second of writes lost on a crash.
            "appendonly yes",
            "appendfsync everysec",
            "aof-use-rdb-preamble yes",
            # RDB snapshots as well: the backup job copies dump.rdb.
            "save 3600 1 300 100 60 10000",
            f"maxmemory {byte_count_to_redis(settings.maxmemory)}",
            # A cache that evicts least-recently-used keys instead of refusing writes.
            "maxmemory-policy allkeys-lru",
            "protected-mode no",
        ]
    )


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: RedisSettings
    credentials: RedisCredentials
    protect: bool


class Redis(Component):
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:redis:Redis", name, opts)
        s = args.settings
        redis_conf = render_redis_conf(s)
        config_map = k8s.core.v1.ConfigMap(
            self.child_name("redis-config"),
            metadata={"name": "redis-config", "namespace": args.namespace, "labels": labels(NAME, args.stack, "cache")},
            data={"redis.conf": redis_conf},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # redis-cli takes the password from REDISCLI_AUTH, read from the mounted file at probe time.
        ping = exec_probe(
            ["sh", "-c", f'REDISCLI_AUTH="$(cat {SECRET_PATH}/password)" exec redis-cli -h 127.0.0.1 -p {PORT} ping'],
            0,
            10,
        )
        container = {
            "name": NAME,
            "image": s.image,
            "imagePullPolicy": "Always",
            "command": ["redis-server"],
            "args": [f"{CONFIG_PATH}/redis.conf"],
            "ports": [{"name": "redis", "containerPort": PORT, "protocol": "TCP"}],
            "resources": s.resources.to_kubernetes(),
            "securityContext": container_security_context(),
            "startupProbe": {**ping, "failureThreshold": 30},
            "livenessProbe": ping,
            "readinessProbe": {**ping, "periodSeconds": 5},
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_PATH, "readOnly": True},
                {"name": "credentials", "mountPath": SECRET_PATH, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        # oliver006/redis_exporter: a static binary (/redis_exporter, the image's entrypoint) in a scratch image;
        # it writes nothing, so a read-only root holds. The password comes from the same Secret as Redis'.
        exporter = {
            "name": "exporter",
            "image": s.exporter_image,
            "imagePullPolicy": "Always",
            "env": [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {
                    "name": args.credentials.secret_name, "key": args.credentials.password_key}}},
                {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{METRICS_PORT}"},
            ],
            "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "securityContext": container_security_context(),
            "livenessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 3},
            "readinessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        }
        stateful = StatefulService(
            StatefulServiceArgs(
                name=NAME,
                component="cache",
                namespace=args.namespace,
                stack=args.stack,
                version=image_version(s.image),
                port=PORT,
                port_name="redis",
                container=container,
                sidecars=[exporter],
                extra_ports={"metrics": METRICS_PORT},
                storage=s.storage,
                data_path=DATA_PATH,
                protect=args.protect,
                extra_volumes=[
                    {"name": "config", "configMap": {"name": config_map.metadata.name}},
                    secret_volume(
                        "credentials",
                        args.credentials.secret_name,
                        {args.credentials.password_key: "password", args.credentials.config_key: "requirepass.conf"},
                    ),
                    empty_dir("tmp", "64Mi"),
                ],
                pod_annotations={
                    "real-estate-ai/config-checksum": sha256(redis_conf),
                    # requirepass.conf is read at start: a new password restarts Redis.
                    "real-estate-ai/secrets-checksum": args.credentials.checksum,
                },
            ),
            parent=self,
        )
        self.stateful_set = stateful.stateful_set
        self.service_name = stateful.service.metadata.name
        self.register_outputs({"service_name": self.service_name})

