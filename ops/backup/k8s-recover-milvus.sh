#!/usr/bin/env bash
# Restore a Milvus backup in the cluster: `milvus-backup restore` in a Job made from the suspended CronJob
# `milvus-restore`, which the platform deploys as the Job's template (a Job's pod template cannot be edited,
# so the backup's name travels in the ConfigMap `milvus-restore-source`).
#
#   k8s-recover-milvus.sh NAMESPACE BACKUP_NAME      (names: the milvus-backup CronJob's log, or `milvus-backup list`)
#
# Restored collections get the suffix milvus-backup gives them unless the originals were dropped first.
set -euo pipefail

namespace="${1:?usage: k8s-recover-milvus.sh NAMESPACE BACKUP_NAME}"
name="${2:?usage: k8s-recover-milvus.sh NAMESPACE BACKUP_NAME}"
[[ "$name" =~ ^[A-Za-z0-9_-]{1,128}$ ]] || { echo "k8s-recover-milvus: '$name' is not a backup name" >&2; exit 2; }
# shellcheck source=k8s-jobs.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-jobs.sh"
job="milvus-restore-$(date -u +%Y%m%d%H%M%S)"
k create configmap milvus-restore-source --from-literal=name="$name" --dry-run=client -o yaml | k apply -f - >/dev/null
k create job "$job" --from=cronjob/milvus-restore
if ! wait_job "$job" 21600; then
  k logs "job/$job" --tail=50 >&2 || true
  echo "k8s-recover-milvus: the restore job failed" >&2
  exit 1
fi
echo "restored Milvus backup $name"
