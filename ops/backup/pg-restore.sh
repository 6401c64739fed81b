#!/usr/bin/env bash
# Restore a PostgreSQL data directory from pgBackRest into a new, empty directory, held before it promotes.
#
#   pg-restore.sh --pgdata DIR [--target latest|'2026-11-28 10:15:00+00'] [--set LABEL] [--repo N]
#                 [--archive-mode preserve|off]
#
# It never writes over an existing data directory: DIR must be absent or empty. Started afterwards, PostgreSQL
# replays WAL and waits instead of promoting — as a standby for "latest" (replaying whatever the archive holds),
# paused at the target for a time — so the caller can prove the restore reached what it should before it
# promotes (pg-restore-drill.sh does; `SELECT pg_promote()` or `pg_wal_replay_resume()` then promotes).
# --set restores an older backup set when the newest is damaged. Exit: 0 restored, 1 failed, 2 bad usage.
set -euo pipefail

usage() {
  echo "usage: pg-restore.sh --pgdata DIR [--target latest|'YYYY-MM-DD HH:MM:SS+00'] [--set LABEL] [--repo N] [--archive-mode preserve|off]" >&2
  exit 2
}

pgdata="" target="latest" set_label="" repo="${BACKUP_REPO:-1}" archive_mode="preserve"
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --pgdata) pgdata="$2" ;;
    --target) target="$2" ;;
    --set) set_label="$2" ;;
    --repo) repo="$2" ;;
    --archive-mode) archive_mode="$2" ;;
    *) usage ;;
  esac
  shift 2
done
[[ -n "$pgdata" ]] || usage
[[ "$archive_mode" == preserve || "$archive_mode" == off ]] || { echo "pg-restore: --archive-mode must be preserve or off" >&2; exit 2; }
[[ "$repo" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "pg-restore: --repo must be a repository number" >&2; exit 2; }
if [[ -n "$set_label" && ! "$set_label" =~ ^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$ ]]; then
  echo "pg-restore: --set '$set_label' is not a backup label like 20261128-010002F or 20261128-010002F_20261128-093002I" >&2
  exit 2
fi
if [[ -e "$pgdata" && ! -d "$pgdata" ]]; then
  echo "pg-restore: $pgdata exists and is not a directory" >&2
  exit 1
fi
if [[ -f "$pgdata/postmaster.pid" ]]; then
  echo "pg-restore: $pgdata holds a data directory (postmaster.pid present); restore into a new directory instead" >&2
  exit 1
fi
if [[ -d "$pgdata" && -n "$(ls -A "$pgdata")" ]]; then
  echo "pg-restore: $pgdata is not empty; this script never overwrites a data directory — restore into a new one" >&2
  exit 1
fi

args=(--repo="$repo" --pg1-path="$pgdata" --archive-mode="$archive_mode")
[[ -n "$set_label" ]] && args+=(--set="$set_label")
if [[ "$target" == latest ]]; then
  # A standby replays every archived segment and then waits for more instead of promoting at the first gap.
  args+=(--type=standby)
else
  # Absolute, with its offset: a time without one is read in the server's zone, which is rarely what was meant.
  [[ "$target" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:?[0-9]{2})?$ ]] \
    && target_epoch=$(date -u -d "$target" +%s 2>/dev/null) \
    || { echo "pg-restore: --target '$target' is not a timestamp like '2026-11-28 10:15:00+00'" >&2; exit 2; }
  (( target_epoch <= $(date -u +%s) )) || { echo "pg-restore: --target '$target' is in the future" >&2; exit 2; }
  # PostgreSQL stops with an error if the WAL ends before the target; at the target it pauses.
  args+=(--type=time "--target=$target" --target-action=pause)
fi
mkdir -p "$pgdata"
chmod 700 "$pgdata"

started=$(date +%s)
pgbackrest restore "${args[@]}"
printf '{"time":"%s","job":"pg-restore","target":"%s","set":"%s","repo":%s,"seconds":%s}\n' \
  "$(date -u +%FT%TZ)" "$target" "${set_label:-latest}" "$repo" "$(( $(date +%s) - started ))"
