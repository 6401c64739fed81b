"""The checks after a deploy, a promotion or a rollback, through the public route as users reach it: /ready answers
200 and /version reports the expected version; after a rollback, also the user-facing error rate from Prometheus.

On kind (dev) the Gateway has no external address: the check goes through a port-forward to its Envoy Service (Envoy
Gateway labels it with the Gateway's name and namespace). Elsewhere it calls the stack's ingressUrl output.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator, Optional

from components.platform import canary_prometheus_url
from ops.release.shell import Failed, run
from ops.release.stack import Stack, output

# The route settles within a minute of a rollout (endpoints, Envoy's config); tests shorten these.
ROUTE_ATTEMPTS, ROUTE_PAUSE_SECONDS = 30, 2.0
ERROR_RATE_PAUSE_SECONDS = 15.0
ERROR_RATIO = 'namespace:api_user_request_errors:ratio_rate5m{{namespace="{namespace}"}}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def port_forward(stack: Stack, namespace: str, service: str, port: int) -> Iterator[str]:
    """http://127.0.0.1:<local> forwarded to `service`:`port`, for the duration of the block."""
    local = _free_port()
    process = subprocess.Popen(stack.kubectl("port-forward", "--namespace", namespace, f"service/{service}", f"{local}:{port}"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise Failed(f"kubectl port-forward to {namespace}/{service} ended: {(process.stderr.read() or '').strip()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                break
            time.sleep(0.1)  # a local port: looking often costs nothing
        else:
            raise Failed(f"kubectl port-forward to {namespace}/{service} did not open within 20 s")
        yield f"http://127.0.0.1:{local}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def route(stack: Stack) -> Iterator[tuple[str, str]]:
    """(base URL, Host header) of the stack's public route."""
    ingress = stack.config.ingress
    if stack.context and stack.context.startswith("kind-") and ingress.via == "gateway":
        namespace = ingress.proxy_namespace
        gateway_namespace = ingress.gateway.namespace or stack.namespace
        selector = (f"gateway.envoyproxy.io/owning-gateway-namespace={gateway_namespace},"
                    f"gateway.envoyproxy.io/owning-gateway-name={ingress.gateway.name}")
        service = run(stack.kubectl("get", "service", "--namespace", namespace, "--selector", selector,
                                    "--output", "jsonpath={.items[0].metadata.name}"),
                      "find the Gateway's Envoy Service", capture=True).strip()
        if not service:
            raise Failed(f"no Envoy Service for Gateway {gateway_namespace}/{ingress.gateway.name} in {namespace}")
        with port_forward(stack, namespace, service, 80) as base:
            yield base, ingress.host
    else:
        url = output(stack, "ingressUrl")
        yield url, urllib.parse.urlparse(url).hostname or ingress.host


def _get(base: str, host: str, path: str) -> tuple[int, str]:
    request = urllib.request.Request(f"{base}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (http(s) URLs of our own route)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        raise Failed(f"{base}{path} (Host {host}) did not answer: {error}") from None


def check_route(stack: Stack, version: str) -> None:
    """/ready 200 and /version reporting `version`, retried while the route settles."""
    problem = ""
    with route(stack) as (base, host):
        for _ in range(ROUTE_ATTEMPTS):
            ready, _ = _get(base, host, "/ready")
            status, body = _get(base, host, "/version")
            try:
                reported = json.loads(body).get("version") if status == 200 else None
            except ValueError:
                reported = None
            if ready == 200 and reported == version:
                return
            problem = f"/ready answered {ready}, /version reported {reported!r} (expected {version!r})"
            time.sleep(ROUTE_PAUSE_SECONDS)
    raise Failed(f"stack '{stack.name}' through {host}: {problem}")


@contextlib.contextmanager
def prometheus(stack: Stack) -> Iterator[str]:
    """The stack's Prometheus: through a port-forward where it is a Service in the cluster, else at its URL."""
    url = canary_prometheus_url(stack.config)
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or ""
    if host.endswith((".svc", ".svc.cluster.local")):
        service, namespace = host.split(".")[:2]
        with port_forward(stack, namespace, service, parsed.port or 9090) as base:
            yield base
    else:
        yield url.rstrip("/")


def error_ratio(stack: Stack) -> Optional[float]:
    """The user-facing error ratio over 5 minutes (monitoring/rules/api.rules.yml), or None without traffic."""
    query = urllib.parse.urlencode({"query": ERROR_RATIO.format(namespace=stack.namespace)})
    with prometheus(stack) as base:
        status, body = _get(base, urllib.parse.urlparse(base).hostname or "", f"/api/v1/query?{query}")
    if status != 200:
        raise Failed(f"Prometheus ({canary_prometheus_url(stack.config)}) answered {status} to the error-rate query")
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def check_error_rate(stack: Stack, limit_percent: float, wait_seconds: float) -> Optional[float]:
    """Wait (up to `wait_seconds`) for the 5-minute error ratio to come down to `limit_percent`; None: no traffic."""
    deadline = time.monotonic() + wait_seconds
    while True:
        ratio = error_ratio(stack)
        if ratio is None or ratio * 100 <= limit_percent:
            return ratio
        if time.monotonic() >= deadline:
            raise Failed(f"stack '{stack.name}': {ratio * 100:.2f} % of user requests still fail, above {limit_percent} %")
        time.sleep(ERROR_RATE_PAUSE_SECONDS)
