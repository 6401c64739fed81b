"""A single-node S3-compatible object store (SeaweedFS) as a StatefulSet: Milvus' object storage and the store
for Milvus backups.

MinIO's images are no longer published and its community edition is archived; SeaweedFS (Apache-2.0) publishes
versioned images, runs as any UID with a read-only root (it writes /data and its sockets in /tmp), serves
unauthenticated health endpoints, and creates buckets on first use for the admin identity configured here.
"""

from __future__ import annotations

import json
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

PORT = 8333
CONFIG_DIR = "/etc/seaweedfs-s3"
CERTS_DIR = "/etc/seaweedfs-tls"
# The key of the credentials Secret that holds the S3 identities file.
IDENTITIES_KEY = "s3.json"


def identities(access_key: str, secret_key: str) -> str:
    """SeaweedFS' S3 identities file: one admin identity (it may create buckets), nothing anonymous."""
    return json.dumps({
        "identities": [{
            "name": "platform",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]
    }, indent=2) + "\n"


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 API answers, as its clients (Milvus, milvus-backup) are told."""

    host: str
    port: int
    use_ssl: bool
    bucket: str
    region: str


@dataclass
class ObjectStoreArgs:
    name: str
    component: str
    namespace: pulumi.Input[str]
    stack: str
    image: str
    storage: Storage
    resources: Resources
    # Secret holding IDENTITIES_KEY.
    credentials_secret: pulumi.Input[str]
    protect: bool
    # Changes whenever the credentials do: the pod restarts to read them.
    credentials_checksum: pulumi.Input[str]
    # Secret with tls.crt and tls.key: the S3 API then serves HTTPS only.
    tls_secret: Optional[pulumi.Input[str]] = None


def object_store(args: ObjectStoreArgs, parent: pulumi.Resource) -> StatefulService:
    scheme = "HTTPS" if args.tls_secret else "HTTP"

    def probe(path: str, period: int) -> dict:
        return {**http_probe(path, PORT, 0, period), "httpGet": {"path": path, "port": PORT, "scheme": scheme}}

    command = [
        "/usr/bin/weed", "server", "-dir=/data", "-ip.bind=0.0.0.0",
        # Volumes as the disk allows, 1 GiB each: one pod, no replication.
        "-volume.max=0", "-master.volumeSizeLimitMB=1024",
        "-s3", f"-s3.port={PORT}", f"-s3.config={CONFIG_DIR}/{IDENTITIES_KEY}",
    ]
    mounts = [
        # Unix sockets of the S3 and filer servers.
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "credentials", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    volumes = [empty_dir("tmp", "64Mi"), secret_volume("credentials", args.credentials_secret, {IDENTITIES_KEY: IDENTITIES_KEY})]
    if args.tls_secret:
        command += [f"-s3.cert.file={CERTS_DIR}/tls.crt", f"-s3.key.file={CERTS_DIR}/tls.key"]
        mounts.append({"name": "certs", "mountPath": CERTS_DIR, "readOnly": True})
        volumes.append(secret_volume("certs", args.tls_secret, {"tls.crt": "tls.crt", "tls.key": "tls.key"}))
    container = {
        "name": "seaweedfs",
        "image": args.image,
        "imagePullPolicy": "Always",
        # The binary itself, not the image's entrypoint (which only changes users when started as root).
        "command": command,
        "ports": [{"name": "s3", "containerPort": PORT, "protocol": "TCP"}],
        "resources": args.resources.to_kubernetes(),
        "securityContext": container_security_context(),
        "startupProbe": startup_probe(probe("/healthz", 10), 120),
        "livenessProbe": probe("/healthz", 10),
        "readinessProbe": probe("/readyz", 5),
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
            pod_annotations={"real-estate-ai/secrets-checksum": args.credentials_checksum},
        ),
        parent=parent,
    )
