"""Prometheus metrics. The names are a contract: alert rules and canary analysis query exactly these
(see app/METRICS.md, which a test keeps in step with this file)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Latency buckets around the API's targets: most requests well under 100 ms, a tail to a few seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per app instance, so tests and workers never share counters by accident."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests by method, route template and status code.",
            ["method", "route", "status"], registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "HTTP request latency by method and route template.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.http_in_flight = Gauge("http_requests_in_flight", "HTTP requests being served.", registry=r)
        # variant: the A/B variant ("a" or "b"); cohort: in or out of the grey release ("in", "out"): so the success
        # rate of each can be compared.
        self.recommendation_requests = Counter(
            "recommendation_requests_total", "Recommendation requests that passed validation.", ["model", "variant", "cohort"], registry=r,
        )
        self.recommendation_success = Counter(
            "recommendation_success_total", "Recommendation requests answered with at least one listing.", ["model", "variant", "cohort"],
            registry=r,
        )
        self.recommendation_source = Counter(
            "recommendation_source_total", "Recommendations computed, by source: vector (Milvus) or rules (the fallback).",
            ["source"], registry=r,
        )
        self.cache_rebuilt = Counter(
            "recommendation_cache_rebuilt_total", "Recommendations recomputed into Redis after it came back empty.", registry=r,
        )
        self.recommendation_cache = Counter(
            "recommendation_cache_total", "Recommendation cache lookups by result: hit, miss, unavailable.", ["result"], registry=r,
        )
        self.valuation_requests = Counter(
            "valuation_requests_total", "Valuation requests that passed validation.", ["model"], registry=r,
        )
        self.valuation_success = Counter(
            "valuation_success_total", "Valuations produced with confidence at or above the configured threshold.", ["model"], registry=r,
        )
        self.valuation_feedback = Counter(
            "valuation_feedback_total",
            "Actual prices reported for earlier valuations, by outcome: accurate (within 10 %) or inaccurate.",
            ["outcome"], registry=r,
        )
        self.valuation_error_ratio = Histogram(
            "valuation_absolute_percentage_error", "Absolute error of a valuation against the reported actual price, as a ratio.",
            buckets=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0), registry=r,
        )
        self.dependency_up = Gauge(
            "dependency_up", "1 when the dependency answered the last readiness check in time, else 0.", ["dependency"], registry=r,
        )
        self.dependency_duration = Histogram(
            "dependency_request_duration_seconds", "Time of each call to a dependency from a request (probes excluded).",
            ["dependency"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.circuit_state = Gauge(
            "dependency_circuit_state", "Circuit breaker per dependency: 0 closed, 1 half-open (one trial call), 2 open (failing fast).",
            ["dependency"], registry=r,
        )
        self.listing_writes = Counter(
            "listing_writes_total", "Listings saved, by result: indexed (searchable at once) or deferred (the reconciler indexes it).",
            ["result"], registry=r,
        )
        self.listing_index_backlog = Gauge(
            "listing_index_backlog", "Listings saved in PostgreSQL and not yet in Milvus (at the last reconcile).", registry=r,
        )
        self.listing_index_repairs = Counter(
            "listing_index_repairs_total",
            "Listings PostgreSQL had marked indexed that Milvus no longer held, found by the audit and queued to be indexed again.",
            registry=r,
        )
        self.listing_index_audit = Gauge(
            "listing_index_audit_timestamp_seconds", "When this pod last finished comparing PostgreSQL's indexed listings with Milvus.",
            registry=r,
        )
        self.active_users = Gauge(
            "active_users", "Distinct users of the business endpoints over the window (1d, 7d: rolling), counted in Redis.",
            ["window"], registry=r,
        )
        self.build = Info("app_build", "Version and build revision of the running service.", registry=r)
