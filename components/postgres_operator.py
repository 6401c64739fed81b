"""The Percona Operator for PostgreSQL, installed from its pinned Helm chart into a namespace of its own.

It watches only the platform's namespace. Its namespace and Helm release are named after the platform's namespace,
so stacks for different namespaces on one cluster each get their own (the chart's ClusterRole is named after the
release). A stack whose namespace an existing operator already watches sets `postgres.operator.install: false`. Helm installs the chart's CRDs on the first
install only and never upgrades them: an operator upgrade applies the new CRDs first (docs/postgres.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from settings.postgres import OperatorSettings
from components.workload import labels, sha256
from components.component import Component

CHART = "pg-operator"
CHART_REPOSITORY = "https://percona.github.io/percona-helm-charts/"
# Helm waits for the operator Deployment; pulling its image on a fresh node takes a while.
INSTALL_TIMEOUT_SECONDS = 600


def release_name(watch_namespace: str) -> str:
    """A Helm release name (at most 53 characters) unique to the watched namespace."""
    name = f"pgo-{watch_namespace}"
    return name if len(name) <= 53 else f"{name[:44]}-{sha256(name)[:8]}"


@dataclass
class PostgresOperatorArgs:
    settings: OperatorSettings
    # Where the operator runs.
    namespace: str
    # The namespace whose PerconaPGClusters it reconciles (its name, and the Output that orders it first).
    watch_namespace_name: str
    watch_namespace: pulumi.Input[str]
    stack: str


class PostgresOperator(Component):
    def __init__(self, name: str, args: PostgresOperatorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:postgres:PostgresOperator", name, opts)
        s = args.settings
        namespace = k8s.core.v1.Namespace(
            self.child_name("namespace"),
            metadata={
                "name": args.namespace,
                "labels": {
                    **labels("percona-postgresql-operator", args.stack, "operator"),
                    # The chart's pod is non-root, read-only, without capabilities; whether it also sets a seccomp
                    # profile was not verified, so restricted is warned, baseline enforced.
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            self.child_name("release"),
            name=release_name(args.watch_namespace_name),
            chart=CHART,
            version=s.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=namespace.metadata.name,
            values={
                "watchNamespace": args.watch_namespace,
                "disableTelemetry": True,
            },
            timeout=INSTALL_TIMEOUT_SECONDS,
            atomic=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
