#!/usr/bin/env bash
# Builds the e2e toolchain from Go modules (e2e/tools/<tool>/go.mod, versions in the README's e2e table) into a cache
# outside the repository, keyed by those files: a second run, or CI on the same machine, finds it built.
#
#   e2e/build.sh            build what is missing; print the cache's bin directory last
#   e2e/build.sh --check    print it and exit 0 if the cache is complete, exit 3 (printing nothing) if not
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
shopt -s nullglob
inputs=("${BASH_SOURCE[0]}" "$tools"/*/go.mod "$tools"/*/go.sum "$tools"/*/*.go)
key="$(cat "${inputs[@]}" | sha256sum | cut -c1-16)"
cache="${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/real-estate-ai-e2e}/$key"
bin="$cache/bin"

if [[ -f "$cache/complete" ]]; then echo "$bin"; exit 0; fi
[[ "${1:-}" == --check ]] && exit 3
command -v go >/dev/null || { echo "e2e/build.sh: go is not installed (Go 1.26 builds every tool here)" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-trimpath

step() { # tool description command...: one line per tool with its wall time
  local tool=$1 what=$2 start; shift 2
  start=$(date +%s)
  echo "e2e build: $tool ($what)..." >&2
  (cd "$tools/$tool" && go mod download && "$@") >"$cache/$tool.log" 2>&1 \
    || { echo "e2e build: $tool failed; its log: $cache/$tool.log" >&2; tail -20 "$cache/$tool.log" >&2; exit 1; }
  echo "e2e build: $tool done in $(( $(date +%s) - start )) s" >&2
}

# Kubernetes: the version ldflags are not optional: without them the servers report v0.0.0 and the Pulumi provider
# refuses the cluster.
kube_ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $package.gitVersion=v1.36.3 -X $package.gitMajor=1 -X $package.gitMinor=36 -X $package.gitTreeState=clean"
done

step etcd "etcd v3.6.17" go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
step kube "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v1.36.3" go build -ldflags "$kube_ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
step kwok "kwok v0.8.0" go build -ldflags "-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok
# kwok's own stages (its module's kustomize/stage): nodes Ready with leases, pods Ready (Job pods complete). Not its
# volume stages: they mark a claim Bound before its volume exists, and the real PV controller then reports ClaimLost.
kwok_dir="$(cd "$tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready \
             pod/fast/pod-complete pod/fast/pod-delete; do
  echo "---"; cat "$kwok_dir/kustomize/stage/$stage.yaml"
done >"$cache/kwok-stages.yaml"

# The engine: the CLI's root command is in package main, so the module's go.mod names it as a tool.
step pulumi "Pulumi CLI v3.276.0" go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v3.276.0" \
  -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
# The Kubernetes provider: the proxy serves only the January 2026 pseudo-version (tag v4.25.0). Its schema, stamped with
# that version as upstream's generate step does, is embedded by our main.
provider_module=github.com/pulumi/pulumi-kubernetes/provider/v4
provider_dir="$(cd "$tools/kubernetes" && go mod download "$provider_module" && go list -m -f '{{.Dir}}' "$provider_module")"
python3 - "$provider_dir/cmd/pulumi-resource-kubernetes" "$tools/kubernetes" <<'PY'
import json, sys
source, target = sys.argv[1:]
schema = json.load(open(f"{source}/schema.json"))
schema["version"] = "4.25.0"
json.dump(schema, open(f"{target}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{source}/terraform-mapping.json")), open(f"{target}/terraform-mapping-embed.json", "w"))
PY
step kubernetes "pulumi-resource-kubernetes v4.25.0" go build -ldflags "-s -w -X $provider_module/pkg/version.Version=4.25.0" \
  -o "$bin/pulumi-resource-kubernetes" .

touch "$cache/complete"
echo "$bin"
