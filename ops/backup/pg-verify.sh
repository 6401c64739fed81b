#!/usr/bin/env bash
# Check each repository of BACKUP_REPOS: the WAL archive has no gap from any retained backup to its end
# (pg_archive.py), and the files are sound (pgbackrest verify against their checksums).
#
# The checksum pass covers the newest backup set on most days and everything in the repository once a week
# (VERIFY_FULL_WEEKDAY, 1 = Monday … 7 = Sunday, default 7; VERIFY_SCOPE=full|latest forces either). On the
# other days every WAL segment a restore to latest replays is read back too (pg_archive.py wal; it restores the
# newest backup's system databases, tens of MB, under VERIFY_SCRATCH, default /tmp).
# The continuity check is cheap (a listing) and always covers every retained backup. With several repositories,
# one that lacks a segment another received more than VERIFY_MAX_ARCHIVE_LAG seconds (default 900) before its
# newest fails too: it has stopped receiving WAL (an unreachable off-site store), which no gap inside its own
# archive shows. Both times come from the leading store, so a clock skew between stores never raises it.
# Exits non-zero, naming the repository and what is wrong; one JSON line per repository on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repos="${BACKUP_REPOS:-1}"
scope="${VERIFY_SCOPE:-}"
if [[ -z "$scope" ]]; then
  [[ "$(date -u +%u)" == "${VERIFY_FULL_WEEKDAY:-7}" ]] && scope=full || scope=latest
fi
[[ "$scope" == full || "$scope" == latest ]] || { echo "pg-verify: VERIFY_SCOPE must be full or latest" >&2; exit 2; }

failed=0
declare -A continuity=() newest=()
for repo in $repos; do
  if ! report=$(python3 "$here/pg_archive.py" check --repo "$repo"); then
    echo "$report"
    echo "pg-verify: repository ${repo}: WAL archive check FAILED (see above)" >&2
    failed=1
  fi
  continuity[$repo]="$report"
  newest[$repo]=$(python3 -c 'import json, sys; print(json.loads(sys.stdin.read()).get("newest_backup", ""))' <<<"$report")
done
read -ra repo_list <<<"$repos"
if (( ${#repo_list[@]} > 1 )); then
  # By WAL position, timed by the leading repository's own clock (a repository with a gap still has an end).
  python3 "$here/pg_archive.py" lag "${repo_list[@]/#/--repo=}" --max-seconds "${VERIFY_MAX_ARCHIVE_LAG:-900}" || failed=1
fi

for repo in $repos; do
  set_args=()
  if [[ "$scope" == latest ]]; then
    [[ -n "${newest[$repo]}" ]] || { echo "pg-verify: repository ${repo}: no backup to verify" >&2; failed=1; continue; }
    set_args=(--set="${newest[$repo]}")
  fi
  if ! report=$(pgbackrest verify --repo="$repo" "${set_args[@]}" --output=text --verbose 2>&1); then
    echo "$report" >&2
    echo "pg-verify: repository ${repo}: verification could not run" >&2
    failed=1
    continue
  fi
  # pgBackRest exits 0 even when it finds damage; the report's stanza status is the verdict, and every backup's
  # own: one whose manifest is gone reads "manifest missing" under a stanza status of ok, and cannot be restored.
  # "in-progress" is a backup running now.
  invalid=$(awk '/^  backup: / {
      label = $2; sub(",", "", label); state = $0; sub(/.*status: /, "", state); sub(/,.*/, "", state)
      if (state == "invalid") print label; else if (state != "valid" && state != "in-progress") print label " (" state ")" }' <<<"$report" \
    | paste -sd, - | sed 's/,/, /g')
  if ! grep -q '^status: ok$' <<<"$report" || grep -q '^status: error$' <<<"$report" || [[ -n "$invalid" ]]; then
    echo "$report" >&2
    echo "pg-verify: repository ${repo} FAILED verification; invalid backups: ${invalid:-none (WAL or repository metadata)}" >&2
    failed=1
    continue
  fi
  if [[ "$scope" == latest ]]; then
    # pgBackRest's verify of one backup set reads that set's own WAL only: the rest of what a restore to latest
    # replays is read here, every day (the full pass reads all WAL).
    if ! wal=$(python3 "$here/pg_archive.py" wal --repo "$repo" --scratch "${VERIFY_SCRATCH:-/tmp}/wal-$repo"); then
      echo "$wal"
      echo "pg-verify: repository ${repo}: the WAL after backup ${newest[$repo]} FAILED to read back (see above)" >&2
      failed=1
      continue
    fi
    echo "$wal"
  fi
  backups=$(grep -c '^  backup: .*status: valid' <<<"$report" || true)
  state=ok
  grep -q '"status": "ok"' <<<"${continuity[$repo]}" || state=failed
  printf '{"time":"%s","job":"pg-verify","repo":%s,"status":"%s","scope":"%s","newest_backup":"%s","valid_backups":%s,"archive":%s}\n' \
    "$(date -u +%FT%TZ)" "$repo" "$state" "$scope" "${newest[$repo]}" "$backups" "${continuity[$repo]}"
done
exit "$failed"
