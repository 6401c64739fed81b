#!/usr/bin/env bash
# Put a Redis snapshot taken by redis-backup.sh into a (stopped) server's data directory.
#
#   redis-restore.sh BACKUP_FILE.rdb.gz|BACKUP_DIR DATA_DIR
#
# Given a directory, the newest snapshot in it is restored.
# The checksum and the RDB are checked first; nothing in DATA_DIR changes unless both pass. The old
# append-only files are moved aside. With appendonly on and no AOF, Redis would start empty and ignore
# dump.rdb, so a private redis-server (unix socket only) loads the snapshot, rewrites it as the AOF and
# shuts down: the platform's Redis then starts from the restored data as it always does.
set -euo pipefail

backup="${1:?usage: redis-restore.sh BACKUP_FILE.rdb.gz|BACKUP_DIR DATA_DIR}"
data="${2:?usage: redis-restore.sh BACKUP_FILE.rdb.gz|BACKUP_DIR DATA_DIR}"
if [[ -d "$backup" ]]; then
  newest=$(find "$backup" -maxdepth 1 -name 'dump-*.rdb.gz' | sort | tail -n 1)
  [[ -n "$newest" ]] || { echo "redis-restore: no snapshot (dump-*.rdb.gz) in $backup" >&2; exit 1; }
  backup="$newest"
fi
[[ -f "$backup" ]] || { echo "redis-restore: no backup file $backup" >&2; exit 1; }
[[ -f "$backup.sha256" ]] || { echo "redis-restore: no checksum file $backup.sha256" >&2; exit 1; }
(cd "$(dirname "$backup")" && sha256sum --check --status "$(basename "$backup").sha256") \
  || { echo "redis-restore: checksum mismatch for $backup; refusing to restore it" >&2; exit 1; }

mkdir -p "$data"
staged="$data/.dump.rdb.restoring"
trap 'rm -f "$staged"' EXIT
gunzip -c "$backup" >"$staged"
redis-check-rdb "$staged" >&2 || { echo "redis-restore: $backup is not a valid RDB file" >&2; exit 1; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [[ -e "$data/appendonlydir" ]]; then
  mv "$data/appendonlydir" "$data/appendonlydir.before-restore-$stamp"
fi
if [[ -e "$data/dump.rdb" ]]; then
  mv "$data/dump.rdb" "$data/dump.rdb.before-restore-$stamp"
fi
mv "$staged" "$data/dump.rdb"

socket="$data/.restore.sock"
redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 --dir "$data" --dbfilename dump.rdb \
  --appendonly no --save "" >"$data/.restore.log" 2>&1 &
server=$!
cli() { redis-cli -s "$socket" "$@"; }
persistence() { cli INFO persistence | tr -d '\r'; }
for _ in $(seq 1 600); do
  [[ -S "$socket" ]] && grep -q '^loading:0' <<<"$(persistence 2>/dev/null)" && break
  kill -0 "$server" 2>/dev/null || { cat "$data/.restore.log" >&2; echo "redis-restore: redis-server could not load the snapshot" >&2; exit 1; }
  sleep 0.1
done
cli CONFIG SET appendonly yes >/dev/null
for _ in $(seq 1 6000); do
  state=$(persistence)
  grep -q '^aof_enabled:1' <<<"$state" && grep -q '^aof_rewrite_in_progress:0' <<<"$state" \
    && grep -q '^aof_rewrite_scheduled:0' <<<"$state" && break
  sleep 0.1
done
keys=$(cli DBSIZE)
cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait "$server" || true
rm -f "$data/.restore.log" "$socket"
[[ -d "$data/appendonlydir" ]] || { echo "redis-restore: no AOF was written from the snapshot" >&2; exit 1; }
printf '{"time":"%s","job":"redis-restore","file":"%s","data_dir":"%s","keys":%s}\n' \
  "$(date -u +%FT%TZ)" "$(basename "$backup")" "$data" "$keys"
