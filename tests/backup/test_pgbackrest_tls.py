"""The platform's backup topology, for real: `pgbackrest server` beside PostgreSQL and a separate repository
host reaching it over mutual TLS, with the TLS options taken from the rendered pgbackrest.conf."""

import json
import subprocess

import pytest

from components.pgbackrest import CLIENT_CN, TLS_DIR, TLS_PORT, render_pgbackrest_conf
from settings import BackupSettings
from tests.services import free_port, wait_for_port


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory):
    """A CA, a server certificate for localhost and a client certificate, with the usages pulumi-tls gives them."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=test backup CA", cwd=directory)
    for name, cn, usage, san in (("server", "localhost", "serverAuth", "subjectAltName=DNS:localhost"),
                                 ("client", CLIENT_CN, "clientAuth", None)):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=directory)
        extensions = directory / f"{name}.ext"
        extensions.write_text(f"keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n" + (f"{san}\n" if san else ""))
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", str(extensions), cwd=directory)


def _lines(conf: str, prefix: str, tls_dir, port) -> str:
    selected = [line for line in conf.splitlines() if line.startswith(prefix)]
    text = "\n".join(selected).replace(TLS_DIR, str(tls_dir)).replace(str(TLS_PORT), str(port))
    return text + "\n"


@pytest.fixture
def tls_topology(fresh_cluster):
    cluster = fresh_cluster
    base = cluster.pg.base
    tls_dir = base / "tls"
    tls_dir.mkdir()
    _certificates(tls_dir)
    port = free_port()
    rendered = {role: render_pgbackrest_conf(role, BackupSettings(), [], "localhost", "postgres") for role in ("pg-host", "repo-host")}
    # The database host: the cluster's own configuration plus the rendered TLS server options.
    conf = cluster.conf.read_text().replace("[main]", _lines(rendered["pg-host"], "tls-server-", tls_dir, port) + "[main]")
    cluster.conf.write_text(conf)
    # The repository host: the repository, and PostgreSQL reached only through the rendered pg1-host options.
    repo_conf = base / "repo-host.conf"
    repo_conf.write_text(
        "[global]\n"
        f"repo1-path={cluster.repo}\nstart-fast=y\nlog-level-console=warn\nlog-level-file=off\nlock-path={base / 'repo-lock'}\n"
        "[main]\n" + _lines(rendered["repo-host"], "pg1-host", tls_dir, port) + f"pg1-path={cluster.pg.data}\n"
        # Where the database host's PostgreSQL listens (in the pod: the rendered /var/run/postgresql and 5432).
        f"pg1-port={cluster.pg.port}\npg1-socket-path={cluster.pg.socket_dir}\n"
    )
    for path in (tls_dir, repo_conf, cluster.conf):
        cluster.pg.give(path)
    server = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={cluster.conf}", "server"],
        cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    wait_for_port(port)
    yield cluster, repo_conf
    server.terminate()
    server.wait(10)


def test_backup_jobs_reach_postgres_only_through_mutual_tls(tls_topology):
    cluster, repo_conf = tls_topology
    cluster.pg.psql("CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 1000) g", "real_estate")
    result = cluster.script("pg-backup.sh", "full", PGBACKREST_CONFIG=str(repo_conf))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["status"] == "ok"
    info = cluster.pg.run("pgbackrest", f"--config={repo_conf}", "--stanza=main", "info", env=cluster.env()).stdout
    assert "full backup:" in info

    # A client certificate the server does not trust is refused.
    tls_dir = cluster.pg.base / "tls"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "rogue.key",
             "-out", "rogue.crt", "-days", "1", "-subj", f"/CN={CLIENT_CN}", cwd=tls_dir)
    cluster.pg.give(tls_dir)
    rogue = repo_conf.read_text().replace("client.crt", "rogue.crt").replace("client.key", "rogue.key")
    rogue_conf = cluster.pg.base / "rogue.conf"
    rogue_conf.write_text(rogue)
    cluster.pg.give(rogue_conf)
    refused = cluster.script("pg-backup.sh", "incr", PGBACKREST_CONFIG=str(rogue_conf))
    assert refused.returncode != 0
