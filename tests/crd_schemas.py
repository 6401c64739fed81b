"""Validate custom resources against the vendored upstream CRDs, strictly: a field the schema does not
define is an error here, where the API server would silently prune it (and the setting would be lost)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"


def _python_pattern(pattern: str) -> str:
    """Go's regexp lets a flag group `(?i)` start inside a group, for the rest of that group (AlertmanagerConfig's
    weekday and month patterns); Python's re wants it scoped: `(X(?i)Y)` becomes `(X(?i:Y))`."""
    while (at := pattern.find("(?i)")) > 0:
        depth, end = 0, len(pattern)
        for i in range(at + 4, len(pattern)):
            if pattern[i] == "\\":
                continue
            if pattern[i] == "(":
                depth += 1
            elif pattern[i] == ")":
                if depth == 0:
                    end = i
                    break
                depth -= 1
        pattern = pattern[:at] + "(?i:" + pattern[at + 4:end] + ")" + pattern[end:]
    return pattern


def _strict(schema: dict) -> dict:
    """Forbid properties the schema does not list, unless it keeps unknown fields on purpose."""
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            # A map of field names to schemas, not a schema: each schema once (stricting the map too doubled the
            # work at every level of nesting).
            result[key] = {name: _strict(field) for name, field in value.items()}
        elif isinstance(value, dict):
            result[key] = _strict(value)
        else:
            result[key] = [_strict(item) for item in value] if isinstance(value, list) else value
    if "properties" in result:
        if "additionalProperties" not in result and not result.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    if isinstance(result.get("pattern"), str):
        result["pattern"] = _python_pattern(result["pattern"])
    if result.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return result


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's where PyYAML has it: megabytes of CRDs
    """YAML 1.1 reads a bare `=` as the 'value' tag (AlertmanagerConfig's matchType enum has one): it is the string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@lru_cache(maxsize=None)
def vendored_crds() -> tuple[dict, ...]:
    """Every CustomResourceDefinition under crds/, read once per process (callers must not change them)."""
    return tuple(crd for path in sorted(CRD_DIR.glob("*.yaml")) for crd in yaml.load_all(path.read_text(), _Loader)
                 if crd and crd.get("kind") == "CustomResourceDefinition")


@lru_cache(maxsize=None)
def _schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → its vendored openAPIV3Schema."""
    return {(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"]): version["schema"]["openAPIV3Schema"]
            for crd in vendored_crds() for version in crd["spec"]["versions"]}


@lru_cache(maxsize=None)
def _validator(api_version: str, kind: str) -> Optional[jsonschema.protocols.Validator]:
    """The strict validator of one kind, built when first asked for (all of them took seconds)."""
    schema = _schemas().get((api_version, kind))
    if schema is None:
        return None
    schema = _strict(schema)
    # metadata is the API server's, validated by kubernetes-validate's ObjectMeta rules elsewhere.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def known(obj: dict) -> bool:
    return (obj.get("apiVersion"), obj.get("kind")) in _schemas()


def errors(obj: dict) -> list[str]:
    """Every schema violation of `obj`, as 'path: message'; an unknown kind is one error."""
    validator = _validator(obj.get("apiVersion"), obj.get("kind"))
    if validator is None:
        return [f"no vendored CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}" for error in validator.iter_errors(obj)
    )
