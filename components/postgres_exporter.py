"""PostgreSQL's metrics for Prometheus: prometheus-community's postgres_exporter, one per cluster, on the primary.

The Percona operator ships an exporter only with PMM, so the program runs its own. It logs in as the `metrics` role
the operator creates (components/postgres.py: `users`, and `GRANT pg_monitor` through the cluster's databaseInitSQL),
to the `postgres` database through the primary's Service, and exposes WAL archiving (`pg_stat_archiver_*`), WAL size,
replication and connection metrics the alert rules read (monitoring/rules/data.rules.yml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.component import Component
from components.single_pod import single_pod_service
from components.workload import container_security_context, http_probe, secret_volume, service_dns

NAME = "postgres-exporter"
PORT = 9187
ROLE = "metrics"
CREDENTIALS_DIR = "/etc/postgres-exporter"
# Kept out of the exporter's defaults: per-table series grow with the schema, not with what the alerts need.
DISABLED_COLLECTORS = ("stat_user_tables", "statio_user_tables")


@dataclass
class PostgresExporterArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    image: str
    # The primary's Service and the Secret the operator writes for the `metrics` role.
    primary_service: str
    port: int
    user_secret: str


def data_source_uri(args: PostgresExporterArgs) -> str:
    """host:port/database?options, the exporter's DATA_SOURCE_URI (user and password come from the Secret)."""
    # TLS as the operator serves it; the exporter does not verify the operator's CA (the connection stays in-cluster).
    return f"{service_dns(args.primary_service, args.namespace_name)}:{args.port}/postgres?sslmode=require"


class PostgresExporter(Component):
    def __init__(self, name: str, args: PostgresExporterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:postgres:PostgresExporter", name, opts)
        container = {
            "name": NAME,
            "image": args.image,
            "imagePullPolicy": "Always",
            # The image's entrypoint is /bin/postgres_exporter (upstream Dockerfile); these are its flags.
            "args": [f"--web.listen-address=:{PORT}", *(f"--no-collector.{c}" for c in DISABLED_COLLECTORS)],
            # User and password as files from the operator's Secret for the role, never in the environment.
            "env": [
                {"name": "DATA_SOURCE_URI", "value": data_source_uri(args)},
                {"name": "DATA_SOURCE_USER_FILE", "value": f"{CREDENTIALS_DIR}/user"},
                {"name": "DATA_SOURCE_PASS_FILE", "value": f"{CREDENTIALS_DIR}/password"},
            ],
            "volumeMounts": [{"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}],
            "ports": [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
            "securityContext": container_security_context(),
            # /metrics answers (with pg_up 0) while PostgreSQL is down: the alert, not a restart, handles that.
            "livenessProbe": http_probe("/", "metrics", 5, 20),
            "readinessProbe": http_probe("/", "metrics", 2, 10),
        }
        credentials = secret_volume("credentials", args.user_secret, {"user": "user", "password": "password"})
        single_pod_service(self, NAME, args.namespace, args.stack, container, [credentials], PORT)
        self.register_outputs({})
