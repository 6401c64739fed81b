#!/usr/bin/env bash
# Restore the PostgreSQL cluster with the Percona operator (PerconaPGRestore), wait, and verify.
#
#   restore.sh NAMESPACE --latest [--repo repo1|repo2]
#   restore.sh NAMESPACE --time '2026-11-28 10:15:00+00' [--repo repo1|repo2]
#
# The operator stops the cluster, restores its data volumes in place from the repository and starts it again;
# this script never scales or edits what Pulumi owns. It refuses to start while another restore runs, fails as
# soon as the operator reports failure (not after a timeout), and checks the result: the cluster ready and its
# primary out of recovery. Needs kubectl with rights in NAMESPACE. Exit: 0 restored, 1 failed, 2 bad usage.
set -euo pipefail

usage() {
  echo "usage: restore.sh NAMESPACE (--latest | --time 'YYYY-MM-DD HH:MM:SS+00') [--repo repo1|repo2] [--cluster NAME] [--timeout SECONDS]" >&2
  exit 2
}
fail() { echo "restore: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
namespace="$1"; shift
cluster="postgres" repo="repo1" target="" mode="" timeout=14400
while [[ $# -gt 0 ]]; do
  case "$1" in
    --latest) mode="latest"; shift ;;
    --time) mode="time"; target="${2:-}"; shift 2 ;;
    --repo) repo="${2:-}"; shift 2 ;;
    --cluster) cluster="${2:-}"; shift 2 ;;
    --timeout) timeout="${2:-}"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$mode" ]] || usage
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || { echo "restore: '$namespace' is not a namespace name" >&2; exit 2; }
[[ "$repo" =~ ^repo[12]$ ]] || { echo "restore: --repo must be repo1 (in the cluster) or repo2 (off site)" >&2; exit 2; }
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "restore: --timeout must be a number of seconds" >&2; exit 2; }
options='[]'
if [[ "$mode" == time ]]; then
  # An absolute time with its offset, so nobody restores to the wrong hour.
  [[ "$target" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:?[0-9]{2})?$ ]] \
    || { echo "restore: --time '$target' is not a time like '2026-11-28 10:15:00+00'" >&2; exit 2; }
  target_epoch=$(date -u -d "$target" +%s 2>/dev/null) || { echo "restore: --time '$target' is not a valid time" >&2; exit 2; }
  (( target_epoch <= $(date -u +%s) )) || { echo "restore: --time '$target' is in the future" >&2; exit 2; }
  # The operator runs `pgbackrest restore <options>` through a shell: the time's space must stay quoted.
  options="[\"--type=time\", '--target=\"$target\"']"
fi

k() { kubectl --namespace "$namespace" "$@"; }

k get perconapgcluster "$cluster" -o name >/dev/null || fail "no PerconaPGCluster '$cluster' in namespace '$namespace'"
# A restore the operator has not picked up yet has no state: it counts as running too.
restores=$(k get perconapgrestore -o jsonpath='{range .items[*]}{.spec.pgCluster}={.status.state}{"\n"}{end}') \
  || fail "could not list the restores in '$namespace'"
if grep -Eq "^${cluster}=(|Starting|Running)$" <<<"$restores"; then
  fail "a restore of '$cluster' is already running; wait for it (kubectl get perconapgrestore -n $namespace)"
fi

name="restore-$(date -u +%Y%m%d%H%M%S)"
echo "restore: $name: $cluster from $repo to ${target:-the latest archived WAL}"
k apply -f - <<YAML
apiVersion: pgv2.percona.com/v2
kind: PerconaPGRestore
metadata:
  name: $name
spec:
  pgCluster: $cluster
  repoName: $repo
  options: $options
YAML

deadline=$(( $(date +%s) + timeout ))
state=""
while :; do
  state=$(k get perconapgrestore "$name" -o jsonpath='{.status.state}')
  case "$state" in
    Succeeded) break ;;
    Failed)
      k get perconapgrestore "$name" -o yaml >&2 || true
      fail "the operator reports restore $name failed; the cluster was not changed further (see above)" ;;
  esac
  (( $(date +%s) < deadline )) || fail "restore $name still '${state:-pending}' after ${timeout}s"
  sleep "${RESTORE_POLL_SECONDS:-10}"
done

echo "restore: $name succeeded; waiting for the cluster to be ready"
while [[ "$(k get perconapgcluster "$cluster" -o jsonpath='{.status.state}')" != ready ]]; do
  (( $(date +%s) < deadline )) || fail "cluster '$cluster' not ready after the restore"
  sleep "${RESTORE_POLL_SECONDS:-10}"
done
primary=$(k get pod -l "postgres-operator.crunchydata.com/cluster=$cluster,postgres-operator.crunchydata.com/role=primary" -o name)
[[ -n "$primary" ]] || fail "cluster '$cluster' has no primary after the restore"
[[ "$primary" != *$'\n'* ]] || fail "cluster '$cluster' reports more than one primary: $(tr '\n' ' ' <<<"$primary")"
in_recovery=$(k exec "$primary" -c database -- psql -XAtq -c 'SELECT pg_is_in_recovery()')
[[ "$in_recovery" == f ]] || fail "the primary ${primary#pod/} is still in recovery"
echo "restore: $cluster restored from $repo to ${target:-latest}; primary ${primary#pod/} accepts writes"
