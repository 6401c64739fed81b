#!/usr/bin/env bash
# Snapshot Redis over the network (an RDB taken by the server, streamed with `redis-cli --rdb`), check it,
# compress it with a checksum next to it, and delete snapshots older than RETENTION_DAYS.
#
# Environment: REDIS_HOST, REDIS_PORT (6379), REDIS_PASSWORD_FILE (read into REDISCLI_AUTH, never echoed),
# BACKUP_DIR, RETENTION_DAYS (default 7).
set -euo pipefail

host="${REDIS_HOST:?REDIS_HOST must name the Redis server}"
port="${REDIS_PORT:-6379}"
dir="${BACKUP_DIR:?BACKUP_DIR must name the backup directory}"
days="${RETENTION_DAYS:-7}"
case "$days" in '' | *[!0-9]*) echo "redis-backup: RETENTION_DAYS must be a whole number (got '${days}')" >&2; exit 2 ;; esac
if [[ -n "${REDIS_PASSWORD_FILE:-}" ]]; then
  REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")"
  export REDISCLI_AUTH
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
name="dump-${stamp}.rdb"
partial="$dir/.${name}.partial"
started=$(date +%s)
trap 'rm -f "$partial" "$partial.gz"' EXIT

redis-cli -h "$host" -p "$port" --rdb "$partial" >&2
redis-check-rdb "$partial" >&2 || { echo "redis-backup: the snapshot from ${host}:${port} failed redis-check-rdb" >&2; exit 1; }
gzip -c "$partial" >"$partial.gz"
mv "$partial.gz" "$dir/${name}.gz"
(cd "$dir" && sha256sum "${name}.gz" >"${name}.gz.sha256")

pruned=0
while IFS= read -r old; do
  rm -f "$old" "$old.sha256"
  pruned=$((pruned + 1))
done < <(find "$dir" -maxdepth 1 -name 'dump-*.rdb.gz' -mmin "+$((days * 1440))" ! -name "${name}.gz")

printf '{"time":"%s","job":"redis-backup","file":"%s","bytes":%s,"seconds":%s,"pruned":%s}\n' \
  "$(date -u +%FT%TZ)" "${name}.gz" "$(stat -c %s "$dir/${name}.gz")" "$(( $(date +%s) - started ))" "$pruned"
