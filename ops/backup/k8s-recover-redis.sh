#!/usr/bin/env bash
# One-command Redis recovery in the cluster: stop Redis, restore the newest snapshot (or a named one) into
# its volume, start it again.
#
#   k8s-recover-redis.sh NAMESPACE [dump-YYYYMMDDTHHMMSSZ.rdb.gz]
#
# Uses the suspended CronJob `redis-restore` that the platform deploys as the restore Job's template;
# the snapshot's name travels in the ConfigMap `redis-restore-source`. Needs kubectl with rights in NAMESPACE.
set -euo pipefail

namespace="${1:?usage: k8s-recover-redis.sh NAMESPACE [SNAPSHOT_FILE]}"
snapshot="${2:-}"
if [[ -n "$snapshot" && ! "$snapshot" =~ ^dump-[0-9]{8}T[0-9]{6}Z\.rdb\.gz$ ]]; then
  echo "k8s-recover-redis: '$snapshot' is not a snapshot name like dump-20261128T101500Z.rdb.gz" >&2
  exit 2
fi
# shellcheck source=k8s-jobs.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-jobs.sh"
stamp=$(date -u +%Y%m%d%H%M%S)

k create configmap redis-restore-source --from-literal=path="/backups/${snapshot}" --dry-run=client -o yaml | k apply -f - >/dev/null
k scale statefulset/redis --replicas=0
k wait --for=delete pod/redis-0 --timeout=10m || true
k create job "redis-restore-$stamp" --from=cronjob/redis-restore
if ! wait_job "redis-restore-$stamp" 3600; then
  k logs "job/redis-restore-$stamp" --tail=50 >&2 || true
  echo "k8s-recover-redis: the restore job failed; Redis is left stopped (statefulset/redis at 0 replicas)" >&2
  exit 1
fi
k scale statefulset/redis --replicas=1
k rollout status statefulset/redis --timeout=30m
echo "recovered Redis from ${snapshot:-the newest snapshot}"
