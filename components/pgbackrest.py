"""pgBackRest options of the PostgreSQL cluster, written once for the operator and for our own jobs.

The Percona operator writes `spec.backups.pgbackrest.global` verbatim into the `[global]` section of the
pgbackrest.conf of every instance and of the repository host. Our verify and restore-drill jobs read the
same repositories with a pgbackrest.conf built here from the same options, so what the tests run through
real pgBackRest is what the cluster runs. No value can add a line: every option is checked to be one line.
"""

from __future__ import annotations

from typing import Optional

from settings import BackupSettings, OffsiteSettings, byte_count

# The operator's stanza, and where repo1 lives: it mounts the claim's root at /pgbackrest/repo1 and sets
# repo1-path to the same directory (internal/pgbackrest/reconcile.go and config.go, v3.0.0).
STANZA = "db"
REPO1_PATH = "/pgbackrest/repo1"
OFFSITE_CIPHER = "aes-256-cbc"
# Files in the Secret the cluster lists under spec.backups.pgbackrest.configuration (mounted in conf.d).
OFFSITE_CONFIG_FILE = "offsite.conf"


def offsite(settings: BackupSettings) -> Optional[OffsiteSettings]:
    """repo2's settings when the off-site repository is on, else None."""
    return settings.offsite if settings.offsite.enabled else None


def _line(key: str, value: object) -> str:
    text = str(value)
    if not text.isprintable() or "=" in key or not key.replace("-", "").isalnum():
        raise ValueError(f"pgBackRest option {key!r} would not be one line")
    return f"{key}={text}"


def global_options(settings: BackupSettings) -> dict[str, str]:
    """`spec.backups.pgbackrest.global`: retention, archiving limits, compression, and repo2's layout and cipher."""
    pg = settings.postgres
    options = {
        "repo1-retention-full-type": "time",
        "repo1-retention-full": str(pg.full_retention_days),
        # Without it, WAL for an unreachable repository piles up in pg_wal until PostgreSQL stops.
        "archive-push-queue-max": str(byte_count(pg.archive_push_queue_max)),
        "compress-type": "zst",
        "process-max": "2",
        "start-fast": "y",
        # Fewer objects per backup: S3 requests are the slow part of a backup to object storage.
        "repo1-bundle": "y",
    }
    remote = offsite(settings)
    if remote:
        options.update({
            "repo2-retention-full-type": "time",
            "repo2-retention-full": str(pg.full_retention_days),
            "repo2-path": remote.path,
            "repo2-s3-uri-style": remote.uri_style,
            "repo2-bundle": "y",
            # Client-side encryption: the object store never sees plain backups. The passphrase is in offsite.conf.
            "repo2-cipher-type": OFFSITE_CIPHER,
        })
    for key, value in options.items():
        _line(key, value)
    return options


def offsite_credentials(key_id: str, secret_key: str, cipher_pass: str) -> str:
    """offsite.conf: repo2's credentials and cipher passphrase (a Secret, never a ConfigMap)."""
    lines = ["[global]", _line("repo2-s3-key", key_id), _line("repo2-s3-key-secret", secret_key), _line("repo2-cipher-pass", cipher_pass)]
    return "\n".join(lines) + "\n"


def job_conf(settings: BackupSettings, pg_path: str) -> str:
    """pgbackrest.conf for the verify and drill jobs: repo1 mounted read-only, repo2 over S3, the cluster's options."""
    lines = ["[global]", _line("repo1-path", REPO1_PATH)]
    remote = offsite(settings)
    if remote:
        lines += [
            _line("repo2-type", "s3"),
            _line("repo2-s3-endpoint", remote.endpoint),
            _line("repo2-s3-bucket", remote.bucket),
            _line("repo2-s3-region", remote.region),
        ]
    lines += [_line(k, v) for k, v in sorted(global_options(settings).items())]
    lines += [
        _line("log-level-console", "info"),
        _line("log-level-file", "off"),
        _line("lock-path", "/tmp/pgbackrest"),
        "",
        f"[{STANZA}]",
        _line("pg1-path", pg_path),
    ]
    return "\n".join(lines) + "\n"
