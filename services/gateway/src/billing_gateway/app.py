"""The gateway: the request path every API call takes, and its wiring into the runtime.

authenticate → rate-limit → read and validate the input → claim the
Idempotency-Key (POST) → forward to the owning service → store the response for
replays. Every failure on the way is a problem+json response; the upstream's
own answer (success or problem) passes through unchanged.

Input is validated before the Idempotency-Key is claimed: a request the schema
rejects never reaches a service, so its 4xx is not stored, and the client can
fix the body and retry with the same key (as Stripe does).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from billing_common.errors import BillingError, Unauthenticated
from billing_common.http import parse_query, problem_response, read_json, validation_problem
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_common.telemetry import continue_trace
from billing_gateway.auth import ApiKeyStore, Authenticator
from billing_gateway.docs import render_docs
from billing_gateway.events import PRODUCES
from billing_gateway.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    REPLAYED_HEADER,
    IdempotencyStore,
    StoredResponse,
    parse_idempotency_key,
    request_fingerprint,
)
from billing_gateway.openapi import build_openapi
from billing_gateway.proxy import REQUEST_ID_HEADER, UpstreamRequest, Upstreams, request_id_of
from billing_gateway.ratelimit import RateLimitExceeded, RateLimitPolicy, TokenBucketLimiter
from billing_gateway.repository import PostgresApiKeyStore
from billing_gateway.routes import ROUTES, RouteSpec
from billing_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "gateway_requests_total", "API requests answered by the gateway", ["method", "route", "status"]
)
LATENCY = Histogram("gateway_request_seconds", "Time to answer an API request", ["method", "route"])


def error_response(error: BillingError, request: Request) -> Response:
    """The problem+json of `error`, with the headers its status calls for."""
    response = problem_response(error, request)
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, RateLimitExceeded):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


async def read_json_body(request: Request, max_bytes: int) -> tuple[bytes, Any]:
    """The body as received and as parsed JSON (`read_json`'s 400/413/415 problems)."""
    chunks: list[bytes] = []
    receive = request.receive

    async def recording_receive() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
        return message

    parsed = await read_json(Request(request.scope, recording_receive), max_bytes)
    return b"".join(chunks), parsed


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("latin-1").split("?", 1)[0]
    return request.url.path


class Gateway:
    """The API routes of the route table, `/openapi.json` and `/docs`."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        store: ApiKeyStore,
        redis: Redis,
        clock: Callable[[], datetime],
        http_client: Callable[[], httpx.AsyncClient] | None = None,
        routes: Sequence[RouteSpec] = ROUTES,
    ) -> None:
        self.settings = settings
        self.specs = tuple(routes)
        self.redis = redis
        self.authenticator = Authenticator(store, jwt_secret=settings.jwt_secret, clock=clock)
        self.limiter = TokenBucketLimiter(
            redis,
            RateLimitPolicy(
                rate_per_second=settings.gateway_rate_limit_per_second,
                burst=settings.gateway_rate_limit_burst,
            ),
        )
        self.idempotency = IdempotencyStore(redis)
        self.upstreams = Upstreams(settings, http_client)
        self.openapi = build_openapi(self.specs, server_url=settings.gateway_public_url or "/")
        self._openapi_json = json.dumps(self.openapi).encode()
        self._docs_html = render_docs(self.openapi)

    # -- routes ---------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        by_path: dict[str, dict[str, RouteSpec]] = {}
        for spec in self.specs:
            methods = by_path.setdefault(spec.path, {})
            if spec.method in methods:
                raise ValueError(f"{spec.method} {spec.path} is in the route table twice")
            methods[spec.method] = spec
        routes: list[BaseRoute] = [
            Route("/openapi.json", self._serve_openapi, methods=["GET"]),
            Route("/docs", self._serve_docs, methods=["GET"]),
        ]
        routes += [
            Route(path, self._endpoint(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]
        return routes

    async def _serve_openapi(self, request: Request) -> Response:
        return Response(self._openapi_json, media_type="application/json")

    async def _serve_docs(self, request: Request) -> Response:
        return HTMLResponse(self._docs_html)

    def _endpoint(self, methods: dict[str, RouteSpec]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await self.handle(methods[method], request)

        return endpoint

    # -- the request path -----------------------------------------------------------------
    async def handle(self, spec: RouteSpec, request: Request) -> Response:
        request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        started = time.perf_counter()
        with continue_trace(
            f"{spec.method} {spec.path}",
            request.headers.get("traceparent"),
            **{"http.route": spec.path, "http.request.method": spec.method},
        ):
            try:
                response = await self._handle(spec, request, request_id)
            except BillingError as error:
                response = error_response(error, request)
        response.headers[REQUEST_ID_HEADER] = request_id
        REQUESTS.labels(spec.method, spec.path, str(response.status_code)).inc()
        LATENCY.labels(spec.method, spec.path).observe(time.perf_counter() - started)
        return response

    async def _handle(self, spec: RouteSpec, request: Request, request_id: str) -> Response:
        principal = await self.authenticator.authenticate(request.headers.get("authorization"))
        await self.limiter.enforce(principal.rate_limit_key)
        key = None
        if spec.idempotent:
            key = parse_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))

        body = b""
        content_type = None
        if spec.request_model is not None:
            body, parsed = await read_json_body(request, self.settings.gateway_max_body_bytes)
            try:
                spec.request_model.model_validate(parsed)
            except ValidationError as exc:
                raise validation_problem(exc) from exc
            content_type = request.headers.get("content-type", "application/json")
        query = ""
        if spec.query_model is not None:
            parse_query(request, spec.query_model)
            query = request.scope.get("query_string", b"").decode("latin-1")

        path = _raw_path(request)
        upstream = UpstreamRequest(
            service=spec.service,
            method=request.method,
            path=path,
            query=query,
            body=body,
            content_type=content_type,
            tenant_id=principal.tenant_id,
            request_id=request_id,
        )
        if key is None:
            return await self.upstreams.forward(upstream)

        outcome = await self.idempotency.begin(
            principal.tenant_id, key, request_fingerprint(request.method, path, body)
        )
        if isinstance(outcome, StoredResponse):
            headers = {REPLAYED_HEADER: "true"}
            if outcome.content_type:
                headers["content-type"] = outcome.content_type
            return Response(outcome.body, status_code=outcome.status, headers=headers)
        try:
            response = await self.upstreams.forward(upstream)
        except BaseException:
            await self.idempotency.release(outcome)
            raise
        await self.idempotency.complete(
            outcome,
            StoredResponse(
                response.status_code, response.headers.get("content-type"), bytes(response.body)
            ),
        )
        return response

    # -- lifecycle ------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self.upstreams.aclose()
        await self.redis.aclose()

    async def hold_clients(self) -> None:
        """Run for the life of the process; close the clients when cancelled (at stop)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()


# -- wiring into the service runtime -------------------------------------------------------
_gateways: weakref.WeakKeyDictionary[ServiceRuntime, Gateway] = weakref.WeakKeyDictionary()


def gateway_of(runtime: ServiceRuntime) -> Gateway:
    """The one `Gateway` of a runtime: built by the routes factory, closed by `setup`'s task."""
    gateway = _gateways.get(runtime)
    if gateway is None:
        settings = GatewaySettings()
        if settings.jwt_secret is None:
            logger.warning("JWT_SECRET is unset: dashboard tokens are refused, API keys work")
        redis = Redis.from_url(
            runtime.settings.redis_url.get_secret_value(),
            socket_connect_timeout=0.5,
            socket_timeout=1.0,
        )
        gateway = Gateway(
            settings,
            store=PostgresApiKeyStore(lambda: runtime.pool),
            redis=redis,
            clock=runtime.clock,
        )
        _gateways[runtime] = gateway
    return gateway


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return gateway_of(runtime).routes()


async def setup(runtime: ServiceRuntime) -> None:
    runtime.spawn(gateway_of(runtime).hold_clients(), name="gateway-clients")


definition = ServiceDefinition(
    name="gateway",
    package="billing_gateway",
    produces=PRODUCES,
    routes=routes,
    setup=setup,
)
