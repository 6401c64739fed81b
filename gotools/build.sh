#!/usr/bin/env bash
# Builds tools from Go modules (gotools/<tool>/go.mod; versions in the README's tools table) into a cache outside the
# repository, one directory per tool keyed by its files and its recipe below: a second run, CI on the same machine,
# or a change to another tool finds it built.
#
#   gotools/build.sh [TOOL...]          build what is missing (default: every tool); print a bin directory last
#   gotools/build.sh --check [TOOL...]  print it and exit 0 if every TOOL is built, exit 3 (printing nothing) if not
#
# The printed directory holds links to the requested tools' binaries (and kwok's stages, kwok-stages.yaml, beside it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${GOTOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/real-estate-ai-gotools}"
ALL=(etcd kube kwok pulumi kubernetes prometheus alertmanager blackbox promql-scope amconfig ksm-crs actionlint)
export GOFLAGS=-trimpath

# One recipe per tool, run in gotools/<tool> with $out the tool's bin directory.

build_etcd() { go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3; }

# The version ldflags are not optional: without them the servers report v0.0.0 and the Pulumi provider refuses the
# cluster.
build_kube() {
  local flags="-s -w" package
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $package.gitVersion=v1.36.3 -X $package.gitMajor=1 -X $package.gitMinor=36 -X $package.gitTreeState=clean"
  done
  go build -ldflags "$flags" -o "$out/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

# kwok's own stages (its module's kustomize/stage): nodes Ready with leases, pods Ready (Job pods complete). Not its
# volume stages: they mark a claim Bound before its volume exists, and the real PV controller then reports ClaimLost.
build_kwok() {
  go build -ldflags "-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok
  local dir stage
  dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready \
               pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"; cat "$dir/kustomize/stage/$stage.yaml"
  done >"$out/kwok-stages.yaml"
}

# The engine: the CLI's root command is in package main, so the module's go.mod names it as a tool.
build_pulumi() {
  go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v3.276.0" \
    -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

# The Kubernetes provider: the proxy serves only the January 2026 pseudo-version (tag v4.25.0). Its schema, stamped with
# that version as upstream's generate step does, is embedded by our main.
build_kubernetes() {
  local module=github.com/pulumi/pulumi-kubernetes/provider/v4 dir
  dir="$(go mod download "$module" && go list -m -f '{{.Dir}}' "$module")"
  python3 - "$dir/cmd/pulumi-resource-kubernetes" . <<'PY'
import json, sys
source, target = sys.argv[1:]
schema = json.load(open(f"{source}/schema.json"))
schema["version"] = "4.25.0"
json.dump(schema, open(f"{target}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{source}/terraform-mapping.json")), open(f"{target}/terraform-mapping-embed.json", "w"))
PY
  go build -ldflags "-s -w -X $module/pkg/version.Version=4.25.0" -o "$out/pulumi-resource-kubernetes" .
}

# Prometheus and Alertmanager of the versions kube-prometheus-stack 88.3.0 runs (v3.13.2, v0.33.1), with their
# version and revision stamped as their release builds do.
common_version() { # version revision: ldflags that make --version and the build-info endpoints tell the truth
  echo "-s -w -X github.com/prometheus/common/version.Version=$1 -X github.com/prometheus/common/version.Revision=$2 -X github.com/prometheus/common/version.Branch=HEAD -X github.com/prometheus/common/version.BuildUser=gotools"
}
# The server's web UI is not in the module (npm builds it; only the `builtinassets` tag embeds it): its API is.
build_prometheus() {
  CGO_ENABLED=0 go build -tags netgo -ldflags "$(common_version 3.13.2 bb5dff00cf8fdfbf5c65e0531aa835fa238a43a2)" -o "$out/" \
    github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
}
# Alertmanager's server embeds its UI (`//go:embed app/dist`), which npm and Elm generate and the module lacks: it is
# built from a copy of the module beside the binaries with a one-page stand-in there (the API and amtool unchanged).
build_alertmanager() {
  local flags module=github.com/prometheus/alertmanager work="$out/../src"
  flags="$(common_version 0.33.1 2c8da51e03f3dbbed24f9711ca2d76aab4eef9c5)"
  rm -rf "$work"; mkdir -p "$work"
  go mod download "$module"
  cp -r "$(go list -m -f '{{.Dir}}' "$module")" "$work/alertmanager"; chmod -R u+w "$work/alertmanager"
  mkdir -p "$work/alertmanager/ui/app/dist"
  echo '<!DOCTYPE html><title>Alertmanager</title><p>No web UI in this build: the API is at api/v2/.</p>' \
    | gzip -9 -n >"$work/alertmanager/ui/app/dist/index.html.gz"
  cp go.mod go.sum "$work/"
  (cd "$work" && go mod edit -replace "$module=./alertmanager" \
    && CGO_ENABLED=0 go build -tags netgo -ldflags "$flags" -o "$out/" "$module/cmd/alertmanager" "$module/cmd/amtool")
  rm -rf "$work"
}

# The blackbox exporter the stack deploys (settings/monitoring.py ProbeSettings.image), for the probes' real test.
build_blackbox() {
  CGO_ENABLED=0 go build -tags netgo -ldflags "$(common_version 0.28.0 5a059bee8d8ffa4e75947c5055fb0abeefc582e6)" \
    -o "$out/blackbox_exporter" github.com/prometheus/blackbox_exporter
}

# The workflow linter (its version comes from the module's build info).
build_actionlint() { go build -ldflags "-s -w" -o "$out/actionlint" github.com/rhysd/actionlint/cmd/actionlint; }

# Our own mains over upstream packages.
build_promql-scope() { go build -ldflags "-s -w" -o "$out/promql-scope" .; }
build_amconfig() { go build -ldflags "-s -w" -o "$out/amconfig" .; }
build_ksm-crs() { go build -ldflags "-s -w" -o "$out/ksm-crs" .; }

key_of() { # tool: hash of its files and its recipe
  local tool=$1
  { declare -f "build_$tool" common_version; find "$here/$tool" -type f ! -name '*-embed.json' | sort | xargs cat; } | sha256sum | cut -c1-16
}

check=false
[[ "${1:-}" == --check ]] && { check=true; shift; }
tools=("$@")
[[ ${#tools[@]} -eq 0 ]] && tools=("${ALL[@]}")

keys=()
for tool in "${tools[@]}"; do
  declare -F "build_$tool" >/dev/null || { echo "gotools/build.sh: no tool '$tool' (tools: ${ALL[*]})" >&2; exit 2; }
  key="$(key_of "$tool")"
  keys+=("$tool-$key")
  dir="$root/$tool-$key"
  [[ -f "$dir/complete" ]] && continue
  $check && exit 3
  # Go's own installer puts it in /usr/local/go without touching PATH.
  command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { echo "gotools/build.sh: go is not installed (Go 1.26 builds every tool here: https://go.dev/doc/install)" >&2; exit 1; }
  # Built beside, then moved into place whole: a concurrent build of the same tool never sees, or spoils, half of one.
  work="$dir.building.$$"
  rm -rf "$work"; mkdir -p "$work/bin"
  start=$(date +%s)
  echo "gotools: building $tool..." >&2
  # Not inside a && or || list: bash ignores `set -e` in a function called there, and a failed step would pass.
  set +e
  (set -e; cd "$here/$tool"; go mod download; out="$work/bin"; "build_$tool") >"$work/build.log" 2>&1
  status=$?
  set -e
  if [[ $status -ne 0 ]]; then
    echo "gotools: $tool failed; its log: $work/build.log" >&2; tail -20 "$work/build.log" >&2; exit 1
  fi
  touch "$work/complete"
  if [[ -f "$dir/complete" ]]; then rm -rf "$work"  # another build finished first: keep what may be in use
  else rm -rf "$dir"; mv -T "$work" "$dir"; fi
  echo "gotools: $tool built in $(( $(date +%s) - start )) s" >&2
done

# The requested set's links, named by its keys: concurrent callers asking for other sets never share one.
bin="$root/set-$(printf '%s\n' "${keys[@]}" | sha256sum | cut -c1-16)/bin"
if [[ ! -d "$bin" ]]; then
  mkdir -p "$bin.tmp.$$"
  for entry in "${keys[@]}"; do
    ln -sf "$root/$entry/bin/"* "$bin.tmp.$$/"
  done
  mv -T "$bin.tmp.$$" "$bin" 2>/dev/null || rm -rf "$bin.tmp.$$"
fi
echo "$bin"
