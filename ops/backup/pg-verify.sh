#!/usr/bin/env bash
# Verify every backup and archived WAL segment in each repository of BACKUP_REPOS against their checksums.
# Exits non-zero, naming the repository and the invalid backups, when a file is missing or corrupt.
set -euo pipefail

repos="${BACKUP_REPOS:-1}"
failed=0
for repo in $repos; do
  if ! report=$(pgbackrest verify --repo="$repo" --output=text --verbose 2>&1); then
    echo "$report" >&2
    echo "pg-verify: repository ${repo}: verification could not run" >&2
    failed=1
    continue
  fi
  # pgBackRest exits 0 even when it finds damage; the report's stanza status is the verdict.
  if ! grep -q '^status: ok$' <<<"$report" || grep -q '^status: error$' <<<"$report"; then
    echo "$report" >&2
    invalid=$(awk '/^  backup: .*status: invalid/ {gsub(",", "", $2); print $2}' <<<"$report" | paste -sd, -)
    echo "pg-verify: repository ${repo} FAILED verification; invalid backups: ${invalid:-none (WAL or repository metadata)}" >&2
    failed=1
    continue
  fi
  backups=$(grep -c '^  backup: .*status: valid' <<<"$report" || true)
  printf '{"time":"%s","job":"pg-verify","repo":%s,"status":"ok","valid_backups":%s}\n' "$(date -u +%FT%TZ)" "$repo" "$backups"
done
exit "$failed"
