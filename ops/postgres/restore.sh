#!/usr/bin/env bash
# Restore the PostgreSQL cluster with the Percona operator (PerconaPGRestore), with checks around it so a restore
# cannot make things worse.
#
#   restore.sh NAMESPACE --latest [--repo repo1|repo2] [--set LABEL] [--snapshot-class NAME | --no-snapshot]
#   restore.sh NAMESPACE --time '2026-11-28 10:15:00+00' [--repo repo1|repo2] [--set LABEL] [...]
#
# Before: refuses while another restore runs; proves the repository can reach the target (pg_archive.py against
# the repository host: no WAL gap from the backup it will use to the archive's end; a time after the oldest backup),
# and takes the other repository when the chosen one cannot — for --latest, the one whose archive goes further unless
# --repo names one; snapshots every data volume of the cluster
# (VolumeSnapshot), because the operator restores in place over the only copy. --no-snapshot restores without
# that copy, deliberately. After: fails as soon as the operator reports failure; checks the cluster is ready with
# one primary out of recovery and, for --latest, that recovery reached the archive's end (the new timeline's switch
# point); if it did not, restores again from the other repository when that one passed its check.
# The script never scales or edits what Pulumi owns. Needs kubectl with rights in NAMESPACE, python3 (3.9+),
# bash 4.4+ and GNU date (on macOS: Homebrew's bash and coreutils).
# Exit: 0 restored, 1 failed, 2 bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
label="postgres-operator.crunchydata.com"

usage() {
  echo "usage: restore.sh NAMESPACE (--latest | --time 'YYYY-MM-DD HH:MM:SS+00') [--repo repo1|repo2] [--set LABEL]" \
       "[--snapshot-class NAME | --no-snapshot] [--cluster NAME] [--timeout SECONDS]" >&2
  exit 2
}
fail() { echo "restore: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
namespace="$1"; shift
cluster="postgres" repo="repo1" repo_chosen="no" target="" mode="" timeout=14400 set_label="" snapshot="yes" snapshot_class=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --latest) mode="latest"; shift; continue ;;
    --no-snapshot) snapshot="no"; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --time) mode="time"; target="$2" ;;
    --repo) repo="$2" repo_chosen="yes" ;;
    --set) set_label="$2" ;;
    --snapshot-class) snapshot_class="$2" ;;
    --cluster) cluster="$2" ;;
    --timeout) timeout="$2" ;;
    *) usage ;;
  esac
  shift 2
done
[[ -n "$mode" ]] || usage
name_re='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ "$namespace" =~ $name_re ]] || { echo "restore: '$namespace' is not a namespace name" >&2; exit 2; }
[[ "$cluster" =~ $name_re ]] || { echo "restore: --cluster '$cluster' is not a resource name" >&2; exit 2; }
[[ "$repo" =~ ^repo[12]$ ]] || { echo "restore: --repo must be repo1 (in the cluster) or repo2 (off site)" >&2; exit 2; }
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "restore: --timeout must be a number of seconds" >&2; exit 2; }
if [[ -n "$set_label" && ! "$set_label" =~ ^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$ ]]; then
  echo "restore: --set '$set_label' is not a backup label like 20261128-010002F or 20261128-010002F_20261128-093002I" >&2
  exit 2
fi
if [[ -n "$snapshot_class" && ( "$snapshot" == no || ! "$snapshot_class" =~ ^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$ ) ]]; then
  echo "restore: --snapshot-class must be a VolumeSnapshotClass name, and not with --no-snapshot" >&2
  exit 2
fi
options=()
check_args=(--newest)
if [[ "$mode" == time ]]; then
  # An absolute time with its offset, so nobody restores to the wrong hour.
  [[ "$target" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:?[0-9]{2})?$ ]] \
    || { echo "restore: --time '$target' is not a time like '2026-11-28 10:15:00+00'" >&2; exit 2; }
  target_epoch=$(date -u -d "$target" +%s 2>/dev/null) || { echo "restore: --time '$target' is not a valid time" >&2; exit 2; }
  (( target_epoch <= $(date -u +%s) )) || { echo "restore: --time '$target' is in the future" >&2; exit 2; }
  # The operator runs `pgbackrest restore <options>` through a shell: the time's space must stay quoted.
  # PostgreSQL refuses to promote when the WAL ends before the time: a short archive fails the restore.
  options+=("\"--type=time\"" "'--target=\"$target\"'")
  check_args=(--target-time "$target_epoch")
fi
if [[ -n "$set_label" ]]; then
  options+=("\"--set=$set_label\"")
  check_args=(--set "$set_label")
fi
command -v python3 >/dev/null || fail "python3 is needed to check the repository's archive before restoring"

k() { kubectl --namespace "$namespace" "$@"; }
poll() { sleep "${RESTORE_POLL_SECONDS:-10}"; }
field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read()).get(sys.argv[1], ""))' "$1"; }
lsn() { local high="${1%/*}" low="${1#*/}"; echo $(( (16#$high << 32) + 16#$low )); }

k get perconapgcluster "$cluster" -o name >/dev/null || fail "no PerconaPGCluster '$cluster' in namespace '$namespace'"
# A restore the operator has not picked up yet has no state: it counts as running too.
restores=$(k get perconapgrestore -o jsonpath='{range .items[*]}{.spec.pgCluster}={.status.state}{"\n"}{end}') \
  || fail "could not list the restores in '$namespace'"
if grep -Eq "^${cluster}=(|Starting|Running)$" <<<"$restores"; then
  fail "a restore of '$cluster' is already running; wait for it (kubectl get perconapgrestore -n $namespace)"
fi

# --- 1. Which repository can reach the target ------------------------------------------------------------------
repo_host=$(k get pod -l "$label/cluster=$cluster,$label/data=pgbackrest" -o name | head -n 1)
[[ -n "$repo_host" ]] || fail "no repository host pod for '$cluster'; the archive cannot be checked (kubectl get pods -l $label/data=pgbackrest)"
usable=() gapped=()
declare -A archive_end=() archive_timeline=()
other() { [[ "$1" == repo1 ]] && echo repo2 || echo repo1; }
for candidate in "$repo" "$(other "$repo")"; do
  [[ "$candidate" == "$repo" ]] || echo "restore: trying $candidate instead" >&2
  report=$(PG_ARCHIVE_EXEC="kubectl --namespace $namespace exec ${repo_host#pod/} -c pgbackrest --" \
           python3 "$here/../backup/pg_archive.py" check --repo "${candidate#repo}" "${check_args[@]}") && status=0 || status=$?
  if (( status == 0 )); then
    usable+=("$candidate")
    archive_end[$candidate]=$(field end_lsn <<<"$report")
    archive_timeline[$candidate]=$(field timeline <<<"$report")
    echo "restore: $candidate can reach the target: backup $(field newest_backup <<<"$report"), archive to $(field end <<<"$report")"
  elif (( status == 1 )) && [[ "$mode" == time && "$(field missing <<<"$report")" =~ ^[1-9] ]]; then
    # A gap somewhere after the backup: the time may lie before it. PostgreSQL refuses to promote if it does not.
    gapped+=("$candidate")
    archive_end[$candidate]=$(field end_lsn <<<"$report")
    archive_timeline[$candidate]=$(field timeline <<<"$report")
    echo "restore: $candidate has a WAL gap (see above); usable only if '$target' lies before it" >&2
  elif (( status == 3 )) && [[ "$candidate" == repo2 ]]; then
    echo "restore: repo2 could not be read (not configured, or the off-site store is unreachable; see above)" >&2
  else
    echo "restore: $candidate cannot reach the target (see above)" >&2
  fi
done
usable+=(${gapped[@]+"${gapped[@]}"})
(( ${#usable[@]} > 0 )) || fail "no repository can restore '$cluster' to ${target:-the latest archived WAL}; nothing was changed"
if [[ "$mode" == latest && ${#usable[@]} == 2 ]]; then
  # "Latest" is the end of whichever archive goes further: restoring from the shorter one loses the rest.
  first="${usable[0]}" second="${usable[1]}"
  if (( 16#${archive_timeline[$second]} > 16#${archive_timeline[$first]} )) \
     || { (( 16#${archive_timeline[$second]} == 16#${archive_timeline[$first]} )) \
          && (( $(lsn "${archive_end[$second]}") > $(lsn "${archive_end[$first]}") )); }; then
    if [[ "$repo_chosen" == yes ]]; then
      echo "restore: $second's archive goes further (${archive_end[$second]} on timeline $(( 16#${archive_timeline[$second]} )))" \
           "than $first's (${archive_end[$first]}); restoring from $first as asked loses what lies between" >&2
    else
      echo "restore: $second's archive goes further (${archive_end[$second]}) than $first's (${archive_end[$first]}): restoring from $second first"
      usable=("$second" "$first")
    fi
  fi
fi

# --- 2. A copy of what the restore overwrites ---------------------------------------------------------------------
name="restore-$(date -u +%Y%m%d%H%M%S)"
if [[ "$snapshot" == yes ]]; then
  k api-resources --api-group=snapshot.storage.k8s.io -o name 2>/dev/null | grep -q '^volumesnapshots' \
    || fail "this cluster has no VolumeSnapshot API, so the data volumes cannot be copied before the operator restores over them;" \
            "restore into a new cluster instead (postgres.restoreFrom in a new stack), or pass --no-snapshot to restore in place without a copy"
  claims=$(k get pvc -l "$label/cluster=$cluster,$label/data=postgres" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  [[ -n "$claims" ]] || fail "no data volumes found for '$cluster' to snapshot"
  for claim in $claims; do
    k apply -f - >/dev/null <<YAML
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $claim-before-$name
  labels: {app.kubernetes.io/part-of: real-estate-ai, real-estate-ai/restore: $name}
spec:
  ${snapshot_class:+volumeSnapshotClassName: $snapshot_class}
  source: {persistentVolumeClaimName: $claim}
YAML
  done
  deadline=$(( $(date +%s) + timeout ))
  for claim in $claims; do
    while :; do
      state=$(k get volumesnapshot "$claim-before-$name" -o jsonpath='{.status.readyToUse}|{.status.error.message}')
      [[ "${state%%|*}" == true ]] && break
      [[ -z "${state#*|}" ]] || fail "snapshot of $claim failed: ${state#*|}; nothing was restored"
      (( $(date +%s) < deadline )) || fail "snapshot of $claim not ready after ${timeout}s; nothing was restored"
      poll
    done
    echo "restore: $claim copied to VolumeSnapshot $claim-before-$name"
  done
fi

# --- 3. Restore, and prove the result -----------------------------------------------------------------------------
restore_from() {
  local from="$1" attempt="$name-${1}" state attempt_options=("${options[@]+"${options[@]}"}")
  if [[ "$mode" == latest ]]; then
    # Follow the timeline the check walked, not "latest": once a first attempt has run, its own (short) timeline
    # is in the repositories too, and a second attempt must not follow it back to the gap.
    attempt_options+=("\"--recovery-option=recovery_target_timeline=$(( 16#${archive_timeline[$from]} ))\"")
  fi
  local options_yaml="[$(IFS=,; echo "${attempt_options[*]}")]"
  echo "restore: $attempt: $cluster from $from to ${target:-the latest archived WAL}${set_label:+ (backup $set_label)}"
  k apply -f - <<YAML
apiVersion: pgv2.percona.com/v2
kind: PerconaPGRestore
metadata:
  name: $attempt
spec:
  pgCluster: $cluster
  repoName: $from
  options: $options_yaml
YAML
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    state=$(k get perconapgrestore "$attempt" -o jsonpath='{.status.state}')
    case "$state" in
      Succeeded) break ;;
      Failed)
        k get perconapgrestore "$attempt" -o yaml >&2 || true
        fail "the operator reports restore $attempt failed (see above)${snapshots_note}" ;;
    esac
    (( $(date +%s) < deadline )) || fail "restore $attempt still '${state:-pending}' after ${timeout}s${snapshots_note}"
    poll
  done
  echo "restore: $attempt succeeded; waiting for the cluster to be ready"
  while [[ "$(k get perconapgcluster "$cluster" -o jsonpath='{.status.state}')" != ready ]]; do
    (( $(date +%s) < deadline )) || fail "cluster '$cluster' not ready after the restore${snapshots_note}"
    poll
  done
  primary=$(k get pod -l "$label/cluster=$cluster,$label/role=primary" -o name)
  [[ -n "$primary" ]] || fail "cluster '$cluster' has no primary after the restore"
  [[ "$primary" != *$'\n'* ]] || fail "cluster '$cluster' reports more than one primary: $(tr '\n' ' ' <<<"$primary")"
  in_recovery=$(k exec "$primary" -c database -- psql -XAtq -c 'SELECT pg_is_in_recovery()')
  [[ "$in_recovery" == f ]] || fail "the primary ${primary#pod/} is still in recovery"
}

# Where recovery ended: the last line of the new timeline's history, "<timeline it left> <switch point> <reason>".
recovery_end() {
  k exec "$primary" -c database -- psql -XAtq -c \
    "SELECT pg_read_file('pg_wal/' || lpad(upper(to_hex(timeline_id)), 8, '0') || '.history') FROM pg_control_checkpoint() WHERE timeline_id > 1" \
    | awk 'NF >= 2 && $1 ~ /^[0-9]+$/ { line = $1 " " $2 } END { print line }'
}

snapshots_note=""
[[ "$snapshot" == yes ]] && snapshots_note="; the data as it was before is in the VolumeSnapshots labelled real-estate-ai/restore=$name"
for from in "${usable[@]}"; do
  restore_from "$from"
  if [[ "$mode" == time ]]; then
    echo "restore: $cluster restored from $from to $target; primary ${primary#pod/} accepts writes"
    exit 0
  fi
  ended=$(recovery_end) || ended=""
  left_timeline="${ended%% *}" ended="${ended#* }"
  if [[ -n "$ended" && "$left_timeline" == "$(( 16#${archive_timeline[$from]} ))" ]] \
     && (( $(lsn "$ended") > $(lsn "${archive_end[$from]}") )); then
    echo "restore: $cluster restored from $from to the archive's end (recovery ended at $ended); primary ${primary#pod/} accepts writes"
    exit 0
  fi
  echo "restore: recovery from $from ended at ${ended:-an unknown point} on timeline ${left_timeline:-?}, before the archive's end" \
       "${archive_end[$from]} on timeline $(( 16#${archive_timeline[$from]} )): WAL after it could not be read" >&2
done
fail "no repository restored '$cluster' to the archive's end${snapshots_note}"
