"""pgBackRest for PostgreSQL: image, configuration, TLS between the database and its backup jobs, credentials.

Topology (pgBackRest's TLS server mode):
- The PostgreSQL pod archives WAL to every repository (`archive-push`, asynchronous) and runs
  `pgbackrest server` in a sidecar on port 8432.
- Backup and verify jobs are pgBackRest "repository hosts": they reach the sidecar over mutual TLS
  and write to the repositories themselves. The restore drill restores locally from a repository.
- repo1 is the in-cluster object store (backup-minio); repo2, when enabled, is off-site S3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from settings import BackupSettings
from components.workload import labels, pull_policy

STANZA = "main"
TLS_PORT = 8432
CLIENT_CN = "pgbackrest-client"
REPO1_BUCKET = "pgbackrest"
CONFIG_DIR = "/etc/pgbackrest"
TLS_DIR = f"{CONFIG_DIR}/tls"
SCRIPTS_DIR = "/opt/backup"
SPOOL_DIR = "/var/spool/pgbackrest"
PGDATA = "/var/lib/postgresql/data/pgdata"
SOCKET_DIR = "/var/run/postgresql"
DRILL_DIR = "/drill"
IMAGE_REPOSITORY = "real-estate-postgres"
SCRIPTS_SOURCE = Path(__file__).resolve().parent.parent / "ops" / "backup"
IMAGE_RECIPE = Path(__file__).resolve().parent.parent / "images" / "postgres-pgbackrest"

# Which pgbackrest.conf each kind of pod gets.
ROLES = ("pg-host", "repo-host", "drill")


@dataclass(frozen=True)
class Repository:
    index: int
    endpoint: str
    port: int
    bucket: str
    region: str
    path: str
    uri_style: str
    ca_file: Optional[str]


def repositories(settings: BackupSettings, storage_host: str, stack: str) -> list[Repository]:
    repos = [Repository(1, storage_host, 9000, REPO1_BUCKET, "us-east-1", f"/{stack}", "path", f"{TLS_DIR}/ca.crt")]
    offsite = settings.offsite
    if offsite.enabled:
        repos.append(Repository(2, offsite.endpoint, 443, offsite.bucket, offsite.region, offsite.path, offsite.uri_style, None))
    return repos


def render_pgbackrest_conf(
    role: str, settings: BackupSettings, repos: list[Repository], postgres_host: str, postgres_user: str = "postgres"
) -> str:
    """pgbackrest.conf for one role. Credentials are not here: they come from conf.d/credentials.conf (a Secret)."""
    if role not in ROLES:
        raise ValueError(f"unknown pgBackRest role {role}")
    pg = settings.postgres
    lines = [
        "[global]",
        "log-level-console=info",
        "log-level-file=off",
        "lock-path=/tmp/pgbackrest",
        "compress-type=zst",
        "process-max=2",
        "start-fast=y",
    ]
    for repo in repos:
        n = repo.index
        lines += [
            f"repo{n}-type=s3",
            f"repo{n}-s3-endpoint={repo.endpoint}",
            f"repo{n}-storage-port={repo.port}",
            f"repo{n}-s3-bucket={repo.bucket}",
            f"repo{n}-s3-region={repo.region}",
            f"repo{n}-s3-uri-style={repo.uri_style}",
            f"repo{n}-path={repo.path}",
            f"repo{n}-retention-full-type=time",
            f"repo{n}-retention-full={pg.full_retention_days}",
            # Small files bundled into larger objects: far fewer S3 requests per backup.
            f"repo{n}-bundle=y",
        ]
        if repo.ca_file:
            lines.append(f"repo{n}-storage-ca-file={repo.ca_file}")
    if role == "pg-host":
        lines += [
            # archive-push returns as soon as the segment is queued; a slow off-site store never stalls commits.
            "archive-async=y",
            f"spool-path={SPOOL_DIR}",
            "tls-server-address=*",
            f"tls-server-port={TLS_PORT}",
            f"tls-server-cert-file={TLS_DIR}/server.crt",
            f"tls-server-key-file={TLS_DIR}/server.key",
            f"tls-server-ca-file={TLS_DIR}/ca.crt",
            f"tls-server-auth={CLIENT_CN}={STANZA}",
        ]
    lines += ["", f"[{STANZA}]"]
    if role == "pg-host":
        lines += [f"pg1-path={PGDATA}", f"pg1-socket-path={SOCKET_DIR}", "pg1-port=5432", f"pg1-user={postgres_user}"]
    elif role == "repo-host":
        lines += [
            f"pg1-host={postgres_host}",
            "pg1-host-type=tls",
            f"pg1-host-port={TLS_PORT}",
            f"pg1-host-cert-file={TLS_DIR}/client.crt",
            f"pg1-host-key-file={TLS_DIR}/client.key",
            f"pg1-host-ca-file={TLS_DIR}/ca.crt",
            f"pg1-path={PGDATA}",
            f"pg1-socket-path={SOCKET_DIR}",
            "pg1-port=5432",
            f"pg1-user={postgres_user}",
        ]
    else:
        lines += [f"pg1-path={DRILL_DIR}/pgdata"]
    return "\n".join(lines) + "\n"


def image_name(settings: BackupSettings, postgres_version: str, registry: Optional[str]) -> str:
    repository = f"{registry}/{IMAGE_REPOSITORY}" if registry else IMAGE_REPOSITORY
    return f"{repository}:{postgres_version}-pgbackrest{settings.postgres.pgbackrest_version}"


@dataclass
class PgBackRestArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    stack: str
    settings: BackupSettings
    # The stock PostgreSQL version the image is built on (the tag of postgres.image).
    postgres_version: str
    registry: Optional[str]
    postgres_host: str
    postgres_user: str
    storage_host: str
    storage_user: pulumi.Input[str]
    storage_password: pulumi.Input[str]
    offsite_key: Optional[pulumi.Input[str]]
    offsite_key_secret: Optional[pulumi.Input[str]]


@dataclass
class PostgresBackupWiring:
    """What the PostgreSQL pod needs for WAL archiving and the TLS server sidecar."""

    image: pulumi.Input[str]
    image_pull_policy: str
    postgres_args: list[str]
    postgres_mounts: list[dict]
    volumes: list[dict]
    sidecars: list[dict] = field(default_factory=list)


class PgBackRest(pulumi.ComponentResource):
    image: pulumi.Output[str]

    def __init__(self, name: str, args: PgBackRestArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("real-estate-ai:pgbackrest:PgBackRest", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        meta = lambda n: {"name": n, "namespace": args.namespace, "labels": labels("pgbackrest", args.stack, "backup")}  # noqa: E731
        self.repos = repositories(args.settings, args.storage_host, args.stack)
        self.image = self._image()

        config_map = k8s.core.v1.ConfigMap(
            "pgbackrest-config",
            metadata=meta("pgbackrest-config"),
            data={f"{role}.conf": render_pgbackrest_conf(role, args.settings, self.repos, args.postgres_host, args.postgres_user)
                for role in ROLES},
            opts=child,
        )
        self.config_map_name = config_map.metadata.name
        scripts = k8s.core.v1.ConfigMap(
            "backup-scripts",
            metadata=meta("backup-scripts"),
            data={p.name: p.read_text() for p in sorted(SCRIPTS_SOURCE.glob("*.sh"))},
            opts=child,
        )
        self.scripts_config_map_name = scripts.metadata.name

        credentials = [
            "[global]\n",
            "repo1-s3-key=", args.storage_user, "\n",
            "repo1-s3-key-secret=", args.storage_password, "\n",
        ]
        if args.settings.offsite.enabled:
            credentials += ["repo2-s3-key=", args.offsite_key, "\n", "repo2-s3-key-secret=", args.offsite_key_secret, "\n"]
        credentials_secret = k8s.core.v1.Secret(
            "pgbackrest-credentials",
            metadata=meta("pgbackrest-credentials"),
            type="Opaque",
            string_data={"credentials.conf": pulumi.Output.secret(pulumi.Output.concat(*credentials))},
            opts=child,
        )
        self.credentials_secret_name = credentials_secret.metadata.name
        self.tls_secret_name, self.ca_cert = self._tls(meta)
        self.register_outputs({"image": self.image})

    @property
    def pull_policy(self) -> str:
        return pull_policy(built_locally=self._args.settings.postgres_image is None and self._args.registry is None)

    def _image(self) -> pulumi.Output[str]:
        a = self._args
        if a.settings.postgres_image:
            return pulumi.Output.from_input(a.settings.postgres_image)
        built = docker.Image(
            IMAGE_REPOSITORY,
            image_name=image_name(a.settings, a.postgres_version, a.registry),
            build=docker.DockerBuildArgs(
                context=str(IMAGE_RECIPE),
                dockerfile=str(IMAGE_RECIPE / "Dockerfile"),
                platform="linux/amd64",
                args={"POSTGRES_VERSION": a.postgres_version, "PGBACKREST_VERSION": a.settings.postgres.pgbackrest_version},
            ),
            skip_push=a.registry is None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return built.image_name

    def _tls(self, meta) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """A private CA for the backup traffic: the PostgreSQL TLS server, its client, the backup object store."""
        a = self._args
        child = pulumi.ResourceOptions(parent=self)

        def key(name: str) -> tls.PrivateKey:
            return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=child)

        ca_key = key("backup-ca-key")
        ca = tls.SelfSignedCert(
            "backup-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": f"real-estate-ai backup CA ({a.stack})"},
            validity_period_hours=10 * 8760,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )

        def leaf(name: str, common_name: str, dns_names: list[str], usage: str) -> tuple[tls.PrivateKey, tls.LocallySignedCert]:
            private = key(f"{name}-key")
            request = tls.CertRequest(
                f"{name}-csr", private_key_pem=private.private_key_pem, subject={"common_name": common_name}, dns_names=dns_names, opts=child
            )
            cert = tls.LocallySignedCert(
                f"{name}-cert",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                ca_cert_pem=ca.cert_pem,
                validity_period_hours=2 * 8760,
                # Replaced by the first `pulumi up` in the last 30 days of its life.
                early_renewal_hours=30 * 24,
                allowed_uses=["digital_signature", "key_encipherment", usage],
                opts=child,
            )
            return private, cert

        host = a.postgres_host
        server_key, server_cert = leaf("pgbackrest-server", host, [host, f"postgres.{a.namespace_name}.svc.cluster.local"], "server_auth")
        client_key, client_cert = leaf("pgbackrest-client", CLIENT_CN, [], "client_auth")
        storage_key, storage_cert = leaf(
            "backup-storage", a.storage_host, [a.storage_host, a.storage_host.split(".")[0]], "server_auth"
        )
        secret = k8s.core.v1.Secret(
            "backup-tls",
            metadata=meta("backup-tls"),
            type="Opaque",
            string_data={
                "ca.crt": ca.cert_pem,
                "server.crt": server_cert.cert_pem,
                "server.key": pulumi.Output.secret(server_key.private_key_pem),
                "client.crt": client_cert.cert_pem,
                "client.key": pulumi.Output.secret(client_key.private_key_pem),
                # MinIO's names for its certificate and key.
                "public.crt": storage_cert.cert_pem,
                "private.key": pulumi.Output.secret(storage_key.private_key_pem),
            },
            opts=child,
        )
        return secret.metadata.name, ca.cert_pem

    # --- volumes for the pods that use pgBackRest -----------------------------------------------

    def volumes(self, role: str, tls_items: list[str]) -> list[dict]:
        return [
            {"name": "pgbackrest-config", "configMap": {"name": self.config_map_name, "items": [{"key": f"{role}.conf", "path": "pgbackrest.conf"}]}},
            {"name": "pgbackrest-credentials", "secret": {"secretName": self.credentials_secret_name, "defaultMode": 0o440}},
            {"name": "pgbackrest-tls", "secret": {"secretName": self.tls_secret_name, "defaultMode": 0o440, "items": [{"key": k, "path": k} for k in tls_items]}},
            {"name": "backup-scripts", "configMap": {"name": self.scripts_config_map_name, "defaultMode": 0o555}},
        ]

    @staticmethod
    def mounts() -> list[dict]:
        return [
            {"name": "pgbackrest-config", "mountPath": f"{CONFIG_DIR}/pgbackrest.conf", "subPath": "pgbackrest.conf", "readOnly": True},
            {"name": "pgbackrest-credentials", "mountPath": f"{CONFIG_DIR}/conf.d", "readOnly": True},
            {"name": "pgbackrest-tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "backup-scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
        ]

    def postgres_wiring(self, archive_timeout_seconds: int, resources: dict, security_context: dict) -> PostgresBackupWiring:
        spool = {"name": "pgbackrest-spool", "mountPath": SPOOL_DIR}
        sidecar = {
            "name": "pgbackrest",
            "image": self.image,
            "imagePullPolicy": self.pull_policy,
            "command": ["pgbackrest", "server"],
            "ports": [{"name": "pgbackrest", "containerPort": TLS_PORT, "protocol": "TCP"}],
            "resources": resources,
            "securityContext": security_context,
            "livenessProbe": {"tcpSocket": {"port": TLS_PORT}, "periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 3},
            "readinessProbe": {"tcpSocket": {"port": TLS_PORT}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
            "volumeMounts": [
                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                {"name": "run", "mountPath": SOCKET_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
                spool,
                *self.mounts(),
            ],
        }
        return PostgresBackupWiring(
            image=self.image,
            image_pull_policy=self.pull_policy,
            postgres_args=[
                "-c", "wal_level=replica",
                "-c", "archive_mode=on",
                "-c", f"archive_command=pgbackrest --stanza={STANZA} archive-push %p",
                "-c", f"archive_timeout={archive_timeout_seconds}",
            ],
            postgres_mounts=[spool, *self.mounts()],
            volumes=[
                {"name": "pgbackrest-spool", "emptyDir": {"sizeLimit": "2Gi"}},
                *self.volumes("pg-host", ["ca.crt", "server.crt", "server.key"]),
            ],
            sidecars=[sidecar],
        )
