# Sourced by the k8s-recover-*.sh scripts (run from an operator's machine with kubectl), not run on its own.

# kubectl in the namespace the calling script set.
k() { kubectl --namespace "$namespace" "$@"; }

# Waits for a Job to succeed; returns 1 as soon as it has failed (kubectl wait --for=complete would sit out the timeout).
wait_job() {
  local job="$1" deadline=$(( $(date +%s) + $2 )) succeeded failed
  while (( $(date +%s) < deadline )); do
    succeeded=$(k get "job/$job" -o jsonpath='{.status.succeeded}')
    failed=$(k get "job/$job" -o jsonpath='{.status.failed}')
    [[ "${succeeded:-0}" -ge 1 ]] && return 0
    [[ "${failed:-0}" -ge 1 ]] && return 1
    sleep "${JOB_POLL_SECONDS:-5}"
  done
  return 1
}
