#!/usr/bin/env bash
# The Debian packages the tests start or call (servers on loopback, exporters, shellcheck, the e2e's network
# namespace): installed when missing, with apt-get as root or through sudo when it asks no password; otherwise one line
# naming what is missing and the command that installs it. `make test`, `make check` and .ci/run call it first.
#
#   ops/toolchain/system-packages.sh [--check]     --check: report only, install nothing (exit 1 when any is missing)
set -euo pipefail

PACKAGES=(
  make openssl redis-server postgresql pgbackrest patroni etcd-server
  prometheus prometheus-alertmanager prometheus-postgres-exporter prometheus-redis-exporter
  shellcheck   # actionlint runs it over the workflows' scripts
  iproute2 curl  # the e2e's control plane: a network namespace, health checks
)

if ! command -v dpkg-query >/dev/null; then
  echo "system packages: this is not a Debian or Ubuntu machine; install the equivalents of: ${PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
as=()
if [[ "${1:-}" != "--check" ]]; then
  if [[ $EUID -eq 0 ]]; then
    as=(env)
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as=(sudo -n env)
  fi
fi
if [[ ${#as[@]} -gt 0 ]]; then
  echo "system packages: installing ${missing[*]}"
  # The tests start their own servers on free loopback ports: Debian's services (PostgreSQL, Redis, Prometheus, ...)
  # are not started by the install, through invoke-rc.d's policy hook, unless the machine already has a policy.
  policy="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
  if [[ ! -e "$policy" ]]; then
    # shellcheck disable=SC2016 # $1 is the inner shell's
    "${as[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > "$1" && chmod 755 "$1"' - "$policy"
    trap '"${as[@]}" rm -f "$policy"' EXIT
  fi
  "${as[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as[@]}" DEBIAN_FRONTEND=noninteractive "${install[@]}"
  exit 0
fi
echo "system packages missing: ${missing[*]}; install them with: sudo apt-get update && sudo ${install[*]}" >&2
exit 1
