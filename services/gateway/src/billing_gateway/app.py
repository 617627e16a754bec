"""The gateway: the request path every API call takes, and its wiring into the runtime.

authenticate → rate-limit → read and validate the input → claim the
Idempotency-Key (POST) → forward to the owning service → store the response for
replays. Every failure on the way is a problem+json response; the upstream's
own answer (success or problem) passes through unchanged.

Input is validated before the Idempotency-Key is claimed: a request the schema
rejects never reaches a service, so its 4xx is not stored, and the client can
fix the body and retry with the same key (as Stripe does).

Usage ingestion (`POST /v1/events`) is the gateway's own route: the same
authentication, rate limit and Idempotency-Key, then the events are validated
(`usage_events`) and published to Kafka, and the `202` goes out only once Kafka
has acknowledged every message; a Kafka failure is a retryable `503` (metering
counts a resent event once, by customer and id). An Idempotency-Key is honoured
as on every POST (a retry replays the first `202`), but is not needed: events are
idempotent by their ids already.

The upcoming invoice (`GET /v1/customers/{customer_id}/upcoming_invoice`) is the
gateway's own too: authenticated and rate-limited the same way, then composed from
invoicing, subscriptions, pricing, metering and rating (`upcoming_invoice`), so that
it previews the usage of the current periods so far as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from billing_common.errors import (
    BillingError,
    MalformedBody,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthenticated,
)
from billing_common.http import parse_query, problem_response, read_json, validation_problem
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_common.telemetry import continue_trace, current_traceparent
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
from billing_gateway.openapi import GATEWAY_OPERATIONS, build_openapi
from billing_gateway.proxy import REQUEST_ID_HEADER, UpstreamRequest, Upstreams, request_id_of
from billing_gateway.ratelimit import RateLimitExceeded, RateLimitPolicy, TokenBucketLimiter
from billing_gateway.repository import PostgresApiKeyStore
from billing_gateway.routes import ROUTES, RouteSpec
from billing_gateway.settings import GatewaySettings
from billing_gateway.upcoming_invoice import (
    UPCOMING_INVOICE_PATH,
    UpstreamRejected,
    preview_upcoming_invoice,
)
from billing_gateway.usage_events import (
    EVENTS_PATH,
    EventsRejected,
    OutgoingMessage,
    UsageEventsAccepted,
    event_format,
    messages_for,
    parse_usage_events,
)

logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "gateway_requests_total", "API requests answered by the gateway", ["method", "route", "status"]
)
LATENCY = Histogram("gateway_request_seconds", "Time to answer an API request", ["method", "route"])
EVENTS_ACCEPTED = Counter(
    "gateway_usage_events_accepted_total", "Usage events accepted and published to Kafka"
)
EVENTS_REJECTED = Counter(
    "gateway_usage_events_rejected_total", "Usage events rejected by validation", ["code"]
)
EVENTS_PUBLISH_FAILURES = Counter(
    "gateway_usage_events_publish_failures_total", "Requests whose events Kafka did not take"
)


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


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, 413 past `max_bytes` (declared or counted)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    if not body:
        raise MalformedBody("request body is empty; expected JSON")
    return bytes(body)


ProducerFactory = Callable[[], AIOKafkaProducer]


class UsagePublisher:
    """The gateway's one Kafka producer of usage events: started on first use (or by
    `warm_up`), kept for the life of the process, stopped by `aclose`.

    `publish` returns once Kafka has acknowledged every message (acks=all); any
    failure or a wait over `timeout` seconds is a retryable 503.
    """

    def __init__(self, factory: ProducerFactory | None, *, timeout: float) -> None:
        self._factory = factory
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @staticmethod
    def factory_for(bootstrap: str, *, timeout: float) -> ProducerFactory:
        def make() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                client_id="billing-gateway-usage",
                acks="all",
                enable_idempotence=False,  # unsupported by the embedded broker; metering dedups
                linger_ms=5,
                request_timeout_ms=max(1000, int(timeout * 1000)),
            )

        return make

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            if self._factory is None:
                raise ServiceUnavailable("usage ingestion is not configured (no Kafka bootstrap)")
            producer = self._factory()
            try:
                async with asyncio.timeout(self._timeout):
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as exc:
                logger.warning("Kafka unreachable for usage events: %r", exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise ServiceUnavailable("usage events cannot be taken right now; retry") from exc
            self._producer = producer
            return producer

    async def warm_up(self) -> None:
        """Start the producer now if Kafka answers (else the first request tries again)."""
        with contextlib.suppress(ServiceUnavailable):
            await self._started()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        producer = await self._started()
        try:
            async with asyncio.timeout(self._timeout):
                acks = [
                    await producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=message.headers,
                    )
                    for message in messages
                ]
                await asyncio.gather(*acks)
        except (KafkaError, OSError, TimeoutError) as exc:
            logger.warning("publishing %d usage messages failed: %r", len(messages), exc)
            raise ServiceUnavailable(
                "usage events could not be handed to Kafka; retry (a resent event counts once)"
            ) from exc

    async def aclose(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


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
        kafka_bootstrap: str | None = None,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        """`kafka_bootstrap` (or `producer_factory`) is where usage events go; with
        neither, `POST /v1/events` answers 503."""
        self.settings = settings
        self.specs = tuple(routes)
        self.clock = clock
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
        timeout = settings.gateway_publish_timeout_seconds
        if producer_factory is None and kafka_bootstrap is not None:
            producer_factory = UsagePublisher.factory_for(kafka_bootstrap, timeout=timeout)
        self.publisher = UsagePublisher(producer_factory, timeout=timeout)
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
        for method, path in GATEWAY_OPERATIONS:
            if method in by_path.get(path, {}):
                raise ValueError(f"{method} {path} is the gateway's own; not for the route table")
        routes: list[BaseRoute] = [
            Route("/openapi.json", self._serve_openapi, methods=["GET"]),
            Route("/docs", self._serve_docs, methods=["GET"]),
            Route(EVENTS_PATH, self.ingest_events, methods=["POST"]),
            Route(UPCOMING_INVOICE_PATH, self.upcoming_invoice, methods=["GET"]),
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
        return await self._observed(
            spec.method,
            spec.path,
            request,
            lambda request_id: self._handle(spec, request, request_id),
        )

    async def ingest_events(self, request: Request) -> Response:
        """`POST /v1/events`: usage events to Kafka, `202` once acknowledged."""
        return await self._observed(
            "POST", EVENTS_PATH, request, lambda request_id: self._ingest_events(request)
        )

    async def upcoming_invoice(self, request: Request) -> Response:
        """`GET /v1/customers/{customer_id}/upcoming_invoice`: the period so far, with usage."""
        return await self._observed(
            "GET",
            UPCOMING_INVOICE_PATH,
            request,
            lambda request_id: self._upcoming_invoice(request, request_id),
        )

    async def _observed(
        self,
        method: str,
        route: str,
        request: Request,
        answer: Callable[[str], Awaitable[Response]],
    ) -> Response:
        """`answer` in a span, errors as problems, with the request id, counted and timed."""
        request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        started = time.perf_counter()
        with continue_trace(
            f"{method} {route}",
            request.headers.get("traceparent"),
            **{"http.route": route, "http.request.method": method},
        ):
            try:
                response = await answer(request_id)
            except BillingError as error:
                response = error_response(error, request)
        response.headers[REQUEST_ID_HEADER] = request_id
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        LATENCY.labels(method, route).observe(time.perf_counter() - started)
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
        return await self._once(
            principal.tenant_id,
            key,
            request_fingerprint(request.method, path, body),
            lambda: self.upstreams.forward(upstream),
        )

    async def _upcoming_invoice(self, request: Request, request_id: str) -> Response:
        principal = await self.authenticator.authenticate(request.headers.get("authorization"))
        await self.limiter.enforce(principal.rate_limit_key)
        # The customer id as the client sent it (still percent-encoded), as the proxy would.
        segment = _raw_path(request).removeprefix("/v1/customers/").split("/", 1)[0]
        try:
            preview = await preview_upcoming_invoice(
                self.upstreams,
                tenant_id=principal.tenant_id,
                request_id=request_id,
                customer_segment=segment,
                now=self.clock(),
            )
        except UpstreamRejected as rejected:
            return rejected.response()
        return Response(preview.model_dump_json(), media_type="application/json")

    async def _ingest_events(self, request: Request) -> Response:
        principal = await self.authenticator.authenticate(request.headers.get("authorization"))
        await self.limiter.enforce(principal.rate_limit_key)
        key = parse_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
        content_type = request.headers.get("content-type")
        event_format(content_type)  # a 415 before reading the body
        body = await read_body(request, self.settings.gateway_max_events_body_bytes)
        received_at = self.clock()
        batch = parse_usage_events(body, content_type, received_at)
        if not batch.accepted:
            for reject in batch.rejected:
                EVENTS_REJECTED.labels(reject.code).inc()
            raise EventsRejected(batch.rejected)

        async def publish() -> Response:
            messages = messages_for(
                batch.accepted,
                tenant_id=principal.tenant_id,
                received_at=received_at,
                traceparent=current_traceparent(),
            )
            try:
                await self.publisher.publish(messages)
            except ServiceUnavailable:
                EVENTS_PUBLISH_FAILURES.inc()
                raise
            EVENTS_ACCEPTED.inc(len(batch.accepted))
            for reject in batch.rejected:
                EVENTS_REJECTED.labels(reject.code).inc()
            answer = UsageEventsAccepted(accepted=len(batch.accepted), rejected=batch.rejected)
            return JSONResponse(answer.model_dump(mode="json"), status_code=202)

        fingerprint = request_fingerprint("POST", EVENTS_PATH, body)
        return await self._once(principal.tenant_id, key, fingerprint, publish)

    async def _once(
        self,
        tenant_id: str,
        key: str | None,
        fingerprint: str,
        act: Callable[[], Awaitable[Response]],
    ) -> Response:
        """`act`, or with an Idempotency-Key the response its first run stored."""
        if key is None:
            return await act()
        outcome = await self.idempotency.begin(tenant_id, key, fingerprint)
        if isinstance(outcome, StoredResponse):
            headers = {REPLAYED_HEADER: "true"}
            if outcome.content_type:
                headers["content-type"] = outcome.content_type
            return Response(outcome.body, status_code=outcome.status, headers=headers)
        try:
            response = await act()
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
        await self.publisher.aclose()
        await self.upstreams.aclose()
        await self.redis.aclose()

    async def hold_clients(self) -> None:
        """Run for the life of the process; close the clients when cancelled (at stop)."""
        try:
            await self.publisher.warm_up()
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
            kafka_bootstrap=runtime.settings.kafka_bootstrap,
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
