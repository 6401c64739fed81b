#!/bin/sh
# Milvus backups with the upstream milvus-backup tool (its image is Alpine: POSIX sh, busybox date).
#
#   milvus-backup.sh create             a backup named daily_<UTC timestamp>, then delete those older than RETENTION_DAYS
#   milvus-backup.sh restore NAME       restore backup NAME into Milvus
#
# Environment: MILVUS_BACKUP (the binary, default /app/milvus-backup), MILVUS_BACKUP_CONFIG (backup.yaml),
# RETENTION_DAYS (create only; default 7). milvus-backup keeps every backup forever unless told to delete one.
# Ends with one JSON line; exits non-zero when any step fails.
set -eu

tool="${MILVUS_BACKUP:-/app/milvus-backup}"
config="${MILVUS_BACKUP_CONFIG:-/etc/milvus-backup/backup.yaml}"
started=$(date +%s)
mb() { "$tool" "$@" --config "$config"; }
report() {
  printf '{"time":"%s","job":"milvus-backup","action":"%s","status":"%s","backup":"%s","seconds":%s%s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" "$(( $(date +%s) - started ))" "${4:-}"
}

case "${1:-}" in
  create)
    days="${RETENTION_DAYS:-7}"
    case "$days" in ''|*[!0-9]*) echo "milvus-backup: RETENTION_DAYS must be a whole number of days" >&2; exit 2 ;; esac
    [ "$days" -ge 1 ] || { echo "milvus-backup: RETENTION_DAYS must be at least 1" >&2; exit 2; }
    name="daily_$(date -u +%Y%m%d%H%M%S)"
    mb create -n "$name" >&2 || { report create failed "$name"; exit 1; }
    # Names sort by time: everything before the cutoff, and only what this script named, goes.
    cutoff="daily_$(date -u -d "@$(( $(date +%s) - days * 86400 ))" +%Y%m%d%H%M%S)"
    # The tool prints the names with cobra's Println, which writes to stderr.
    listing=$(mb list 2>&1) || { report create failed "$name" ',"step":"list"'; exit 1; }
    deleted=0
    for old in $(printf '%s\n' "$listing" | grep -E '^daily_[0-9]{14}$' || true); do
      if [ "$old" \< "$cutoff" ] && [ "$old" != "$name" ]; then
        mb delete -n "$old" >&2 || { report create failed "$name" ",\"step\":\"delete $old\""; exit 1; }
        deleted=$((deleted + 1))
      fi
    done
    report create ok "$name" ",\"deleted\":$deleted,\"retention_days\":$days"
    ;;
  restore)
    name="${2:-}"
    case "$name" in
      ''|*[!A-Za-z0-9_-]*) echo "milvus-backup: restore needs a backup name (milvus-backup list shows them)" >&2; exit 2 ;;
    esac
    [ "${#name}" -le 128 ] || { echo "milvus-backup: restore needs a backup name (milvus-backup list shows them)" >&2; exit 2; }
    mb restore -n "$name" --rebuild_index >&2 || { report restore failed "$name"; exit 1; }
    report restore ok "$name"
    ;;
  *)
    echo "usage: milvus-backup.sh create | restore NAME" >&2
    exit 2
    ;;
esac
