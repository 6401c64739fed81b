"""Offline render: run the real Pulumi program under Pulumi's test runtime and write its Kubernetes objects.

A review aid and the input of the manifest checks — not a deployment plan. `pulumi preview`
against a cluster is the real plan: it alone sees server-side defaults, admission and drift.

    python -m tools.render --stack prod [--out build/manifests/prod]

Generated passwords are stand-ins made here (the real ones exist only in Pulumi state);
Secret values are redacted in the written files all the same.
"""

from __future__ import annotations

import argparse
import contextvars
import copy
import hashlib
import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T")
PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "real-estate-ai"
REDACTED = "<redacted>"
_SIG_KEY = pulumi.runtime.rpc._special_sig_key
_SECRET_SIG = pulumi.runtime.rpc._special_secret_sig
_FIRST_KEYS = ["apiVersion", "kind", "metadata"]


@dataclass
class Registration:
    """One resource the program registered, with the options the engine would see."""

    type: str
    name: str
    inputs: dict
    protect: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    parent: str
    urn: str = ""
    # The URNs its aliases name, as the engine resolves them.
    aliases: list[str] = field(default_factory=list)
    # customTimeouts as the engine sees them ("" where unset).
    create_timeout: str = ""
    update_timeout: str = ""


@dataclass
class Output:
    value: Any
    is_secret: bool


@dataclass
class RenderedStack:
    stack: str
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, Output] = field(default_factory=dict)
    # Every stand-in value handed out for a generated secret, to prove none leaks.
    secret_values: list[str] = field(default_factory=list)

    @property
    def objects(self) -> list[dict]:
        """Kubernetes objects (unredacted), in registration order; patches of existing objects are `patches`."""
        return [r.inputs for r in self.registrations if _is_object(r) and not r.type.endswith("Patch")]

    @property
    def patches(self) -> list[dict]:
        """Server-side patches of objects that something else created (a StatefulSet's volume claims)."""
        return [r.inputs for r in self.registrations if _is_object(r) and r.type.endswith("Patch")]

    def find(self, kind: str, name: str) -> dict:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered")

    def registration(self, kind: str, name: str) -> Registration:
        for r in self.registrations:
            if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name:
                return r
        raise KeyError(f"{kind}/{name} not registered")


def _is_object(registration: "Registration") -> bool:
    return registration.type.startswith("kubernetes:") and "kind" in registration.inputs


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, rendered: RenderedStack):
        self._rendered = rendered

    def _stand_in(self, name: str, length: int, alphabet: str) -> str:
        digest = hashlib.sha256(f"{self._rendered.stack}/{name}".encode()).digest() * 4
        value = "".join(alphabet[b % len(alphabet)] for b in digest[:length])
        self._rendered.secret_values.append(value)
        return value

    def _pem(self, kind: str, name: str) -> str:
        body = self._stand_in(f"pem/{name}", 48, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = self._stand_in(args.name, int(args.inputs["length"]), "abcdefghkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        elif args.typ == "random:index/randomString:RandomString":
            outputs["result"] = self._stand_in(args.name, int(args.inputs["length"]), "abcdefghijklmnopqrstuvwxyz0123456789")
        elif args.typ == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyPem"] = self._pem("PRIVATE KEY", args.name)
            outputs["publicKeyPem"] = f"-----BEGIN PUBLIC KEY-----\nstand-in for {args.name}\n-----END PUBLIC KEY-----\n"
        elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs["certPem"] = f"-----BEGIN CERTIFICATE-----\nstand-in for {args.name}\n-----END CERTIFICATE-----\n"
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = f"-----BEGIN CERTIFICATE REQUEST-----\nstand-in for {args.name}\n-----END CERTIFICATE REQUEST-----\n"
        elif args.typ == "docker:index/image:Image":
            digest = hashlib.sha256(args.inputs["imageName"].encode()).hexdigest()
            outputs["repoDigest"] = f"{args.inputs['imageName']}@sha256:{digest}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}, None


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """Records the resource options that MockResourceArgs leaves out (protect, retain, ignoreChanges)."""

    def __init__(self, mocks: _Mocks, rendered: RenderedStack):
        super().__init__(mocks)
        self._rendered = rendered
        # The mock's URN → the engine's.
        self._engine_urns: dict[str, str] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        prefix = "::".join(response.urn.split("::")[:2])
        parent = self._engine_urns.get(request.parent, "")
        urn = self._engine_urns[response.urn] = engine_urn(prefix, parent, request.type, request.name)
        if request.type != ROOT_STACK_TYPE:
            state = self.resources[response.urn].state
            self._rendered.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    inputs=_plain(state) if request.custom else {},
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=list(request.ignoreChanges),
                    parent=request.parent,
                    urn=urn,
                    aliases=self._alias_urns(request, prefix, parent),
                    create_timeout=request.customTimeouts.create,
                    update_timeout=request.customTimeouts.update,
                )
            )
        return response

    def _alias_urns(self, request, prefix: str, parent: str) -> list[str]:
        """The URNs a registration's aliases name: as given, or a spec resolved as the engine resolves it."""
        result = list(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                result.append(alias.urn)
                continue
            spec = alias.spec
            alias_parent = "" if spec.noParent else (self._engine_urns.get(spec.parentUrn, "") if spec.parentUrn else parent)
            alias_prefix = f"urn:pulumi:{spec.stack}::{spec.project}" if spec.stack and spec.project else prefix
            result.append(engine_urn(alias_prefix, alias_parent, spec.type or request.type, spec.name or request.name))
        return result


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def engine_urn(urn_prefix: str, parent: str, type_: str, name: str) -> str:
    """A URN as the engine makes it (pulumi sdk/go/common/resource/urn.go NewURN): the parent's whole qualified type,
    then '$' and the type, the root stack's type left out. The mock monitor keeps only the parent's last type."""
    parent_type = parent.split("::")[2] if parent else ""
    qualified = type_ if parent_type in ("", ROOT_STACK_TYPE) else f"{parent_type}${type_}"
    return f"{urn_prefix}::{qualified}::{name}"


class _StrictLoader(yaml.SafeLoader):
    """YAML as Pulumi reads a stack file, except that a key given twice is an error, not the last one winning."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (the later one would silently win)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The `config:` map of Pulumi.<stack>.yaml, as the engine hands it to the program (secure values left out)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise SystemExit(f"no stack file {path.name}; stacks: {', '.join(available_stacks(project_dir))}")
    try:
        document = yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SystemExit(f"{path.name}: not valid YAML{where}: {problem}") from None
    document = {} if document is None else document
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise SystemExit(f"{path.name}: must be a mapping with a 'config:' mapping of keys to values")
    config: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        if not isinstance(key, str):
            raise SystemExit(f"{path.name}: config key {key!r} is not a name")
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Encrypted values need the stack's secrets provider; with_stand_in_secrets fills them in.
            continue
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        config[full_key] = json.dumps(value) if isinstance(value, (dict, list)) else _scalar(value)
    return config


def encode_config(config: dict[str, Any]) -> dict[str, str]:
    """A decoded config as the engine hands it over: objects and lists as JSON, everything else as text."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in config.items()}


def with_value(config: dict[str, Any], path: str, new: Any) -> dict[str, Any]:
    """A copy of a decoded config with `a.b.c` set (or deleted when `new` is DELETE)."""
    result = copy.deepcopy(config)
    top, *rest = path.split(".")
    key = f"{PROJECT}:{top}"
    if not rest:
        if new is DELETE:
            result.pop(key, None)
        else:
            result[key] = new
        return result
    node = result.setdefault(key, {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    if new is DELETE:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = new
    return result


DELETE = object()


def with_stand_in_secrets(stack: str, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Add a marked stand-in for each secret the configuration requires but the render cannot have
    (absent, or encrypted in the stack file). `pulumi up` still requires the real ones."""
    from settings import PlatformConfig, plain_values, required_secret_keys
    from settings.loading import SECRET_SHAPES

    prefix = f"{PROJECT}:"
    # Read as load_settings reads it: the same decoding, the secret keys left out.
    raw = {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}
    try:
        parsed = PlatformConfig.model_validate(plain_values(raw))
    except Exception:
        return config, []  # the program itself reports the invalid config
    config = dict(config)
    secret_keys = []
    for key in required_secret_keys(parsed):
        full_key = prefix + key
        # A value written in plain text stays as it is: the program refuses it, as `pulumi up` would.
        if full_key not in config:
            print(f"render: {full_key} is a secret the render cannot read; using a stand-in", file=sys.stderr)
            # A value of the shape the program expects where it checks one (a webhook URL), a long string elsewhere.
            config[full_key] = SECRET_SHAPES[key][2] if key in SECRET_SHAPES else f"render-stand-in-{key}".ljust(40, "x")
            secret_keys.append(full_key)
    return config, secret_keys


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def render(stack: str, config: Optional[dict[str, Any]] = None, secret_keys: Optional[list[str]] = None) -> RenderedStack:
    """Run __main__.py for `stack` under the Pulumi test runtime; `config` defaults to the stack file."""
    config = load_stack_config(stack) if config is None else config
    config, stand_in_keys = with_stand_in_secrets(stack, config)
    secret_keys = sorted(set(secret_keys or []) | set(stand_in_keys))
    rendered, _ = run_program(stack, lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py")), config, secret_keys)
    return rendered


def run_program(
    stack: str,
    program: Callable[[], T],
    config: Optional[dict[str, Any]] = None,
    secret_keys: Optional[list[str]] = None,
    into: Optional[RenderedStack] = None,
) -> tuple[RenderedStack, T]:
    """Run `program` under the Pulumi test runtime, waiting for every registration and output.

    Returns what the program registered and exported, and the program's own return value
    (a component, for unit tests) whose Outputs are resolved by then. Pass `into` to keep
    what was registered even when the program raises.
    """
    rendered = into if into is not None else RenderedStack(stack=stack)
    # A fresh context per run: the runtime keeps its root stack and config in context variables.
    result = contextvars.Context().run(_run, rendered, program, config or {}, secret_keys or [])
    return rendered, result


def _run(rendered: RenderedStack, program: Callable[[], T], config: dict[str, Any], secret_keys: list[str]) -> T:
    mocks = _Mocks(rendered)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=rendered.stack, preview=False, monitor=_RecordingMonitor(mocks, rendered)
    )
    pulumi.runtime.set_all_config(config, secret_keys)
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    box: list[T] = []
    _sync_await(pulumi_mocks.run_pulumi_func(lambda: box.append(program())))

    root = pulumi.runtime.settings.get_root_resource()
    for name, value in root.outputs.items():
        rendered.outputs[name] = resolve(value)
    return box[0]


def resolve(value: Any) -> Output:
    """The value of an Output (or plain value) and whether it is marked secret."""
    output = pulumi.Output.from_input(value)
    return Output(_sync_await(output.future()), _sync_await(output.is_secret()))


def redact(obj: dict) -> dict:
    """A copy of a Kubernetes object fit to write to disk: Secret values replaced."""
    if obj.get("kind") != "Secret":
        return obj
    copy = json.loads(json.dumps(obj))
    for section in ("data", "stringData"):
        if section in copy:
            copy[section] = {key: REDACTED for key in copy[section]}
    return copy


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_manifests(rendered: RenderedStack, out_dir: Path) -> list[Path]:
    """One YAML file per object, named <kind>-<name>.yaml, replacing what the directory held."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    written = []
    for obj in rendered.objects:
        path = out_dir / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        # libyaml's emitter where PyYAML has it: the CRDs' megabytes took seconds in the pure-Python one.
        path.write_text(yaml.dump(redact(obj), Dumper=_DUMPER, sort_keys=False, allow_unicode=False))
        written.append(path)
    return written


def _plain(value: Any) -> Any:
    """Wire values back to manifest values: secret envelopes unwrapped, integral floats to ints
    (the protobuf wire format carries every number as a double), apiVersion/kind/metadata first, the rest sorted."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _plain(value["value"])
        # Keys arrive from the wire in no stable order; a fixed order keeps re-renders diffable.
        ordered = sorted(value, key=lambda k: (_FIRST_KEYS.index(k) if k in _FIRST_KEYS else len(_FIRST_KEYS), k))
        return {k: _plain(value[k]) for k in ordered}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _close_event_loop() -> None:
    """Close the runtime's loop while the interpreter is whole, instead of in a noisy finalizer at exit."""
    import asyncio

    loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_closed():
        loop.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help=f"one of: {', '.join(available_stacks())}")
    parser.add_argument("--out", type=Path, help="output directory (default build/manifests/<stack>)")
    args = parser.parse_args(argv)
    try:
        rendered = render(args.stack)
    except pulumi.RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        _close_event_loop()
    out_dir = args.out or PROJECT_DIR / "build" / "manifests" / args.stack
    written = write_manifests(rendered, out_dir)
    print(f"{len(written)} objects for stack '{args.stack}' written to {out_dir} (a review aid; `pulumi preview` is the plan)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
