#!/usr/bin/env bash
# dev on kind has no registry: build the API image and load it into the kind cluster *before* `pulumi up`, so the
# Deployment Pulumi waits on can start. Pulumi then builds the same Dockerfile under the same tag (a cache hit: the
# same image), which the nodes already have.
#
#   kind-load-api.sh STACK      (exports nothing; prints the tag it loaded)
#
# Needs docker and kind for a kind stack only; reads the stack's kubeconfig context (kind-<cluster>) and api settings,
# and computes the tag with the program's own code (settings.revision, as `pulumi up` does).
set -euo pipefail

stack="${1:?usage: kind-load-api.sh STACK}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
file="$here/Pulumi.$stack.yaml"
[[ -f "$file" ]] || { echo "kind-load-api: no stack file Pulumi.$stack.yaml" >&2; exit 2; }
# The context and the tag the program builds (components.api.image_name with the same cleaned revision), or '-'
# when the stack builds nothing locally (a pinned image, or a registry to push to).
read -r context tag version revision < <(cd "$here" && "${PYTHON:-python3}" - "$file" <<'PY'
import sys, yaml
from components.api import image_name
from settings import ApiSettings
from settings.revision import build_revision
config = (yaml.safe_load(open(sys.argv[1])) or {}).get("config") or {}
context = (config.get("real-estate-ai:kubernetes") or {}).get("context") or "-"
api = config.get("real-estate-ai:api") or {}
local = "version" in api and not api.get("image") and not api.get("registry")
revision = build_revision()
tag = image_name(ApiSettings.model_validate(api), revision) if local else "-"
print(context, tag, api.get("version", "-"), revision)
PY
)
if [[ "$context" != kind-* || "$tag" == - ]]; then
  echo "kind-load-api: stack '$stack' deploys to '$context' or builds nothing locally; nothing to load"
  exit 0
fi
# Only now, for a kind stack, are docker and kind needed.
for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "kind-load-api: $tool is not installed; it is needed to load the API image into kind" >&2; exit 1; }
done
docker build --build-arg "APP_VERSION=$version" --build-arg "BUILD_REVISION=$revision" -t "$tag" "$here/app"
kind load docker-image "$tag" --name "${context#kind-}"
echo "loaded $tag into kind cluster ${context#kind-}"
