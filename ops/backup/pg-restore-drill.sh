#!/usr/bin/env bash
# Restore drill: restore the latest backup into a scratch instance, prove it is sound, report, clean up.
#
# Environment: DRILL_DIR (scratch space), DRILL_DATABASE (the application database that must be there),
# DRILL_MIN_TABLES (default 1), BACKUP_REPO (default 1), DRILL_TIMEOUT (seconds for recovery, default 1800).
# Archiving is off in the scratch instance, so the drill never writes into the repository.
# Exits non-zero with the failed step when anything is wrong; the last line is a JSON report either way.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="${DRILL_DIR:?DRILL_DIR must name a scratch directory}"
database="${DRILL_DATABASE:?DRILL_DATABASE must name the application database}"
min_tables="${DRILL_MIN_TABLES:-1}"
timeout="${DRILL_TIMEOUT:-1800}"
pgdata="$scratch/pgdata"
socket="$scratch"
port="${DRILL_PORT:-54329}"
started=$(date +%s)
step="prepare"

report() {
  printf '{"time":"%s","job":"pg-restore-drill","status":"%s","step":"%s","seconds":%s%s}\n' \
    "$(date -u +%FT%TZ)" "$1" "$step" "$(( $(date +%s) - started ))" "${2:-}"
}
cleanup() {
  pg_ctl -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdata" "$scratch/drill_hba.conf" "$scratch/drill_ident.conf"
}
fail() { echo "pg-restore-drill: FAILED at step '$step': $1" >&2; report failed; exit 1; }
trap cleanup EXIT
trap 'fail "command failed (exit $?)"' ERR

rm -rf "$pgdata"
step="restore"
"$here/pg-restore.sh" --pgdata "$pgdata" --target latest --archive-mode off >&2

step="start"
# The restored configuration names the cluster's TLS files and access rules, which this pod does not have:
# the scratch instance listens on its own socket only, without TLS, trusting that socket.
printf 'local all all trust\n' >"$scratch/drill_hba.conf"
: >"$scratch/drill_ident.conf"
pg_ctl -D "$pgdata" -l "$scratch/drill.log" -w -t "$timeout" start \
  -o "-p $port -c listen_addresses='' -c unix_socket_directories='$socket' -c archive_mode=off -c ssl=off \
      -c hba_file='$scratch/drill_hba.conf' -c ident_file='$scratch/drill_ident.conf'" >&2 \
  || fail "PostgreSQL did not start; see $scratch/drill.log: $(tail -n 5 "$scratch/drill.log" | tr '\n' ' ')"

psql_() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U "${DRILL_USER:-postgres}" "$@"; }

step="recovery"
deadline=$(( $(date +%s) + timeout ))
until [[ "$(psql_ -d postgres -c 'SELECT pg_is_in_recovery()')" == f ]]; do
  (( $(date +%s) < deadline )) || fail "still in recovery after ${timeout}s"
  sleep 1
done

step="database"
[[ "$(psql_ -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$database'")" == 1 ]] \
  || fail "database '$database' is not in the restored cluster"

step="tables"
tables=$(psql_ -d "$database" -c "SELECT count(*) FROM pg_stat_user_tables")
(( tables >= min_tables )) || fail "database '$database' has $tables tables, expected at least $min_tables"
# Activity statistics do not survive a restore; the planner's row estimates (restored with the catalog) do.
rows=$(psql_ -d "$database" -c "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c JOIN pg_stat_user_tables t ON t.relid = c.oid")

step="integrity"
# Heap and B-tree structure of every relation, every database (amcheck; installed into the scratch copy only).
pg_amcheck -h "$socket" -p "$port" -U "${DRILL_USER:-postgres}" --all --install-missing --heapallindexed >&2 \
  || fail "pg_amcheck found corruption"

step="done"
report ok ",\"database\":\"$database\",\"tables\":$tables,\"estimated_rows\":$rows"
