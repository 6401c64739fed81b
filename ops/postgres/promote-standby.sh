#!/usr/bin/env bash
# Promote a standby cluster (postgres.standby) when its primary's region is lost: the checks before, the proof after.
#
#   promote-standby.sh NAMESPACE check [--max-archive-age SECONDS] [--force] [--cluster NAME]
#   promote-standby.sh NAMESPACE verify [--timeout SECONDS] [--cluster NAME]
#
# The promotion itself is the stack's setting: postgres.standby.enabled: false, then `pulumi up`. The operator drops
# standby_cluster from Patroni's configuration and Patroni promotes the standby leader. A hand edit of the
# PerconaPGCluster would be undone by the next `pulumi up`, which would turn the cluster back into a standby.
#
# check   The cluster is a standby with a standby leader; how far it has replayed (its newest commit and WAL
#         position) against the end of the off-site archive it follows; and whether the old primary still
#         archives there: a segment newer than --max-archive-age seconds (default 300) means it is alive, and once
#         this one is promoted both would write. Fence it first (its stack's postgres.standby, or its instances
#         scaled away), or pass --force knowingly. The archive's age is the store's clock against this machine's.
# verify  After `pulumi up`: spec.standby.enabled is false, one primary out of recovery, a transaction committed,
#         and the off-site archive follows the primary's timeline (its history file arrived: WAL flows again).
#
# Needs kubectl with rights in NAMESPACE, python3 (3.9+), bash 4.4+. Exit: 0 ok, 1 not ok, 2 bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
label="postgres-operator.crunchydata.com"

usage() {
  echo "usage: promote-standby.sh NAMESPACE (check [--max-archive-age SECONDS] [--force] | verify [--timeout SECONDS]) [--cluster NAME]" >&2
  exit 2
}
fail() { echo "promote-standby: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
namespace="$1" mode="$2"; shift 2
[[ "$mode" == check || "$mode" == verify ]] || usage
cluster="postgres" max_age=300 force="no" timeout=600
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force="yes"; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --max-archive-age) max_age="$2" ;;
    --timeout) timeout="$2" ;;
    --cluster) cluster="$2" ;;
    *) usage ;;
  esac
  shift 2
done
name_re='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ "$namespace" =~ $name_re ]] || { echo "promote-standby: '$namespace' is not a namespace name" >&2; exit 2; }
[[ "$cluster" =~ $name_re ]] || { echo "promote-standby: --cluster '$cluster' is not a resource name" >&2; exit 2; }
[[ "$max_age" =~ ^[0-9]+$ && "$timeout" =~ ^[0-9]+$ ]] || { echo "promote-standby: --max-archive-age and --timeout are seconds" >&2; exit 2; }

k() { kubectl --namespace "$namespace" "$@"; }
field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read()).get(sys.argv[1], ""))' "$1"; }
sql() { k exec "$1" -c database -- psql -XAtq -v ON_ERROR_STOP=1 -F '|' -c "$2"; }
lsn() { local high="${1%/*}" low="${1#*/}"; echo $(( (16#$high << 32) + 16#$low )); }

k get perconapgcluster "$cluster" -o name >/dev/null || fail "no PerconaPGCluster '$cluster' in namespace '$namespace'"
standby=$(k get perconapgcluster "$cluster" -o jsonpath='{.spec.standby.enabled}')

# The off-site archive (repo2) the standby follows, read through the repository host's pgBackRest.
archive_report() {
  local repo_host
  repo_host=$(k get pod -l "$label/cluster=$cluster,$label/data=pgbackrest" -o name | head -n 1)
  [[ -n "$repo_host" ]] || fail "no repository host pod for '$cluster'; the off-site archive cannot be read"
  PG_ARCHIVE_EXEC="kubectl --namespace $namespace exec ${repo_host#pod/} -c pgbackrest --" \
    python3 "$here/../backup/pg_archive.py" check --repo 2 --newest
}

if [[ "$mode" == check ]]; then
  [[ "$standby" == true ]] || fail "'$cluster' is not a standby (spec.standby.enabled is '${standby:-unset}'): nothing to promote"
  # The operator finds its standby leader by Patroni's status annotation; so does this.
  leader=$(k get pod -l "$label/cluster=$cluster,$label/data=postgres" \
             -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.metadata.annotations.status}{"\n"}{end}' \
           | awk -F '\t' 'index($2, "\"role\":\"standby_leader\"") { print $1; exit }')
  [[ -n "$leader" ]] || fail "'$cluster' has no standby leader: nothing has replayed the primary's WAL (kubectl get pods -l $label/cluster=$cluster)"
  IFS='|' read -r replayed newest_commit behind < <(sql "$leader" \
    "SELECT pg_last_wal_replay_lsn(), coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::bigint, 0),
            coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::bigint, -1)")
  echo "promote-standby: standby leader $leader replayed to $replayed; its newest commit is ${behind} s old"
  if ! report=$(archive_report) || [[ -z "$(field end_lsn <<<"$report")" ]]; then
    # The region's loss may have taken the store's nearest copy with it: nothing then says whether the primary lives.
    [[ "$force" == yes ]] || fail "the off-site archive cannot be read or has a gap (see above): nothing shows whether the old" \
                                  "primary still writes, nor how far the standby is behind it; pass --force to promote what was replayed"
    echo "promote-standby: the off-site archive cannot be read; --force: promoting what was replayed ($replayed)" >&2
    echo "promote-standby: ready. Set postgres.standby.enabled: false in the stack file, run pulumi up, then: promote-standby.sh $namespace verify"
    exit 0
  fi
  end_lsn=$(field end_lsn <<<"$report") end=$(field end <<<"$report") written=$(field end_written <<<"$report")
  age=$(( $(date -u +%s) - written ))
  echo "promote-standby: the off-site archive ends at $end ($end_lsn), written ${age} s ago"
  if (( $(lsn "$replayed") < $(lsn "$end_lsn") )); then
    echo "promote-standby: the standby has not replayed the archive's end yet; it keeps replaying — promoting now loses" \
         "what lies between $replayed and $end_lsn" >&2
  fi
  if (( age < max_age )) && [[ "$force" != yes ]]; then
    fail "the primary archived ${age} s ago (under ${max_age} s): it may be alive, and a promoted standby would write beside it." \
         "Fence it first (its stack's postgres.standby, or its instances scaled away), or pass --force"
  fi
  echo "promote-standby: ready. Set postgres.standby.enabled: false in the stack file, run pulumi up, then: promote-standby.sh $namespace verify"
  exit 0
fi

[[ "$standby" == false ]] || fail "'$cluster' is still a standby (spec.standby.enabled is '${standby:-unset}'): set postgres.standby.enabled: false and run pulumi up first"
deadline=$(( $(date +%s) + timeout ))
while :; do
  primary=$(k get pod -l "$label/cluster=$cluster,$label/role=primary" -o name)
  if [[ -n "$primary" && "$primary" != *$'\n'* ]] && [[ "$(sql "$primary" 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; then
    break
  fi
  (( $(date +%s) < deadline )) || fail "no single primary out of recovery after ${timeout} s (kubectl get pods -l $label/cluster=$cluster)"
  sleep "${PROMOTE_POLL_SECONDS:-5}"
done
# The timeline WAL is written on now (the last checkpoint's can still be the old one right after a promotion).
IFS='|' read -r xid timeline < <(sql "$primary" "SELECT txid_current(), ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
[[ "$xid" =~ ^[0-9]+$ ]] || fail "the primary ${primary#pod/} did not commit a transaction"
echo "promote-standby: ${primary#pod/} is the primary and commits (transaction $xid), timeline $timeline"
while :; do
  archived=""
  if report=$(archive_report 2>/dev/null); then archived=$(field timeline <<<"$report"); fi
  [[ -n "$archived" ]] && (( 16#$archived >= timeline )) && break
  (( $(date +%s) < deadline )) || fail "the off-site archive is still on timeline ${archived:-?}, not $timeline: WAL does not reach it yet"
  sleep "${PROMOTE_POLL_SECONDS:-5}"
done
echo "promote-standby: the off-site archive follows timeline $timeline: WAL reaches it, backups can start"
