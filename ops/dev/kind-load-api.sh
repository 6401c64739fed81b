#!/usr/bin/env bash
# dev on kind has no registry: build the API image and load it into the kind cluster *before* `pulumi up`, so the
# Deployment Pulumi waits on can start. Pulumi then builds the same Dockerfile under the same tag (a cache hit: the
# same image), which the nodes already have.
#
#   kind-load-api.sh STACK      (exports nothing; prints the tag it loaded)
#
# Needs docker and kind; reads the stack's kubeconfig context (kind-<cluster>) and api.version. BUILD_REVISION must be
# set as for `pulumi up` (the Makefile sets both from the same commit).
set -euo pipefail

stack="${1:?usage: kind-load-api.sh STACK}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
file="$here/Pulumi.$stack.yaml"
[[ -f "$file" ]] || { echo "kind-load-api: no stack file Pulumi.$stack.yaml" >&2; exit 2; }
for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "kind-load-api: $tool is not installed; it is needed to load the API image into kind" >&2; exit 1; }
done
read -r context version < <("${PYTHON:-python3}" - "$file" <<'PY'
import sys, yaml
config = (yaml.safe_load(open(sys.argv[1])) or {}).get("config") or {}
kubernetes = config.get("real-estate-ai:kubernetes") or {}
api = config.get("real-estate-ai:api") or {}
print(kubernetes.get("context") or "-", api.get("version") or "-")
PY
)
if [[ "$context" != kind-* ]]; then
  echo "kind-load-api: stack '$stack' deploys to '$context', not a kind cluster; nothing to load"
  exit 0
fi
[[ "$version" != - ]] || { echo "kind-load-api: Pulumi.$stack.yaml has no api.version" >&2; exit 2; }
revision="${BUILD_REVISION:?BUILD_REVISION must be set, as for pulumi up}"
tag="real-estate-api:${version}-${revision}"
docker build --build-arg "APP_VERSION=$version" --build-arg "BUILD_REVISION=$revision" -t "$tag" "$here/app"
kind load docker-image "$tag" --name "${context#kind-}"
echo "loaded $tag into kind cluster ${context#kind-}"
