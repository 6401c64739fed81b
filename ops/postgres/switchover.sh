#!/usr/bin/env bash
# Planned switchover of the PostgreSQL primary to a healthy replica (Patroni, through the Percona operator).
#
#   switchover.sh NAMESPACE [--cluster NAME] [--timeout SECONDS]
#
# The cluster allows switchovers (spec.patroni.switchover.enabled, set by the program); this script only sets
# the trigger annotation the operator acts on, waits until another instance is primary and checks it accepts
# writes. Exit: 0 switched, 1 failed, 2 bad usage.
set -euo pipefail

fail() { echo "switchover: $*" >&2; exit 1; }
[[ $# -ge 1 ]] || { echo "usage: switchover.sh NAMESPACE [--cluster NAME] [--timeout SECONDS]" >&2; exit 2; }
namespace="$1"; shift
cluster="postgres" timeout=300
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster) cluster="${2:-}"; shift 2 ;;
    --timeout) timeout="${2:-}"; shift 2 ;;
    *) echo "usage: switchover.sh NAMESPACE [--cluster NAME] [--timeout SECONDS]" >&2; exit 2 ;;
  esac
done
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "switchover: --timeout must be a number of seconds" >&2; exit 2; }

k() { kubectl --namespace "$namespace" "$@"; }
selector="postgres-operator.crunchydata.com/cluster=$cluster,postgres-operator.crunchydata.com/role=primary"
before=$(k get pod -l "$selector" -o name)
[[ -n "$before" ]] || fail "cluster '$cluster' has no primary to switch from"
replicas=$(k get pod -l "postgres-operator.crunchydata.com/cluster=$cluster,postgres-operator.crunchydata.com/role=replica" -o name)
[[ -n "$replicas" ]] || fail "cluster '$cluster' has no replica to switch to"

k annotate perconapgcluster "$cluster" --overwrite "pgv2.percona.com/trigger-switchover=$(date -u +%Y%m%d%H%M%S)" >/dev/null
echo "switchover: asked the operator to move the primary away from ${before#pod/}"
deadline=$(( $(date +%s) + timeout ))
while :; do
  after=$(k get pod -l "$selector" -o name)
  # Exactly one primary, and not the old one (two labelled pods mean Patroni is still moving).
  [[ -n "$after" && "$after" != *$'\n'* && "$after" != "$before" ]] && break
  (( $(date +%s) < deadline )) || fail "the primary is still ${before#pod/} after ${timeout}s"
  sleep "${SWITCHOVER_POLL_SECONDS:-2}"
done
in_recovery=$(k exec "$after" -c database -- psql -XAtq -c 'SELECT pg_is_in_recovery()')
[[ "$in_recovery" == f ]] || fail "the new primary ${after#pod/} is in recovery"
echo "switchover: ${after#pod/} is primary and accepts writes"
