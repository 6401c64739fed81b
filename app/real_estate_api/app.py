"""HTTP routes: probes, metrics, version, and the business endpoints the alert rules watch."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Optional

from fastapi import FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.routing import Match

from real_estate_api import bounds
from real_estate_api.activity import ActiveUsers
from real_estate_api.assignment import Assignment, assign, user_id
from real_estate_api.breaker import STATE_VALUES, CircuitBreaker
from real_estate_api.config import Settings
from real_estate_api.health import HealthMonitor
from real_estate_api.listings import ListingIndex
from real_estate_api.logs import request_id
from real_estate_api.metrics import Metrics
from real_estate_api.recommendations import Recommender
from real_estate_api.stores import Cache, DependencyUnavailable, Postgres, Refused, Stores, VectorStore
from real_estate_api.text import PLACE_MAX, check_place
from real_estate_api.valuation import StatsCache, confidence

log = logging.getLogger("real_estate_api")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The `method` label's values: anything else is counted as "other", so a client cannot grow the series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# nginx's status for a client that went away before the answer: recorded, never sent.
CLIENT_CLOSED = 499
# Answered without running the route (GuardRequests), or the client gone: counted under the route, yet no user's
# experience of the service (the alert rules' user-facing selectors leave them out: components/slo_rules.py).
REFUSED_BEFORE_RUNNING = frozenset({401, 408, 413, CLIENT_CLOSED})
IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,128}$"
# A valuation within 10 % of the reported actual price counts as accurate (the spec's accuracy metric).
ACCURATE_WITHIN = 0.10
# Paths behind the API key; the key is checked before a byte of the body is read.
PROTECTED_PREFIX = "/v1/"

# One definition per kind of value, bounded to physical sense (a 1e-300 m² flat is a typo, not a listing).
Place = Annotated[str, Field(min_length=1, max_length=PLACE_MAX, description="A place name: letters, marks and digits of "
                                "any script, spaces, dots, apostrophes, hyphens, underscores and the zero-width joiners"),
                  AfterValidator(check_place)]
Area = Annotated[float, Field(ge=bounds.LISTING["area_sqm"][0], le=bounds.LISTING["area_sqm"][1])]
Bedrooms = Annotated[int, Field(ge=bounds.LISTING["bedrooms"][0], le=bounds.LISTING["bedrooms"][1])]
Money = Annotated[float, Field(ge=bounds.LISTING["price"][0], le=bounds.LISTING["price"][1])]
Latitude = Annotated[float, Field(ge=bounds.LISTING["latitude"][0], le=bounds.LISTING["latitude"][1])]
Longitude = Annotated[float, Field(ge=bounds.LISTING["longitude"][0], le=bounds.LISTING["longitude"][1])]


class ErrorBody(BaseModel):
    error: str
    request_id: str
    # 422: each invalid field and why.
    details: Optional[list[dict[str, str]]] = None


def _responses(*statuses: int) -> dict:
    """The answers a business route can give besides its success, as the OpenAPI document declares them."""
    return {status: {"model": ErrorBody, "description": ERROR_STATUSES[status]} for status in sorted(statuses)}


# Every /v1/ route: refused before it runs (GuardRequests), invalid, or a dependency down.
ERROR_STATUSES = {
    401: "missing or invalid API key (X-API-Key)",
    404: "the feature is switched off for this user, or the valuation does not exist",
    408: "the body stopped arriving",
    409: "a conflicting repeat (another listing under this Idempotency-Key; feedback already given)",
    413: "the body is larger than MAX_BODY_BYTES",
    422: "invalid input, naming the field (or no comparable listings to value from)",
    503: "a dependency is unavailable (Retry-After), or the pod serves its most requests at once",
}
COMMON = (401, 408, 413, 422, 503)


class _Body(BaseModel):
    # NaN and infinities are valid JSON to Python's parser, never a valid price or area.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


def create_app(settings: Settings, stores: Optional[Stores] = None) -> FastAPI:
    metrics = Metrics()
    props = settings.properties
    metrics.build.info({"version": props.app_version, "revision": settings.build_revision})

    def circuit_changed(dependency: str, state: str) -> None:
        metrics.circuit_state.labels(dependency).set(STATE_VALUES[state])
        log.warning("circuit breaker changed", extra={"dependency": dependency, "state": state})

    def breaker(name: str) -> CircuitBreaker:
        metrics.circuit_state.labels(name).set(0)
        return CircuitBreaker(name, settings.breaker_reset, circuit_changed)

    timeout = settings.readiness_timeout
    stores = stores or Stores(
        Postgres(settings.database_url, timeout, settings.database_pool_size, settings.statement_timeout, breaker("postgres")),
        Cache(settings.redis_url, timeout, breaker("redis")),
        VectorStore(settings.milvus_url, settings.vector_timeout, timeout, breaker("milvus")),
    )
    for store in stores.all():
        store.observe = metrics.dependency_duration.labels(store.name).observe
    recommender = Recommender(stores, metrics)
    listings = ListingIndex(stores, metrics, settings.reconcile_interval, settings.audit_interval)
    health = HealthMonitor(stores, metrics, settings.probe_interval, timeout, recommender.rebuild)
    activity = ActiveUsers(stores.cache, metrics.active_users, settings.activity_interval)
    stats = StatsCache()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await stores.postgres.open()
        await health.start()
        listings.start()
        activity.start()
        log.info("started", extra={"version": props.app_version, "environment": props.environment})
        yield
        # uvicorn has finished the in-flight requests by now; release connections last.
        await listings.stop()
        await activity.stop()
        await health.stop()
        for store in stores.all():
            await store.close()
        log.info("stopped")

    app = FastAPI(title="real-estate-ai API", version=props.app_version, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.stores = stores
    app.state.health = health
    app.state.listings = listings
    app.state.activity = activity
    app.state.recommender = recommender

    # Outermost first: the request id and metrics see every answer, the guard's 401/413 included.
    app.add_middleware(GuardRequests, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes,
                       max_in_flight=settings.max_in_flight, body_timeout=settings.body_timeout)
    app.add_middleware(ObserveRequests, metrics=metrics, routes=app.router.routes)

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
        return JSONResponse({"error": "invalid request", "details": details, "request_id": request_id.get()}, status_code=422)

    @app.exception_handler(Refused)
    async def refused(_: Request, error: Refused):
        return JSONResponse({"error": error.message, "request_id": request_id.get()}, status_code=error.status, headers=error.headers)

    tester_key = settings.tester_key.encode()

    def assignment_for(request: Request, response: Response, body_user: Optional[str] = None) -> Assignment:
        user = user_id(request.headers, request.cookies, body_user)
        if not synthetic(request):
            activity.seen(user)
        offered = request.headers.get("x-tester-key", "").encode()
        tester = bool(tester_key) and hmac.compare_digest(offered, tester_key)
        assignment = assign(props, user, request.headers, tester)
        response.headers.update(assignment.headers())
        return assignment

    def require(assignment: Assignment, name: str) -> None:
        if not assignment.feature_on(props, name):
            raise Refused(404, f"feature '{name}' is disabled", assignment.headers())

    @app.get("/health")
    async def health_endpoint():
        # Liveness: the event loop answers. Dependencies are readiness' business, never liveness'.
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        status, body = health.readiness()
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def metrics_endpoint():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version")
    async def version():
        return {"name": props.app_name, "version": props.app_version, "revision": settings.build_revision}

    @app.post("/v1/listings", status_code=201, responses={
        200: {"description": "the same listing again under its Idempotency-Key"},
        202: {"description": "saved; searchable once the vector store takes it (the reconciler retries)"},
        **_responses(*COMMON, 409)})
    async def add_listing(
        listing: ListingIn,
        idempotency_key: Annotated[Optional[str], Header(pattern=IDEMPOTENCY_KEY)] = None,
    ):
        status, body = await listings.add(listing.model_dump(), idempotency_key)
        return JSONResponse(body, status_code=status)

    @app.post("/v1/recommendations", responses=_responses(*COMMON, 404))
    async def recommend(wish: RecommendationIn, request: Request, response: Response):
        assignment = assignment_for(request, response, wish.user_id)
        require(assignment, "recommendation")
        model = assignment.recommendation_model
        top_k = wish.top_k or props.recommendation_top_k
        # Counted before it runs: a request that fails is a request without success.
        counted = not synthetic(request)
        if counted:
            metrics.recommendation_requests.labels(model, assignment.variant, assignment.cohort).inc()
        answer = await recommender.recommend(wish, model, top_k)
        if counted and answer["items"]:
            metrics.recommendation_success.labels(model, assignment.variant, assignment.cohort).inc()
        return {"model": model, "variant": assignment.variant, "top_k": top_k, **answer}

    @app.post("/v1/valuations", responses=_responses(*COMMON, 404))
    async def valuate(body: ValuationIn, request: Request, response: Response):
        require(assignment_for(request, response), "valuation")
        model = props.evaluation_model
        metrics.valuation_requests.labels(model).inc()
        comparables = await stats.get((body.city, body.district), lambda: stores.postgres.price_per_sqm_quartiles(body.city, body.district))
        if not comparables:
            raise Refused(422, f"no comparable listings in {body.city}; add listings first")
        q1, median, q3 = comparables["quartiles"]
        score = confidence(comparables["n"], q1, q3)
        estimate = round(median * body.area_sqm, 2)
        row = await stores.postgres.save_valuation({**body.model_dump(), "estimate": estimate, "confidence": score, "model": model})
        confident = score >= props.evaluation_confidence_threshold
        if confident:
            metrics.valuation_success.labels(model).inc()
        return {
            "valuation_id": str(row["id"]),
            "estimate": estimate,
            "confidence": score,
            "low_confidence": not confident,
            "comparables": comparables["n"],
            "comparables_scope": comparables["scope"],
            "model": model,
            "method": "comparable-median",
        }

    @app.post("/v1/valuations/{valuation_id}/feedback", responses=_responses(*COMMON, 404, 409))
    async def feedback(valuation_id: uuid.UUID, body: FeedbackIn, request: Request, response: Response):
        require(assignment_for(request, response), "valuation")
        estimate = await stores.postgres.record_actual_price(valuation_id, body.actual_price)
        error = abs(estimate - body.actual_price) / body.actual_price
        metrics.valuation_error_ratio.observe(error)
        metrics.valuation_feedback.labels("accurate" if error <= ACCURATE_WITHIN else "inaccurate").inc()
        return {"valuation_id": str(valuation_id), "absolute_percentage_error": round(error, 4)}

    return app


def synthetic(request: Request) -> bool:
    """A monitoring probe's request (X-Synthetic): served like any other, kept out of the business metrics and the
    active users, which are about people."""
    return "x-synthetic" in request.headers


async def _send_json(send, status: int, body: dict, headers: tuple = ()) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": payload})


class GuardRequests:
    """Before any parsing: the API key on /v1/ paths (timing-safe), the number of /v1/ requests in progress, then the
    body: its size, and each of its chunks within body_timeout. A refused request costs no more than its headers, an
    accepted body is at most max_body_bytes in memory, a client that stops sending frees its slot, and past
    max_in_flight the business routes answer 503 at once while probes and metrics still answer."""

    def __init__(self, app, api_key: str, max_body_bytes: int, max_in_flight: int, body_timeout: float):
        self.app = app
        self.api_key = api_key.encode()
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.body_timeout = body_timeout
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith(PROTECTED_PREFIX):
            await self._read_body_then(scope, receive, send)
            return
        if not hmac.compare_digest(dict(scope["headers"]).get(b"x-api-key", b""), self.api_key):
            await _send_json(send, 401, {"error": "missing or invalid API key (send it in the X-API-Key header)",
                                         "request_id": request_id.get()})
            return
        if self.in_flight >= self.max_in_flight:
            await _send_json(send, 503, {"error": "too many requests in progress; retry shortly", "request_id": request_id.get()},
                             ((b"retry-after", b"1"),))
            return
        self.in_flight += 1
        try:
            await self._read_body_then(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _read_body_then(self, scope, receive, send):
        headers = dict(scope["headers"])
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        too_large = {"error": f"request body larger than {self.max_body_bytes} bytes", "request_id": request_id.get()}
        # The rest of a refused body is never read: the connection closes after the answer.
        closing = ((b"connection", b"close"),)
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            await _send_json(send, 413, too_large, closing)
            return
        body, more = b"", True
        try:
            # One deadline for the whole body: a client sending a byte every few seconds holds no slot for days.
            async with asyncio.timeout(self.body_timeout):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        scope["client_closed"] = True
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body_bytes:  # chunked uploads have no Content-Length to check first
                        await _send_json(send, 413, too_large, closing)
                        return
        except TimeoutError:
            await _send_json(send, 408, {"error": f"request body not received within {self.body_timeout:g} s",
                                         "request_id": request_id.get()}, closing)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ObserveRequests:
    """Request id, metrics and one access log line per request, as plain ASGI middleware
    (Starlette's BaseHTTPMiddleware costs about a third of the service's throughput). An unexpected error
    becomes a 500 here, inside the request's context, so its body and log line carry the request id."""

    def __init__(self, app, metrics: Metrics, routes: list):
        self.app = app
        self.metrics = metrics
        # The app's routes (the router's own list): a request answered before routing (401, 413, 408, 503 from
        # GuardRequests, or a client gone while its body arrived) is still counted under its route template.
        self.routes = routes

    def _template(self, scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return route.path
        return "unmatched"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status, response_started = 500, False

        async def send_with_id(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            log.error("unhandled error", exc_info=error)
            if not response_started:
                await _send_json(send_with_id, 500, {"error": "internal error", "request_id": rid})
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = route.path if route is not None else self._template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            if not response_started and scope.get("client_closed"):
                status = CLIENT_CLOSED
            self.metrics.http_in_flight.dec()
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            # A request refused before it ran (or a client gone) is no measure of the service's speed: a stalled body
            # would read as a 10 s answer.
            if status not in REFUSED_BEFORE_RUNNING:
                self.metrics.http_duration.labels(method, template).observe(elapsed)
            log.info("request", extra={"method": method, "route": template, "status": status, "duration_ms": round(elapsed * 1000, 2)})
            request_id.reset(token)
