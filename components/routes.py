"""The API's public paths, one list for every way traffic enters (Ingress, HTTPRoute, Flagger's HTTPRoute).

Only what users and release checks call: the business API, the version and readiness. /metrics (scraped inside the
cluster), /docs, /openapi.json and /health stay off the public route.
"""

from __future__ import annotations

# (path, exact?) — "/v1" as a prefix matches /v1 and /v1/…, never /v1x (Ingress Prefix and PathPrefix are per segment).
PUBLIC_PATHS = (("/v1", False), ("/version", True), ("/ready", True))


def ingress_paths() -> list[tuple[str, str]]:
    return [(path, "Exact" if exact else "Prefix") for path, exact in PUBLIC_PATHS]


def http_route_matches(headers: list[dict] | None = None) -> list[dict]:
    """Gateway API HTTPRouteMatches for the public paths, each also requiring `headers` when given."""
    return [
        {"path": {"type": "Exact" if exact else "PathPrefix", "value": path}, **({"headers": headers} if headers else {})}
        for path, exact in PUBLIC_PATHS
    ]


def flagger_matches() -> list[dict]:
    """Canary.spec.service.match: Flagger turns each into an HTTPRoute match (uri.exact → Exact, uri.prefix → PathPrefix)."""
    return [{"uri": {"exact" if exact else "prefix": path}} for path, exact in PUBLIC_PATHS]
