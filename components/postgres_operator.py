"""The Percona Operator for PostgreSQL, installed from its pinned Helm chart into a namespace of its own.

It watches only the platform's namespace. Its namespace and Helm release are named after the platform's namespace,
so stacks for different namespaces on one cluster each get their own (the chart's ClusterRole is named after the
release). A stack whose namespace an existing operator already watches sets `postgres.operator.install: false`.

Helm installs a chart's CRDs on the first install only and never upgrades them, so the chart's are skipped and the
program applies the release's own (vendored per chart version, settings.postgres.operator_crds_file) before the
operator starts: a chart bump upgrades them in the same `up`. They take over the fields Helm created them with
(patchForce) and are never deleted by Pulumi (retainOnDelete): deleting a CRD deletes every PostgreSQL cluster of
its kind in the cluster.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from settings.postgres import OperatorSettings, operator_crds_file
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
    # prod: the CRDs are protected too (a `pulumi destroy` stops at them).
    protect: bool = False


@functools.lru_cache(maxsize=None)
def _vendored_crds(chart_version: str) -> tuple[dict, ...]:
    # 2 MB of YAML: libyaml's loader where PyYAML has it, once per process (a render spent most of its time here).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(operator_crds_file(chart_version).read_text(), Loader=loader) if doc)


def crds(chart_version: str) -> list[dict]:
    """The operator release's CRDs as vendored (a copy: the caller may change it)."""
    return copy.deepcopy(list(_vendored_crds(chart_version)))


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
        definitions = [
            k8s.apiextensions.v1.CustomResourceDefinition(
                self.child_name(crd["metadata"]["name"]),
                metadata={**crd["metadata"], "annotations": {**(crd["metadata"].get("annotations") or {}),
                                                             "pulumi.com/patchForce": "true"}},
                spec=crd["spec"],
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=args.protect),
            )
            for crd in crds(s.chart_version)
        ]
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
            skip_crds=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            atomic=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=definitions),
        )
        self.register_outputs({})
