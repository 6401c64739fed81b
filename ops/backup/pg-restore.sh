#!/usr/bin/env bash
# Restore the PostgreSQL data directory from pgBackRest: to the latest archived state or to a point in time.
#
#   pg-restore.sh --pgdata DIR [--target latest|'2026-11-28 10:15:00+00'] [--repo N] [--archive-mode preserve|off]
#
# PostgreSQL must be stopped. A non-empty DIR is restored in delta mode (only changed files are copied).
# Starting PostgreSQL afterwards replays WAL up to the target and promotes.
set -euo pipefail

usage() { echo "usage: pg-restore.sh --pgdata DIR [--target latest|TIMESTAMP] [--repo N] [--archive-mode preserve|off]" >&2; exit 2; }

pgdata="" target="latest" repo="${BACKUP_REPO:-1}" archive_mode="preserve"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pgdata) pgdata="${2:-}"; shift 2 ;;
    --target) target="${2:-}"; shift 2 ;;
    --repo) repo="${2:-}"; shift 2 ;;
    --archive-mode) archive_mode="${2:-}"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$pgdata" ]] || usage
[[ "$archive_mode" == preserve || "$archive_mode" == off ]] || { echo "pg-restore: --archive-mode must be preserve or off" >&2; exit 2; }
if [[ -f "$pgdata/postmaster.pid" ]]; then
  echo "pg-restore: $pgdata/postmaster.pid exists; stop PostgreSQL before restoring" >&2
  exit 1
fi

args=(--stanza="${PGBACKREST_STANZA:-main}" --repo="$repo" --pg1-path="$pgdata" --archive-mode="$archive_mode")
if [[ "$target" == latest ]]; then
  # Replay every archived WAL segment, then promote: the state at the last archived transaction.
  args+=(--type=default)
else
  date -u -d "$target" >/dev/null 2>&1 || { echo "pg-restore: --target '$target' is not a timestamp like '2026-11-28 10:15:00+00'" >&2; exit 2; }
  args+=(--type=time "--target=$target" --target-action=promote)
fi
if [[ -d "$pgdata" && -n "$(ls -A "$pgdata" 2>/dev/null)" ]]; then
  args+=(--delta)
else
  mkdir -p "$pgdata"
  chmod 700 "$pgdata"
fi

started=$(date +%s)
pgbackrest restore "${args[@]}"
printf '{"time":"%s","job":"pg-restore","target":"%s","repo":%s,"seconds":%s}\n' \
  "$(date -u +%FT%TZ)" "$target" "$repo" "$(( $(date +%s) - started ))"
