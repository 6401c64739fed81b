"""Milvus standalone with its etcd (metadata) and an S3-compatible object store (SeaweedFS), each on its own volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import MilvusSettings
from components.stateful import StatefulService, StatefulServiceArgs
from components import object_store as object_store_module
from components.object_store import ObjectStoreArgs, S3Endpoint, object_store
from components.secrets import S3Credentials
from components.component import Component
from components.workload import (
    account_node_disk,
    claim_spec,
    container_security_context,
    empty_dir,
    http_probe,
    image_version,
    labels,
    pod_security_context,
    selector_labels,
    service_dns,
    startup_probe,
)

NAME = "milvus"
ETCD_NAME = "milvus-etcd"
S3_NAME = "milvus-s3"
GRPC_PORT = 19530
HEALTH_PORT = 9091
ETCD_PORT = 2379
S3_PORT = object_store_module.PORT


def host(namespace: str) -> str:
    return service_dns(NAME, namespace)


def s3_host(namespace: str) -> str:
    return service_dns(S3_NAME, namespace)


def s3_endpoint(settings: MilvusSettings, namespace: str) -> S3Endpoint:
    """Where Milvus' data lives: the configured external S3 service, or the store in the namespace."""
    external = settings.external_s3
    if external:
        return S3Endpoint(external.endpoint, external.port, external.use_ssl, external.bucket, external.region)
    return S3Endpoint(s3_host(namespace), S3_PORT, False, "milvus", "us-east-1")


@dataclass
class MilvusArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    settings: MilvusSettings
    s3_credentials: S3Credentials
    # Secret holding Milvus' user.yaml with the object store's credentials, and its checksum.
    user_config_secret: pulumi.Input[str]
    user_config_checksum: pulumi.Input[str]
    protect: bool
    # Milvus' data lives in an external S3 service: no object store in the cluster.
    external_store: bool = False


class Milvus(Component):
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: MilvusArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:milvus:Milvus", name, opts)
        self._args = args
        etcd = self._etcd()
        dependencies = [etcd.stateful_set]
        if not args.external_store:
            dependencies.append(self._object_store().stateful_set)
        self.deployment = self._milvus(depends_on=dependencies)
        self.etcd_stateful_set = etcd.stateful_set
        self.register_outputs({"service_name": self.service_name})

    def _etcd(self) -> StatefulService:
        s = self._args.settings.etcd
        health = http_probe("/health", ETCD_PORT, 0, 10)
        advertise = f"http://{service_dns(ETCD_NAME, self._args.namespace_name)}:{ETCD_PORT}"
        container = {
            "name": "etcd",
            "image": s.image,
            "imagePullPolicy": "Always",
            # The image is distroless: the binary by its path.
            "command": ["/usr/local/bin/etcd"],
            "args": [
                "--name=milvus-etcd-0",
                "--data-dir=/etcd",
                f"--listen-client-urls=http://0.0.0.0:{ETCD_PORT}",
                f"--advertise-client-urls={advertise}",
            ],
            # The compaction and quota values Milvus documents for its etcd.
            "env": [
                {"name": "ETCD_AUTO_COMPACTION_MODE", "value": "revision"},
                {"name": "ETCD_AUTO_COMPACTION_RETENTION", "value": "1000"},
                {"name": "ETCD_QUOTA_BACKEND_BYTES", "value": "4294967296"},
                {"name": "ETCD_SNAPSHOT_COUNT", "value": "50000"},
            ],
            "ports": [{"name": "client", "containerPort": ETCD_PORT, "protocol": "TCP"}],
            "resources": s.resources.to_kubernetes(),
            "securityContext": container_security_context(),
            "startupProbe": startup_probe(health, 120),
            "livenessProbe": health,
            "readinessProbe": {**health, "periodSeconds": 5},
        }
        return StatefulService(
            StatefulServiceArgs(
                name=ETCD_NAME,
                component="vector-metadata",
                namespace=self._args.namespace,
                stack=self._args.stack,
                version=image_version(s.image),
                port=ETCD_PORT,
                port_name="client",
                container=container,
                storage=s.storage,
                data_path="/etcd",
                protect=self._args.protect,
            ),
            parent=self,
        )

    def _object_store(self) -> StatefulService:
        s = self._args.settings.object_store
        credentials = self._args.s3_credentials
        return object_store(
            ObjectStoreArgs(
                name=S3_NAME,
                component="vector-storage",
                namespace=self._args.namespace,
                stack=self._args.stack,
                image=s.image,
                storage=s.storage,
                resources=s.resources,
                credentials_secret=credentials.secret_name,
                protect=self._args.protect,
                credentials_checksum=credentials.checksum,
            ),
            parent=self,
        )

    def _milvus(self, depends_on: list[pulumi.Resource]) -> k8s.apps.v1.Deployment:
        a = self._args
        s = a.settings.milvus
        meta_labels = labels(NAME, a.stack, "vector-database", image_version(s.image))
        selector = selector_labels(NAME, a.stack)
        child = pulumi.ResourceOptions(parent=self)
        k8s.core.v1.ServiceAccount(
            self.child_name(NAME),
            metadata={"name": NAME, "namespace": a.namespace, "labels": meta_labels},
            automount_service_account_token=False,
            opts=child,
        )
        claim = k8s.core.v1.PersistentVolumeClaim(
            self.child_name("milvus-data"),
            metadata={
                "name": "milvus-data",
                "namespace": a.namespace,
                "labels": meta_labels,
                # Bound on first consumer: do not wait for a Bound phase before the Deployment exists.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec=claim_spec(s.storage),
            opts=pulumi.ResourceOptions(parent=self, protect=a.protect),
        )
        service = k8s.core.v1.Service(
            self.child_name(NAME),
            metadata={"name": NAME, "namespace": a.namespace, "labels": meta_labels},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                    {"name": "metrics", "port": HEALTH_PORT, "targetPort": "metrics", "protocol": "TCP"},
                ],
            },
            opts=child,
        )
        self.service_name = service.metadata.name
        healthz = http_probe("/healthz", HEALTH_PORT, 0, 15, timeout=5)
        container = {
            "name": NAME,
            "image": s.image,
            "imagePullPolicy": "Always",
            "command": ["milvus", "run", "standalone"],
            "env": [
                {"name": "DEPLOY_MODE", "value": "STANDALONE"},
                {"name": "ETCD_ENDPOINTS", "value": f"{ETCD_NAME}:{ETCD_PORT}"},
            ],
            "ports": [
                {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            ],
            "resources": s.resources.to_kubernetes(),
            "securityContext": container_security_context(),
            # Loading collections after a restart can take minutes.
            "startupProbe": startup_probe(healthz, 600),
            "livenessProbe": healthz,
            "readinessProbe": {**healthz, "periodSeconds": 10},
            "volumeMounts": [
                {"name": "data", "mountPath": "/var/lib/milvus"},
                # subPath (the directory holds the image's milvus.yaml too) never sees a change: the checksum
                # annotation restarts the pod instead.
                {"name": "user-config", "mountPath": "/milvus/configs/user.yaml", "subPath": "user.yaml", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        return k8s.apps.v1.Deployment(
            self.child_name(NAME),
            metadata={"name": NAME, "namespace": a.namespace, "labels": meta_labels},
            spec={
                "replicas": 1,
                # One writer on a ReadWriteOnce volume: the old pod must stop before the new one starts.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": meta_labels, "annotations": {"real-estate-ai/secrets-checksum": a.user_config_checksum}},
                    "spec": account_node_disk({
                        "serviceAccountName": NAME,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": pod_security_context(),
                        "terminationGracePeriodSeconds": 60,
                        "containers": [container],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": claim.metadata.name}},
                            {"name": "user-config", "secret": {"secretName": a.user_config_secret}},
                            empty_dir("tmp", "256Mi"),
                        ],
                    }),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
