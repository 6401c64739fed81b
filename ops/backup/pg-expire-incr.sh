#!/usr/bin/env bash
# Expire incremental backups older than INCR_RETENTION_DAYS (default 7) in repository BACKUP_REPO (default 1).
#
# pgBackRest expires incrementals only together with the full backup they depend on, and fulls are kept
# for 30 days; this keeps the hourly chain for 7. Expiring the oldest incremental of a chain expires the
# incrementals that depend on it, and never the full backup itself.
set -euo pipefail

days="${INCR_RETENTION_DAYS:-7}"
repo="${BACKUP_REPO:-1}"
case "$days" in '' | *[!0-9]*) echo "pg-expire-incr: INCR_RETENTION_DAYS must be a whole number of days (got '${days}')" >&2; exit 2 ;; esac

# Labels carry their start time: 20261120-010000F_20261120-020002I is an incremental started 2026-11-20 02:00:02.
cutoff=$(date -u -d "-${days} days" +%Y%m%d-%H%M%S)
expired=0
while read -r label; do
  started="${label#*_}"
  started="${started%I}"
  if [[ "$started" < "$cutoff" || "$started" == "$cutoff" ]]; then
    pgbackrest expire --repo="$repo" --set="$label"
    expired=$((expired + 1))
  fi
done < <(pgbackrest info --repo="$repo" | awk '$1 == "incr" && $2 == "backup:" {print $3}' | sort)

printf '{"time":"%s","job":"pg-expire-incr","repo":%s,"retention_days":%s,"expired":%s}\n' "$(date -u +%FT%TZ)" "$repo" "$days" "$expired"
