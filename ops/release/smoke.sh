#!/bin/sh
# The canary's pre-rollout check: Flagger's loadtester runs it against the canary Service before any user is sent
# there (components/canary.py); a non-zero exit is a failed check. Also usable by hand against any API URL.
#
#   smoke.sh BASE_URL VERSION        (the API key in API_KEY, or in the file API_KEY_FILE names)
#
# Passes when /ready answers 200, /version reports VERSION, and one recommendation (a business call through the new
# code, its cache, vector search and database) answers 200.
set -eu

base="${1:?usage: smoke.sh BASE_URL VERSION}"
want="${2:?usage: smoke.sh BASE_URL VERSION}"
if [ -z "${API_KEY:-}" ] && [ -n "${API_KEY_FILE:-}" ]; then
  API_KEY="$(cat "$API_KEY_FILE")" || { echo "smoke: cannot read API_KEY_FILE $API_KEY_FILE" >&2; exit 1; }
fi
[ -n "${API_KEY:-}" ] || { echo "smoke: API_KEY (or API_KEY_FILE) is not set" >&2; exit 1; }

fail() { echo "smoke: $*" >&2; exit 1; }

curl -fsS --max-time 5 -o /dev/null "$base/ready" || fail "$base/ready did not answer 200"
body="$(curl -fsS --max-time 5 "$base/version")" || fail "$base/version did not answer 200"
version="$(printf '%s' "$body" | jq -r '.version // empty')" || fail "$base/version answered no JSON: $body"
[ "$version" = "$want" ] || fail "$base/version reports '$version', expected '$want'"
status="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
  -H "X-API-Key: $API_KEY" -H 'Content-Type: application/json' -H 'X-User-ID: canary-smoke' \
  -d '{"user_id": "canary-smoke", "budget": 2000000, "area_sqm": 80, "bedrooms": 2, "latitude": 31.2, "longitude": 121.5}' \
  "$base/v1/recommendations")" || fail "$base/v1/recommendations did not answer"
[ "$status" = 200 ] || fail "$base/v1/recommendations answered $status"
echo "smoke: $base serves version $version"
