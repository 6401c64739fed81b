"""A single-drive MinIO server as a StatefulSet: Milvus' object storage and the backup object store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from settings import Resources, Storage
from components.stateful import StatefulService, StatefulServiceArgs
from components.workload import (
    container_security_context,
    empty_dir,
    http_probe,
    image_version,
    secret_volume,
    startup_probe,
)

PORT = 9000
CERTS_DIR = "/etc/minio/certs"


@dataclass
class MinioArgs:
    name: str
    component: str
    namespace: pulumi.Input[str]
    stack: str
    image: str
    storage: Storage
    resources: Resources
    credentials_secret: pulumi.Input[str]
    user_key: str
    password_key: str
    protect: bool
    # Secret with public.crt and private.key: MinIO then serves HTTPS only.
    tls_secret: Optional[pulumi.Input[str]] = None


def minio(args: MinioArgs, parent: pulumi.Resource) -> StatefulService:
    scheme = "HTTPS" if args.tls_secret else "HTTP"

    def probe(path: str, period: int) -> dict:
        return {**http_probe(path, PORT, 0, period), "httpGet": {"path": path, "port": PORT, "scheme": scheme}}

    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "credentials", "mountPath": "/run/secrets", "readOnly": True},
    ]
    volumes = [
        empty_dir("tmp", "64Mi"),
        secret_volume("credentials", args.credentials_secret, {args.user_key: "access_key", args.password_key: "secret_key"}),
    ]
    if args.tls_secret:
        mounts.append({"name": "certs", "mountPath": CERTS_DIR, "readOnly": True})
        volumes.append(secret_volume("certs", args.tls_secret, {"public.crt": "public.crt", "private.key": "private.key"}))
    container = {
        "name": "minio",
        "image": args.image,
        "imagePullPolicy": "Always",
        "command": ["minio"],
        # Without TLS the certificate directory still must not default to $HOME, which a read-only root cannot hold.
        "args": ["server", "/data", "--address", f":{PORT}", "--certs-dir", CERTS_DIR if args.tls_secret else "/tmp/certs"],
        # MinIO reads *_FILE names relative to /run/secrets: credentials stay out of the environment.
        "env": [
            {"name": "MINIO_ROOT_USER_FILE", "value": "access_key"},
            {"name": "MINIO_ROOT_PASSWORD_FILE", "value": "secret_key"},
        ],
        "ports": [{"name": "s3", "containerPort": PORT, "protocol": "TCP"}],
        "resources": args.resources.to_kubernetes(),
        "securityContext": container_security_context(),
        "startupProbe": startup_probe(probe("/minio/health/live", 10), 120),
        "livenessProbe": probe("/minio/health/live", 10),
        "readinessProbe": probe("/minio/health/ready", 5),
        "volumeMounts": mounts,
    }
    return StatefulService(
        StatefulServiceArgs(
            name=args.name,
            component=args.component,
            namespace=args.namespace,
            stack=args.stack,
            version=image_version(args.image),
            port=PORT,
            port_name="s3",
            container=container,
            storage=args.storage,
            data_path="/data",
            protect=args.protect,
            extra_volumes=volumes,
        ),
        parent=parent,
    )
