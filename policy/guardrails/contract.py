"""What the policy pack and the stack config's validation (settings/) must agree on, defined once, here: the pack is
published on its own (`pulumi policy publish policy`), so it imports nothing from the program, and the program's
settings import these instead."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

# prod's API floor: one pod per zone of three, and never fewer than two through autoscaling.
PROD_API_REPLICAS = 3
PROD_AUTOSCALING_MIN = 2

# [registry[:port]/]path[:tag][@sha256:digest]; a port only where a path follows, so 'postgres:17' is a tag.
IMAGE_RE = re.compile(
    r"(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5}(?=/))?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)


def image_parts(value: str) -> Optional[re.Match]:
    """The reference's repository, tag and digest groups, or None where `value` is not an image reference.

    A first component that holds '.' or ':', or is 'localhost', is the registry's host (the runtime's reading): a DNS
    name, so no '_' ('my_registry.example.com/app' would be read as a path on Docker Hub), and a port that exists."""
    match = IMAGE_RE.fullmatch(value)
    if match is None:
        return None
    first, slash, _ = match.group("repository").partition("/")
    if slash and is_registry_host(first):
        host, _, port = first.partition(":")
        if "_" in host or (port and not port_in_range(port)) or numeric_but_no_address(host):
            return None
    return match


def is_registry_host(first: str) -> bool:
    """Whether a reference's first component names the registry (host[:port]) rather than a path on Docker Hub: the
    runtime's reading."""
    return first == "localhost" or "." in first or ":" in first


def port_in_range(port: str) -> bool:
    """A TCP port a dialer can use: 1 to 65535 (0 asks the kernel for any port; 65536 and above do not exist)."""
    return port.isdigit() and 1 <= int(port) <= 65535


def numeric_but_no_address(host: str) -> bool:
    """A last label of digits makes no DNS name (RFC 3696): the host must then be an IPv4 address as written. Go's
    parser refuses '010.0.0.1' (leading zeros), a resolver would then look it up as a name, and glibc's would read it
    as octal (8.0.0.1)."""
    if not host.rpartition(".")[2].isdigit():
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False
