#!/usr/bin/env bash
# One-command PostgreSQL recovery in the cluster: stop PostgreSQL, restore its volume from pgBackRest
# (latest state or a point in time), start it again, and take a fresh full backup on the new timeline.
#
#   k8s-recover-postgres.sh NAMESPACE [latest|'2026-11-28 10:15:00+00']
#
# Uses the suspended CronJob `postgres-restore` that the platform deploys as the restore Job's template;
# the target travels in the ConfigMap `postgres-restore-target`. Needs kubectl with rights in NAMESPACE.
set -euo pipefail

namespace="${1:?usage: k8s-recover-postgres.sh NAMESPACE [latest|TIMESTAMP]}"
target="${2:-latest}"
if [[ "$target" != latest ]] && ! date -u -d "$target" >/dev/null 2>&1; then
  echo "k8s-recover-postgres: '$target' is not a timestamp like '2026-11-28 10:15:00+00'" >&2
  exit 2
fi
k() { kubectl --namespace "$namespace" "$@"; }
stamp=$(date -u +%Y%m%d%H%M%S)
started=$(date +%s)
step() { printf '[%4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

step "restore target: $target"
k create configmap postgres-restore-target --from-literal=target="$target" --dry-run=client -o yaml | k apply -f - >/dev/null

step "stopping PostgreSQL"
k scale statefulset/postgres --replicas=0
k wait --for=delete pod/postgres-0 --timeout=15m || true

step "restoring the volume"
k create job "postgres-restore-$stamp" --from=cronjob/postgres-restore
if ! k wait --for=condition=complete "job/postgres-restore-$stamp" --timeout=4h; then
  k logs "job/postgres-restore-$stamp" --tail=50 >&2 || true
  echo "k8s-recover-postgres: the restore job failed; PostgreSQL is left stopped (statefulset/postgres at 0 replicas)" >&2
  exit 1
fi

step "starting PostgreSQL (it replays WAL up to the target, then promotes)"
k scale statefulset/postgres --replicas=1
k rollout status statefulset/postgres --timeout=4h

step "full backup on the new timeline"
k create job "postgres-backup-after-restore-$stamp" --from=cronjob/postgres-backup-full
step "recovered; the backup job runs in the background (kubectl -n $namespace logs -f job/postgres-backup-after-restore-$stamp)"
