"""The API service: its image, Deployment, Service, and in prod its PodDisruptionBudget and autoscaler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from settings import ApiSettings
from components.component import Component
from components.workload import (
    PART_OF,
    account_node_disk,
    SecretKeyRef,
    container_security_context,
    empty_dir,
    http_probe,
    labels,
    pod_security_context,
    pull_policy,
    selector_labels,
)

NAME = "api"
# The program's Service when no canary runs. Not NAME: under a canary Flagger generates 'api', 'api-primary' and
# 'api-canary', owned by the Canary and garbage-collected only once it is deleted; switching the canary off makes the
# engine create this Service before it deletes the Canary (creates come first, deletes last), and a Service by
# Flagger's name would fail with AlreadyExists (tests/test_lifecycle.py).
DIRECT_SERVICE = "api-direct"
IMAGE_REPOSITORY = "real-estate-api"
HTTP_PORT = 8000
SERVICE_PORT = 80
CONFIG_DIR = "/etc/real-estate-ai"
PRE_STOP_SECONDS = 5
# The server's graceful shutdown (app/real_estate_api/server.py GRACEFUL_SHUTDOWN_SECONDS).
DRAIN_SECONDS = 25
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + 10
# Every API pod, whoever made it: Flagger's primary copies the pod labels but renames app.kubernetes.io/name to
# 'api-primary', so policies, budgets and scrapes select on these instead.
POD_LABELS = {"app.kubernetes.io/component": "api", "app.kubernetes.io/part-of": PART_OF}


@dataclass
class ApiSecretRefs:
    database_url: SecretKeyRef
    redis_url: SecretKeyRef
    milvus_url: SecretKeyRef
    api_key: SecretKeyRef
    tester_key: SecretKeyRef


@dataclass
class ApiArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: ApiSettings
    secrets: ApiSecretRefs
    config_map_name: pulumi.Input[str]
    # Changes whenever app.properties does, rolling the pods.
    config_checksum: str
    # Directory holding the API's Dockerfile, built when no pinned image is configured.
    build_context: str
    # Changes with the values behind the secretKeyRefs (env is read once, at start): the pods roll.
    secrets_checksum: pulumi.Input[str] = ""
    # What the image is built from (settings.revision: a tag part, and BUILD_REVISION in the image).
    revision: str = "unknown"
    # Flagger releases this Deployment (release.canary): it generates the Services and scales this one.
    canary: bool = False


def image_name(settings: ApiSettings, revision: str) -> str:
    """One tag per build: the version and the commit it was built from."""
    repository = f"{settings.registry}/{IMAGE_REPOSITORY}" if settings.registry else IMAGE_REPOSITORY
    return f"{repository}:{settings.version}-{revision}"


class Api(Component):
    image: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: ApiArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:api:Api", name, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.image = self._image(args)
        meta_labels = labels(NAME, args.stack, "api", s.version)
        selector = selector_labels(NAME, args.stack)

        k8s.core.v1.ServiceAccount(
            self.child_name(NAME),
            metadata={"name": NAME, "namespace": args.namespace, "labels": meta_labels},
            automount_service_account_token=False,
            opts=child,
        )
        container = {
            "name": NAME,
            "image": self.image,
            "imagePullPolicy": pull_policy(built_locally=s.image is None and s.registry is None),
            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
            "env": [
                args.secrets.database_url.env("DATABASE_URL"),
                args.secrets.redis_url.env("REDIS_URL"),
                args.secrets.milvus_url.env("MILVUS_URL"),
                args.secrets.api_key.env("API_KEY"),
                args.secrets.tester_key.env("TESTER_KEY"),
                {"name": "APP_PROPERTIES", "value": f"{CONFIG_DIR}/app.properties"},
                {"name": "DATABASE_POOL_SIZE", "value": str(s.database_pool_size)},
            ],
            "resources": s.resources.to_kubernetes(),
            "securityContext": container_security_context(),
            "livenessProbe": http_probe(
                "/health", "http", s.liveness.initial_delay_seconds, s.liveness.period_seconds,
                s.liveness.timeout_seconds, s.liveness.failure_threshold,
            ),
            "readinessProbe": http_probe(
                "/ready", "http", s.readiness.initial_delay_seconds, s.readiness.period_seconds,
                s.readiness.timeout_seconds, s.readiness.failure_threshold,
            ),
            # Keep serving while endpoints are removed from Services and ingress, then get SIGTERM.
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        spread = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
        deployment_opts = pulumi.ResourceOptions(
            parent=self,
            # The autoscaler owns the replica count once it exists; under a canary Flagger does (it scales this
            # Deployment to 0 after each promotion and up again for the next release).
            ignore_changes=["spec.replicas"] if s.autoscaling or args.canary else None,
        )
        # Under a canary, a changed pod template is a release that Flagger runs for many minutes and may roll back;
        # its verdict is the Canary's status (ops/release waits for it), not this Deployment's rollout.
        # With no canary the program owns the whole spec again: after a canary, Flagger's field manager still owns
        # spec.replicas (it scaled this Deployment), and an apply without force would conflict with it. With
        # autoscaling the replicas stay ignored, and Flagger's revertOnDeletion hands the count back as it goes.
        deployment_annotations = {"pulumi.com/skipAwait": "true"} if args.canary else {"pulumi.com/patchForce": "true"}
        self.deployment = k8s.apps.v1.Deployment(
            self.child_name(NAME),
            metadata={"name": NAME, "namespace": args.namespace, "labels": meta_labels, "annotations": deployment_annotations},
            spec={
                "replicas": s.autoscaling.min_replicas if s.autoscaling else s.replicas,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": meta_labels,
                        "annotations": {
                            "real-estate-ai/config-checksum": args.config_checksum,
                            "real-estate-ai/secrets-checksum": args.secrets_checksum,
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(HTTP_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": account_node_disk({
                        "serviceAccountName": NAME,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": pod_security_context(),
                        # preStop 5 s + uvicorn's drain (--timeout-graceful-shutdown 25) + 10 s margin before SIGKILL.
                        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                        "topologySpreadConstraints": spread,
                        "containers": [container],
                        "volumes": [
                            {"name": "config", "configMap": {"name": args.config_map_name}},
                            empty_dir("tmp", "64Mi"),
                        ],
                    }),
                },
            },
            opts=deployment_opts,
        )
        if args.canary:
            # Flagger generates the Service by this name (pointing at its primary) and 'api-canary'.
            self.service_name = pulumi.Output.from_input(NAME)
        else:
            # Every API pod of this stack, by the labels Flagger copies to its primary (it renames the name label):
            # switching the canary on, Flagger scales this Deployment to 0 before its own route exists, and this
            # Service, still routed (the Gateway API gives a tie to the older route), must reach the primary's pods.
            self.service_name = self._service(args, meta_labels, {**POD_LABELS, "app.kubernetes.io/instance": args.stack})

        if s.pod_disruption_budget_min_available is not None:
            k8s.policy.v1.PodDisruptionBudget(
                self.child_name(NAME),
                metadata={"name": NAME, "namespace": args.namespace, "labels": meta_labels},
                spec={
                    "minAvailable": s.pod_disruption_budget_min_available,
                    # The primary's pods too, under a canary.
                    "selector": {"matchLabels": POD_LABELS},
                    # Pods that are not ready protect nothing: never let them block a node drain.
                    "unhealthyPodEvictionPolicy": "AlwaysAllow",
                },
                opts=child,
            )
        self.autoscaler_name: Optional[pulumi.Output[str]] = None
        if s.autoscaling:
            hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                self.child_name(NAME),
                metadata={"name": NAME, "namespace": args.namespace, "labels": meta_labels},
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.deployment.metadata.name},
                    "minReplicas": s.autoscaling.min_replicas,
                    "maxReplicas": s.autoscaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": s.autoscaling.target_cpu_utilization},
                            },
                        }
                    ],
                },
                opts=child,
            )
            self.autoscaler_name = hpa.metadata.name
        self.register_outputs({"image": self.image, "service_name": self.service_name})

    def _service(self, args: ApiArgs, meta_labels: dict, selector: dict) -> pulumi.Output[str]:
        """The ClusterIP (or NodePort/LoadBalancer) Service in front of the pods, where no canary generates one."""
        s = args.settings
        service_annotations = {}
        if s.service_type == "LoadBalancer" and not s.await_load_balancer:
            service_annotations["pulumi.com/skipAwait"] = "true"
        service = k8s.core.v1.Service(
            self.child_name(NAME),
            metadata={"name": DIRECT_SERVICE, "namespace": args.namespace, "labels": meta_labels,
                      "annotations": service_annotations},
            spec={
                "type": s.service_type,
                "selector": selector,
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
                # The cloud's load balancer admits the same sources the NetworkPolicy lets through.
                **({"loadBalancerSourceRanges": list(s.load_balancer_source_ranges)} if s.service_type == "LoadBalancer" else {}),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return service.metadata.name

    def _image(self, args: ApiArgs) -> pulumi.Output[str]:
        s = args.settings
        if s.image:
            return pulumi.Output.from_input(s.image)
        built = docker.Image(
            self.child_name(IMAGE_REPOSITORY),
            image_name=image_name(s, args.revision),
            build=docker.DockerBuildArgs(
                context=args.build_context,
                dockerfile=f"{args.build_context}/Dockerfile",
                platform=s.platform,
                args={"APP_VERSION": s.version, "BUILD_REVISION": args.revision},
            ),
            # Without a registry the image stays local (kind: `make up` loads it into the cluster).
            skip_push=s.registry is None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if s.registry is None:
            return built.image_name
        # Pods run exactly what was pushed: the registry's digest, never a tag that can move.
        return built.repo_digest
