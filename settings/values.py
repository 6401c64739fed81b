"""Value types of the stack config: each one validated completely, so no value can carry a second line,
a unit Kubernetes does not know, or a number a field cannot hold.

Every pattern is matched against the whole value (`fullmatch`): `$` alone would let a trailing newline through.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from policy.guardrails.contract import image_parts, is_registry_host, numeric_but_no_address, port_in_range
from settings import cron

_CPU_RE = re.compile(r"[0-9]{1,6}m|[0-9]{1,4}(?:\.[0-9]{1,3})?")
# A whole or decimal number and a unit: Kubernetes reads '1.5Gi' too (a fraction of a byte rounds up).
_BYTES_RE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")
_BYTE_UNITS = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}
DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+")
# A DNS host (no '_') with an optional port, then path components (which may hold '_').
_REGISTRY_RE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
_SQL_IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def label_within(name: str, limit: int = 63) -> str:
    """A name derived from others, kept a valid DNS label of at most `limit` characters: as it is where it fits, or
    cut there where the cut is one (the names stacks already have); else cut with no '-' at the cut and a digest
    of the whole name."""
    if len(name) <= limit or DNS_LABEL_RE.fullmatch(name[:limit]):
        return name[:limit]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-')}-{digest}"


def cpu_millicores(quantity: str) -> int:
    """'500m' -> 500, '2' -> 2000, '0.5' -> 500."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    whole, _, fraction = quantity.partition(".")
    return int(whole) * 1000 + int((fraction + "000")[:3])


def byte_count(quantity: str) -> int:
    """'1Gi' -> 1073741824, '1.5Gi' -> 1610612736; only the binary and decimal suffixes Kubernetes accepts."""
    match = _BYTES_RE.fullmatch(quantity)
    if match is None:
        raise ValueError(quantity)
    return math.ceil(Decimal(match.group(1)) * _BYTE_UNITS[match.group(2)])


def _number_as_text(value: Any) -> Any:
    """YAML's `cpu: 1` or `cpu: 0.5` is a number; Kubernetes takes it, so do we."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) < 1e6:
        return format(value, "f").rstrip("0").rstrip(".")
    return value


def _check_cpu(value: str) -> str:
    if not _CPU_RE.fullmatch(value) or cpu_millicores(value) <= 0:
        raise ValueError(f"'{value}' is not a CPU quantity; use millicores like '500m' or cores like '2' or '0.5'")
    return value


def _check_bytes(value: str) -> str:
    match = _BYTES_RE.fullmatch(value)
    if not match or byte_count(value) <= 0:
        raise ValueError(
            f"{value!r} is not a byte quantity; use a number with Ki, Mi, Gi, Ti (or k, M, G, T), like '512Mi' or '1.5Gi'"
        )
    if Decimal(match[1]) * _BYTE_UNITS[match[2]] % 1:
        # Kubernetes rounds a fraction of a byte up and warns that it is invalid.
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return value


def _check_memory_unit(value: str) -> str:
    # Kubernetes reads a memory quantity without a unit as bytes: a limit of 512 bytes stops every container at start.
    if _BYTES_RE.fullmatch(value)[2] is None:
        count = byte_count(value)
        same = next((f"{count // factor}{unit}" for unit, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
                     if count % factor == 0), None)
        raise ValueError(f"{value!r} has no unit, so it means {count} bytes; write the unit"
                         + (f" (the same: '{same}')" if same else ", like '512Mi' for 512 mebibytes"))
    return value


def _check_image(value: str) -> str:
    match = image_parts(value)
    if match is None:
        raise ValueError(f"'{value}' is not an image reference like 'registry/name:1.2.3'")
    if match.group("tag") is None and match.group("digest") is None:
        raise ValueError(f"'{value}' has no tag; pin a version like 'name:1.2.3' or a digest '@sha256:…'")
    if match.group("tag") == "latest":
        raise ValueError(f"'{value}' uses ':latest'; pin a version so every rollout is reproducible")
    return value


_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)


def _check_semver(value: str) -> str:
    # No build metadata ('+…'): the version becomes an image tag and a label value, where '+' is not allowed.
    if not _SEMVER_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a semantic version like '1.4.2' (build metadata '+…' is not allowed)")
    if len(value) > 63:
        raise ValueError(f"'{value}' is longer than 63 characters, the most a label value can hold")
    return value


def matching(pattern: re.Pattern, what: str) -> AfterValidator:
    """A validator: the whole value matches `pattern`, else "'<value>' is not <what>" (escaped: one line)."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _check_cron(value: str) -> str:
    try:
        cron.parse(value)
    except cron.CronError as error:
        raise ValueError(f"'{value}' is not a cron schedule Kubernetes accepts: {error}") from None
    if not cron.ever_runs(value):
        raise ValueError(f"'{value}' names a day that never comes, so it would never run")
    return value


def _check_text(value: str) -> str:
    """Free text that ends up in generated files: one printable line, nothing that could start another, and not
    blank (an empty application name stops the API at start; an empty context or user name is no value at all)."""
    if not value.isprintable() or len(value) > 128:
        raise ValueError("must be one line of at most 128 printable characters")
    if not value.strip():
        raise ValueError("must not be empty or blank; leave the key out to mean none")
    if value != value.strip():
        # The readers trim it (the API's app.properties loader does): the value used would not be the one written.
        raise ValueError(f"{value!r} begins or ends with a space; the files it is written to drop it")
    return value


def _kubernetes_refuses(address) -> bool:
    """What Go's parser (and Kubernetes' validation) refuses but Python's takes: an IPv6 zone ('%eth0') or an
    IPv4-mapped IPv6 address ('::ffff:10.0.0.1')."""
    return isinstance(address, ipaddress.IPv6Address) and (address.scope_id is not None or address.ipv4_mapped is not None)


def _check_cidr(value: str) -> str:
    """A network in the canonical CIDR form Kubernetes requires (its ipBlock and loadBalancerSourceRanges parse a
    prefix): a bare address is that one host, '10.0.0.1' → '10.0.0.1/32', 'fd00::1' → 'fd00::1/128'."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        network = None
    if network is None or _kubernetes_refuses(network.network_address):
        raise ValueError(f"{value!r} is not a network like '10.0.0.1/32' (host bits must be zero)")
    return str(network)




def _check_ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or _kubernetes_refuses(address):
        raise ValueError(f"{value!r} is not an IP address like '169.254.20.10'")
    return value


def numeric_host_problem(host: str) -> Optional[str]:
    """Why `host` is neither a host name nor an IPv4 address as written (contract.numeric_but_no_address), or None."""
    if numeric_but_no_address(host):
        return f"{host!r} is neither an IPv4 address (no leading zeros) nor a host name (its last label is all digits)"
    return None


def port_problem(port: str) -> Optional[str]:
    if not port_in_range(port):
        return f"port {port!r} is not between 1 and 65535"
    return None


def check_url_authority(value: str) -> str:
    """The host and port of an http(s) URL that already matched its pattern, as a client dials them."""
    authority = re.split(r"[/?#]", value.split("://", 1)[1], maxsplit=1)[0]
    host, colon, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    problem = numeric_host_problem(host) or (port_problem(port) if colon else None)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return value


def _check_numeric_host(value: str) -> str:
    problem = numeric_host_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_endpoint(value: str) -> str:
    """A host to connect to: an IP address as Kubernetes reads one, or a fully qualified name."""
    try:
        return _check_ip(value)
    except ValueError:
        pass
    if not isinstance(value, str) or not _HOSTNAME_RE.fullmatch(value) or numeric_host_problem(value):
        raise ValueError(f"{value!r} is neither an IP address nor a fully qualified host name like 'db.example.com'")
    return value


Cpu = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_check_cpu)]
Bytes = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_check_bytes)]
# Memory: a byte quantity with its unit.
Memory = Annotated[Bytes, AfterValidator(_check_memory_unit)]
Image = Annotated[str, AfterValidator(_check_image)]
SemVer = Annotated[str, AfterValidator(_check_semver)]
DnsLabel = Annotated[str, matching(DNS_LABEL_RE, "a DNS-1123 label (lower-case letters, digits and '-', at most 63)")]
Hostname = Annotated[str, matching(_HOSTNAME_RE, "a fully qualified host name like 'api.example.com'"), AfterValidator(_check_numeric_host)]
SqlIdentifier = Annotated[str, matching(_SQL_IDENTIFIER_RE, "a plain SQL identifier (lower-case letters, digits and '_', at most 63)")]


def _check_registry_host(value: str) -> str:
    """The first component is the registry's host where the runtime reads it so (image_parts): dialable."""
    first = value.split("/", 1)[0]
    host, colon, port = first.partition(":")
    problem = None
    if is_registry_host(first):
        problem = numeric_host_problem(host) or (port_problem(port) if colon else None)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return value


Registry = Annotated[str, matching(_REGISTRY_RE, "a registry path like 'registry.example.com/team'"), AfterValidator(_check_registry_host)]
Cron = Annotated[str, AfterValidator(_check_cron)]
Text = Annotated[str, AfterValidator(_check_text)]
Percent = Annotated[int, Field(ge=0, le=100)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
IpAddress = Annotated[str, AfterValidator(_check_ip)]
Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
Environment = Literal["dev", "test", "prod"]


class Settings(BaseModel):
    """Base: camelCase keys as Pulumi config writes them, unknown keys rejected, immutable, defaults validated."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=False, validate_default=True
    )


class ComputeResources(Settings):
    cpu: Cpu
    memory: Memory


class Resources(Settings):
    requests: ComputeResources
    limits: ComputeResources

    @model_validator(mode="after")
    def _requests_within_limits(self) -> "Resources":
        if cpu_millicores(self.requests.cpu) > cpu_millicores(self.limits.cpu):
            raise ValueError(f"requests.cpu {self.requests.cpu} exceeds limits.cpu {self.limits.cpu}")
        if byte_count(self.requests.memory) > byte_count(self.limits.memory):
            raise ValueError(f"requests.memory {self.requests.memory} exceeds limits.memory {self.limits.memory}")
        return self

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.requests.cpu, "memory": self.requests.memory},
            "limits": {"cpu": self.limits.cpu, "memory": self.limits.memory},
        }


def make_resources(req_cpu: str, req_mem: str, lim_cpu: str, lim_mem: str) -> Resources:
    return Resources(
        requests=ComputeResources(cpu=req_cpu, memory=req_mem),
        limits=ComputeResources(cpu=lim_cpu, memory=lim_mem),
    )


class Storage(Settings):
    size: Bytes
    # None uses the cluster's default StorageClass.
    storage_class: Optional[DnsLabel] = None
