#!/usr/bin/env bash
# Restore drill: restore the newest backup and all archived WAL into a scratch instance, prove it reached the
# archive's end before promoting, check it, report, clean up.
#
# Environment: DRILL_DIR (scratch space), DRILL_DATABASE (the application database that must be there),
# DRILL_MIN_TABLES (default 1), BACKUP_REPO (default 1; the off-site drill sets 2), DRILL_TIMEOUT (seconds for
# recovery, default 1800), DRILL_STALL (seconds without replay progress that count as a gap, default 120).
# Archiving is off in the scratch instance, so the drill never writes into the repository.
# Exits non-zero with the failed step when anything is wrong; the last line is a JSON report either way.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="${DRILL_DIR:?DRILL_DIR must name a scratch directory}"
database="${DRILL_DATABASE:?DRILL_DATABASE must name the application database}"
repo="${BACKUP_REPO:-1}"
min_tables="${DRILL_MIN_TABLES:-1}"
timeout="${DRILL_TIMEOUT:-1800}"
stall="${DRILL_STALL:-120}"
pgdata="$scratch/pgdata"
socket="$scratch"
port="${DRILL_PORT:-54329}"
started=$(date +%s)
step="prepare"
details=""

report() {
  printf '{"time":"%s","job":"pg-restore-drill","repo":%s,"status":"%s","step":"%s","seconds":%s%s}\n' \
    "$(date -u +%FT%TZ)" "$repo" "$1" "$step" "$(( $(date +%s) - started ))" "$details"
}
cleanup() {
  pg_ctl -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdata" "$scratch/drill_hba.conf" "$scratch/drill_ident.conf"
}
fail() { echo "pg-restore-drill: repository $repo: FAILED at step '$step': $1" >&2; report failed; exit 1; }
trap cleanup EXIT
trap 'fail "command failed (exit $?)"' ERR

rm -rf "$pgdata"
step="archive"
# What the restore must reach: the last archived segment, and the newest backup's end.
# The newest backup's line only: that is what a restore to latest uses (verify checks every backup's).
archive=$(python3 "$here/pg_archive.py" check --repo "$repo" --newest) || fail "the WAL archive has a gap or cannot be read (see above)"
field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1" <<<"$archive"; }
end_segment=$(field end) end_lsn=$(field end_lsn) backup=$(field newest_backup) backup_stop=$(field newest_backup_stop)
details=",\"backup\":\"$backup\",\"archive_end\":\"$end_segment\""

step="restore"
"$here/pg-restore.sh" --pgdata "$pgdata" --target latest --repo "$repo" --archive-mode off >&2

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

step="replay"
# As a standby the copy replays every segment it can fetch, then waits. It has reached the archive's end when
# its replay position is past the start of the last archived segment; if it stops short, the next one is missing
# or unreadable — unless PostgreSQL paused replay itself (a hot-standby setting lower than the primary's).
deadline=$(( $(date +%s) + timeout ))
last_progress=$(date +%s) last_lsn=""
while :; do
  read -r replayed reached paused < <(psql_ -d postgres -F ' ' -c \
    "SELECT pg_last_wal_replay_lsn(), pg_last_wal_replay_lsn() > '$end_lsn'::pg_lsn, pg_get_wal_replay_pause_state()")
  [[ "$reached" == t ]] && break
  [[ "$paused" == "not paused" ]] \
    || fail "PostgreSQL paused replay at $replayed ($paused): a setting such as max_connections is lower than the primary's; see $scratch/drill.log"
  if [[ "$replayed" != "$last_lsn" ]]; then last_lsn="$replayed" last_progress=$(date +%s); fi
  if (( $(date +%s) - last_progress >= stall )); then
    fail "replay stopped at $replayed, before the archive's end $end_segment ($end_lsn): a segment after $replayed cannot be fetched"
  fi
  (( $(date +%s) < deadline )) || fail "replay at $replayed after ${timeout}s, archive ends at $end_segment"
  sleep 1
done
# The newest commit the copy holds, before promotion adds anything.
newest_commit=$(psql_ -d postgres -c "SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::bigint, 0)")
details+=",\"replayed_to\":\"$replayed\",\"newest_commit\":$newest_commit,\"newest_commit_after_backup_seconds\":$(( newest_commit > 0 ? newest_commit - backup_stop : 0 ))"

step="promote"
[[ "$(psql_ -d postgres -c 'SELECT pg_promote(true, 300)')" == t ]] || fail "the copy did not promote"

step="database"
[[ "$(psql_ -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$database'")" == 1 ]] \
  || fail "database '$database' is not in the restored cluster"

step="tables"
# Exact counts (statistics and planner estimates are not what was backed up), one query for every table.
read -r tables rows per_table < <(psql_ -d "$database" -F ' ' -c "
  WITH counted AS (
    SELECT format('%I.%I', n.nspname, c.relname) AS name,
           (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    -- Plain tables only: a partitioned parent would count its partitions twice, a view or an unfilled
    -- materialized view is not data.
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%')
  SELECT count(*), coalesce(sum(n), 0),
         (SELECT coalesce(json_object_agg(name, n ORDER BY name), '{}') FROM (SELECT * FROM counted ORDER BY name LIMIT 50) first)
  FROM counted")
# The first 50 tables by name in the report; the totals cover all of them.
details+=",\"database\":\"$database\",\"tables\":$tables,\"rows\":$rows,\"table_rows\":$per_table"
(( tables >= min_tables )) || fail "database '$database' has $tables tables, expected at least $min_tables"

step="integrity"
# Heap and B-tree structure of every relation, every database (amcheck; installed into the scratch copy only).
pg_amcheck -h "$socket" -p "$port" -U "${DRILL_USER:-postgres}" --all --install-missing --heapallindexed >&2 \
  || fail "pg_amcheck found corruption"

step="done"
report ok
