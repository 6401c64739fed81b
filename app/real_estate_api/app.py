"""HTTP routes: probes, metrics, version, and the business endpoints the alert rules watch."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import statistics
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Optional

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from real_estate_api.config import Settings
from real_estate_api.logs import request_id
from real_estate_api.metrics import Metrics
from real_estate_api.stores import Cache, DependencyUnavailable, Postgres, Stores, VectorStore, listing_vector

log = logging.getLogger("real_estate_api")

PLACE = r"^[\w][\w .'-]{0,63}$"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CACHE_TTL_SECONDS = 300
# A wish's budget may be exceeded by this much before a listing is filtered out (hybrid model).
BUDGET_TOLERANCE = 1.1
ACCURATE_WITHIN = 0.10


# One definition per kind of value, shared by every request body.
Place = Annotated[str, Field(pattern=PLACE)]
Area = Annotated[float, Field(gt=0, le=100_000)]
Bedrooms = Annotated[int, Field(ge=0, le=50)]
Money = Annotated[float, Field(gt=0, le=1e11)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListingIn(_Body):
    city: Place
    district: Optional[Place] = None
    area_sqm: Area
    bedrooms: Bedrooms
    price: Money
    latitude: Latitude
    longitude: Longitude


class RecommendationIn(_Body):
    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    city: Optional[Place] = None
    budget: Money
    area_sqm: Area
    bedrooms: Bedrooms
    latitude: Latitude
    longitude: Longitude
    top_k: Optional[int] = Field(None, ge=1, le=100)


class ValuationIn(_Body):
    city: Place
    district: Optional[Place] = None
    area_sqm: Area
    bedrooms: Bedrooms


class FeedbackIn(_Body):
    actual_price: Money


# Readiness fails only without PostgreSQL, the system of record: every write and valuation needs it. Redis is a
# cache and Milvus has a fallback path; their outages are reported (body, dependency_up) but keep pods in service.
READINESS_REQUIRES = frozenset({"postgres"})


def create_app(settings: Settings, stores: Optional[Stores] = None) -> FastAPI:
    metrics = Metrics()
    props = settings.properties
    metrics.build.info({"version": props.app_version, "revision": settings.build_revision})
    timeout = settings.readiness_timeout
    stores = stores or Stores(
        Postgres(settings.database_url, timeout, settings.database_pool_size), Cache(settings.redis_url, timeout), VectorStore(settings.milvus_url, timeout)
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await stores.postgres.open()
        log.info("started", extra={"version": props.app_version, "environment": props.environment})
        yield
        # uvicorn has finished the in-flight requests by now; release connections last.
        for store in stores.all():
            await store.close()
        log.info("stopped")

    app = FastAPI(title="real-estate-ai API", version=props.app_version, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.stores = stores

    app.add_middleware(ObserveRequests, metrics=metrics)

    @app.exception_handler(DependencyUnavailable)
    async def dependency_unavailable(_: Request, error: DependencyUnavailable):
        log.warning("dependency unavailable", extra={"dependency": error.dependency, "reason": error.reason})
        return JSONResponse(
            {"error": "dependency unavailable", "dependency": error.dependency, "request_id": request_id.get()},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError):
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in error.errors()]
        return JSONResponse({"error": "invalid request", "details": details}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception):
        log.error("unhandled error", exc_info=error)
        return JSONResponse({"error": "internal error", "request_id": request_id.get()}, status_code=500)

    def api_key(x_api_key: Annotated[Optional[str], Header()] = None) -> None:
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
            raise _Reject(401, "missing or invalid API key (send it in the X-API-Key header)")

    def feature(name: str):
        def check() -> None:
            if not props.feature_enabled(name):
                raise _Reject(404, f"feature '{name}' is disabled")

        return check

    @app.exception_handler(_Reject)
    async def rejected(_: Request, error: _Reject):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.get("/health")
    async def health():
        # Liveness: the event loop answers. Dependencies are readiness' business, never liveness'.
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        results = await asyncio.gather(*(s.check() for s in stores.all()), return_exceptions=True)
        status, failed = {}, {}
        for store, result in zip(stores.all(), results):
            up = result is None
            metrics.dependency_up.labels(store.name).set(1 if up else 0)
            status[store.name] = "ok" if up else "unavailable"
            if not up:
                failed[store.name] = result.reason if isinstance(result, DependencyUnavailable) else type(result).__name__
        if failed.keys() & READINESS_REQUIRES:
            return JSONResponse({"status": "not ready", "dependencies": status, "failed": failed}, status_code=503)
        if failed:
            # Serving degraded (uncached answers, no vector search) beats taking every pod out for a shared blip.
            return {"status": "degraded", "dependencies": status, "failed": failed}
        return {"status": "ready", "dependencies": status}

    @app.get("/metrics")
    async def metrics_endpoint():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version")
    async def version():
        return {"name": props.app_name, "version": props.app_version, "revision": settings.build_revision}

    @app.post("/v1/listings", status_code=201, dependencies=[Depends(api_key)])
    async def add_listing(listing: ListingIn):
        row = await stores.postgres.add_listing(listing.model_dump())
        vector = listing_vector(listing.price, listing.area_sqm, listing.bedrooms, listing.latitude, listing.longitude)
        fields = {k: getattr(listing, k) for k in ("city", "price", "area_sqm", "bedrooms")}
        fields["district"] = listing.district or ""
        await stores.vectors.add_listing(row["id"], vector, fields)
        return {"id": row["id"]}

    @app.post("/v1/recommendations", dependencies=[Depends(api_key), Depends(feature("recommendation"))])
    async def recommend(wish: RecommendationIn):
        model = props.recommendation_model
        top_k = wish.top_k or props.recommendation_top_k
        metrics.recommendation_requests.labels(model).inc()
        key = "rec:v1:" + hashlib.sha256(json.dumps([model, top_k, wish.model_dump()], sort_keys=True).encode()).hexdigest()
        available, cached = await stores.cache.get(key)
        if cached is not None:
            metrics.recommendation_cache.labels("hit").inc()
            items, cache_state = cached, "hit"
        else:
            cache_state = "miss" if available else "unavailable"
            metrics.recommendation_cache.labels(cache_state).inc()
            vector = listing_vector(wish.budget, wish.area_sqm, wish.bedrooms, wish.latitude, wish.longitude)
            # hybrid: similarity within budget; content: similarity alone; collaborative has no history
            # to learn from in this service, so it ranks by similarity as content does.
            max_price = wish.budget * BUDGET_TOLERANCE if model == "hybrid" else None
            items = await stores.vectors.search(vector, top_k, wish.city, max_price)
            if available:
                await stores.cache.put(key, items, CACHE_TTL_SECONDS)
        if items:
            metrics.recommendation_success.labels(model).inc()
        return {"model": model, "top_k": top_k, "cache": cache_state, "items": items}

    @app.post("/v1/valuations", dependencies=[Depends(api_key), Depends(feature("valuation"))])
    async def valuate(request: ValuationIn):
        model = props.evaluation_model
        metrics.valuation_requests.labels(model).inc()
        comparables = [row["ppsqm"] for row in await stores.postgres.comparables(request.city, request.district)]
        if not comparables:
            raise _Reject(422, f"no comparable listings in {request.city}; add listings first")
        median = statistics.median(comparables)
        spread = statistics.pstdev(comparables) / statistics.mean(comparables) if len(comparables) > 1 else 1.0
        # More comparables and less spread between them: more confidence.
        confidence = round(min(1.0, len(comparables) / 10) * max(0.0, 1.0 - spread), 3)
        estimate = round(median * request.area_sqm, 2)
        row = await stores.postgres.save_valuation({**request.model_dump(), "estimate": estimate, "confidence": confidence, "model": model})
        confident = confidence >= props.evaluation_confidence_threshold
        if confident:
            metrics.valuation_success.labels(model).inc()
        return {
            "valuation_id": str(row["id"]),
            "estimate": estimate,
            "confidence": confidence,
            "low_confidence": not confident,
            "comparables": len(comparables),
            "model": model,
            "method": "comparable-median",
        }

    @app.post("/v1/valuations/{valuation_id}/feedback", dependencies=[Depends(api_key), Depends(feature("valuation"))])
    async def feedback(valuation_id: uuid.UUID, body: FeedbackIn):
        row = await stores.postgres.record_actual_price(str(valuation_id), body.actual_price)
        if row is None:
            raise _Reject(404, f"no valuation {valuation_id}")
        error = abs(row["estimate"] - body.actual_price) / body.actual_price
        metrics.valuation_error_ratio.observe(error)
        metrics.valuation_feedback.labels("accurate" if error <= ACCURATE_WITHIN else "inaccurate").inc()
        return {"valuation_id": str(valuation_id), "absolute_percentage_error": round(error, 4)}

    return app


class ObserveRequests:
    """Request id, metrics and one access log line per request, as plain ASGI middleware
    (Starlette's BaseHTTPMiddleware costs about a third of the service's throughput)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = route.path if route is not None else "unmatched"
            method = scope["method"]
            self.metrics.http_in_flight.dec()
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_duration.labels(method, template).observe(elapsed)
            log.info("request", extra={"method": method, "route": template, "status": status, "duration_ms": round(elapsed * 1000, 2)})
            request_id.reset(token)


class _Reject(Exception):
    """A client error with a clear message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
