"""PostgreSQL: a single-instance StatefulSet with persistent storage and `pg_isready` probes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from settings import PostgresSettings
from components.pgbackrest import PostgresBackupWiring
from components.stateful import StatefulService, StatefulServiceArgs
from components.workload import (
    SecretKeyRef,
    container_security_context,
    empty_dir,
    exec_probe,
    image_version,
    service_dns,
    startup_probe,
)

NAME = "postgres"
PORT = 5432
DATA_PATH = "/var/lib/postgresql/data"
# A subdirectory, so initdb never meets the volume's lost+found.
PGDATA = f"{DATA_PATH}/pgdata"
SECRETS_PATH = "/run/secrets/postgres"


def host(namespace: str) -> str:
    return service_dns(NAME, namespace)


def pod_host(namespace: str) -> str:
    """The stable DNS name of the single PostgreSQL pod (through the headless Service)."""
    return f"{NAME}-0.{NAME}-headless.{namespace}.svc.cluster.local"


@dataclass
class PostgresArgs:
    namespace: pulumi.Input[str]
    stack: str
    settings: PostgresSettings
    password: SecretKeyRef
    protect: bool
    # WAL archiving with pgBackRest and its TLS server sidecar; None runs the stock image without archiving.
    backup: Optional[PostgresBackupWiring] = None


class Postgres(pulumi.ComponentResource):
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:postgres:Postgres", name, None, opts)
        s = args.settings
        ready = exec_probe(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-U", s.user, "-d", s.database], 0, 10)
        backup = args.backup
        container = {
            "name": NAME,
            "image": backup.image if backup else s.image,
            "imagePullPolicy": backup.image_pull_policy if backup else "Always",
            "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
            "env": [
                {"name": "POSTGRES_USER", "value": s.user},
                # Read from the mounted Secret: the password never sits in the process environment.
                {"name": "POSTGRES_PASSWORD_FILE", "value": f"{SECRETS_PATH}/{args.password.key}"},
                {"name": "POSTGRES_DB", "value": s.database},
                {"name": "PGDATA", "value": PGDATA},
            ],
            "resources": s.resources.to_kubernetes(),
            "securityContext": container_security_context(),
            # initdb and crash recovery on a large volume take time; liveness waits for them.
            "startupProbe": startup_probe(ready, 600),
            "livenessProbe": ready,
            "readinessProbe": {**ready, "periodSeconds": 5},
            "volumeMounts": [
                {"name": "run", "mountPath": "/var/run/postgresql"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "credentials", "mountPath": SECRETS_PATH, "readOnly": True},
                *(backup.postgres_mounts if backup else []),
            ],
        }
        if backup:
            # The official entrypoint passes these to postgres.
            container["args"] = ["postgres", *backup.postgres_args]
        stateful = StatefulService(
            StatefulServiceArgs(
                name=NAME,
                component="database",
                namespace=args.namespace,
                stack=args.stack,
                version=image_version(s.image),
                port=PORT,
                port_name="postgres",
                container=container,
                storage=s.storage,
                data_path=DATA_PATH,
                protect=args.protect,
                extra_volumes=[
                    empty_dir("run", "16Mi"),
                    empty_dir("tmp", "256Mi"),
                    args.password.volume("credentials"),
                    *(backup.volumes if backup else []),
                ],
                sidecars=backup.sidecars if backup else [],
                # A fast shutdown checkpoint on a busy database needs more than the default 30 s.
                termination_grace_seconds=120,
            ),
            parent=self,
        )
        self.stateful_set = stateful.stateful_set
        self.service_name = stateful.service.metadata.name
        self.register_outputs({"service_name": self.service_name})
