#!/usr/bin/env bash
# Take a pgBackRest backup of the given type into each repository listed in BACKUP_REPOS.
#
#   pg-backup.sh full|diff|incr
#
# Everything else comes from pgBackRest's own configuration (pgbackrest.conf and PGBACKREST_* variables):
# the stanza, where PostgreSQL is (local or a TLS server), the repositories and their retention.
set -euo pipefail

type="${1:-}"
case "$type" in
  full | diff | incr) ;;
  *) echo "pg-backup: backup type must be full, diff or incr (got '${type}')" >&2; exit 2 ;;
esac
repos="${BACKUP_REPOS:-1}"

log() { printf '{"time":"%s","job":"pg-backup","type":"%s",%s}\n' "$(date -u +%FT%TZ)" "$type" "$1"; }

# Idempotent: creates the stanza on the first run and checks it still matches the cluster afterwards.
pgbackrest stanza-create
# Proves WAL archiving reaches every repository before a backup depends on it.
pgbackrest check

for repo in $repos; do
  started=$(date +%s)
  pgbackrest backup --type="$type" --repo="$repo"
  log "\"repo\":${repo},\"status\":\"ok\",\"seconds\":$(( $(date +%s) - started ))"
done

# Fulls expire with pgBackRest's own retention; the hourly incrementals get a shorter one (repo1 only holds them).
if [[ "$type" == full && -n "${INCR_RETENTION_DAYS:-}" ]]; then
  BACKUP_REPO=1 "$(dirname "${BASH_SOURCE[0]}")/pg-expire-incr.sh"
fi
