import pytest

from components.pgbackrest import CLIENT_CN, TLS_PORT, Repository, render_pgbackrest_conf, repositories
from settings import BackupSettings, OffsiteSettings, PostgresBackupSettings


def _options(conf):
    return dict(line.split("=", 1) for line in conf.splitlines() if "=" in line)


def test_repositories_follow_the_offsite_switch():
    local = repositories(BackupSettings(), "backup-minio.ns.svc.cluster.local", "prod")
    assert [r.index for r in local] == [1] and local[0].path == "/prod" and local[0].ca_file
    offsite = BackupSettings(offsite=OffsiteSettings(enabled=True, endpoint="s3.example.com", bucket="bkt", region="eu-1", path="/p"))
    repos = repositories(offsite, "backup-minio", "prod")
    assert [r.index for r in repos] == [1, 2]
    assert (repos[1].endpoint, repos[1].port, repos[1].bucket, repos[1].ca_file) == ("s3.example.com", 443, "bkt", None)


def test_each_role_gets_what_it_needs_and_nothing_secret():
    settings = BackupSettings(postgres=PostgresBackupSettings(full_retention_days=14))
    repos = [Repository(1, "store", 9000, "pgbackrest", "us-east-1", "/s", "path", "/ca.crt")]
    pg = _options(render_pgbackrest_conf("pg-host", settings, repos, "pg-0.host", "estate"))
    repo = _options(render_pgbackrest_conf("repo-host", settings, repos, "pg-0.host", "estate"))
    drill = _options(render_pgbackrest_conf("drill", settings, repos, "pg-0.host", "estate"))
    for options in (pg, repo, drill):
        assert options["repo1-retention-full"] == "14" and options["repo1-storage-ca-file"] == "/ca.crt"
        assert not any("key" in k and k.startswith("repo") and "s3-key" in k for k in options)
    assert pg["tls-server-port"] == str(TLS_PORT) and pg["tls-server-auth"] == f"{CLIENT_CN}=main"
    assert pg["pg1-user"] == "estate" and "pg1-host" not in pg
    assert repo["pg1-host"] == "pg-0.host" and repo["pg1-host-type"] == "tls" and "tls-server-port" not in repo
    assert drill["pg1-path"] == "/drill/pgdata" and "pg1-host" not in drill and "archive-async" not in drill


def test_unknown_role_is_an_error():
    with pytest.raises(ValueError, match="unknown pgBackRest role"):
        render_pgbackrest_conf("standby", BackupSettings(), [], "h")
