"""The request path end to end: a real Valkey, upstream services as in-process Starlette apps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing_common.http import PROBLEM_JSON, exception_handlers
from billing_common.ids import TenantId
from billing_common.telemetry import configure_tracing
from billing_gateway.app import Gateway
from billing_gateway.auth import ApiKeyRecord, api_key_record, encode_jwt, generate_api_key
from billing_gateway.openapi import GATEWAY_OPERATIONS
from billing_gateway.routes import ROUTES
from billing_gateway.settings import GatewaySettings

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TENANT = TenantId.new()
JWT_SECRET = "test-jwt-secret"
UPSTREAM = "http://upstream.test"
CUSTOMER = {"external_id": "acme-1", "name": "Acme", "currency": "EUR"}


class InMemoryApiKeyStore:
    """`ApiKeyStore` over a dict (the PostgreSQL one is tested in test_repository)."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def issue(self, tenant_id: str) -> str:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=tenant_id, name="test", created_at=NOW)
        self.records[record.key_hash] = record
        return key

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        return self.records.get(key_hash)


@dataclass
class EchoUpstream:
    """A service that answers every request with what it received.

    A body whose `name` is "fail" gets a 500 problem; "slow" waits `delay` first.
    """

    delay: float = 1.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def echo(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.calls.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "raw": raw,
            }
        )
        self.called.set()
        name = body.get("name") if isinstance(body, dict) else None
        if name == "slow":
            await asyncio.sleep(self.delay)
        if name == "fail":
            return JSONResponse(
                {"code": "internal_error", "status": 500},
                status_code=500,
                media_type=PROBLEM_JSON,
            )
        status = 201 if request.method == "POST" else 200
        return JSONResponse(
            {"call": len(self.calls), "path": request.url.path, "body": body},
            status_code=status,
        )

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.echo, methods=methods)])


@dataclass
class Harness:
    client: httpx.AsyncClient
    upstream: EchoUpstream
    store: InMemoryApiKeyStore
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@asynccontextmanager
async def running_gateway(redis: Redis, **settings: Any) -> AsyncIterator[Harness]:
    upstream = EchoUpstream()
    store = InMemoryApiKeyStore()
    values: dict[str, Any] = {
        "jwt_secret": SecretStr(JWT_SECRET),
        "customers_service_url": UPSTREAM,
        "audit_service_url": UPSTREAM,
    }
    values.update(settings)
    gateway = Gateway(
        GatewaySettings(**values),
        store=store,
        redis=redis,
        clock=lambda: NOW,
        http_client=lambda: httpx.AsyncClient(
            mounts={UPSTREAM: httpx.ASGITransport(app=upstream.app())}
        ),
    )
    app = Starlette(routes=gateway.routes(), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        try:
            yield Harness(client, upstream, store, store.issue(TENANT))
        finally:
            await gateway.upstreams.aclose()


@pytest.fixture
async def gw(redis: Redis) -> AsyncIterator[Harness]:
    async with running_gateway(redis) as harness:
        yield harness


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is the problem+json `code` with `status`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert "Traceback" not in response.text
    return body


class TestForwarding:
    async def test_a_create_reaches_the_service_with_tenant_and_request_id(
        self, gw: Harness
    ) -> None:
        raw = json.dumps(CUSTOMER).encode()
        response = await gw.client.post(
            "/v1/customers",
            content=raw,
            headers={**gw.auth, "content-type": "application/json", "x-request-id": "req-42"},
        )
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-request-id"] == "req-42"
        assert response.json()["body"] == CUSTOMER
        (call,) = gw.upstream.calls
        assert call["method"] == "POST"
        assert call["path"] == "/v1/customers"
        assert call["raw"] == raw  # the original body, byte for byte
        assert call["headers"]["x-tenant-id"] == TENANT
        assert call["headers"]["x-request-id"] == "req-42"
        assert "authorization" not in call["headers"]

    async def test_a_client_cannot_choose_its_tenant(self, gw: Harness) -> None:
        other = TenantId.new()
        await gw.client.get("/v1/customers", headers={**gw.auth, "x-tenant-id": other})
        assert gw.upstream.calls[0]["headers"]["x-tenant-id"] == TENANT

    async def test_the_trace_continues_into_the_service(self, gw: Harness) -> None:
        configure_tracing("gateway-tests")
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        incoming = f"00-{trace_id}-00f067aa0ba902b7-01"
        await gw.client.get("/v1/customers", headers={**gw.auth, "traceparent": incoming})
        forwarded = gw.upstream.calls[0]["headers"]["traceparent"]
        assert forwarded.split("-")[1] == trace_id
        assert forwarded != incoming

    async def test_a_request_id_is_made_when_the_client_sends_none(self, gw: Harness) -> None:
        response = await gw.client.get("/v1/customers", headers=gw.auth)
        assert response.headers["x-request-id"].startswith("req_")
        assert gw.upstream.calls[0]["headers"]["x-request-id"] == response.headers["x-request-id"]

    async def test_query_and_path_parameters_are_forwarded(self, gw: Harness) -> None:
        await gw.client.get("/v1/customers?limit=5&external_id=a%20b", headers=gw.auth)
        await gw.client.get("/v1/customers/cus_123", headers=gw.auth)
        await gw.client.get("/v1/audit_events?subject=cus_123", headers=gw.auth)
        assert [(c["path"], c["query"]) for c in gw.upstream.calls] == [
            ("/v1/customers", "limit=5&external_id=a%20b"),
            ("/v1/customers/cus_123", ""),
            ("/v1/audit_events", "subject=cus_123"),
        ]

    async def test_upstream_problems_pass_through(self, gw: Harness) -> None:
        response = await gw.client.post(
            "/v1/customers", json={**CUSTOMER, "name": "fail"}, headers=gw.auth
        )
        problem(response, 500, "internal_error")

    async def test_a_dashboard_token_authenticates(self, gw: Harness) -> None:
        tenant = TenantId.new()
        token = encode_jwt(
            {"tenant": tenant, "sub": "u1", "exp": (NOW + timedelta(hours=1)).timestamp()},
            JWT_SECRET.encode(),
        )
        response = await gw.client.get(
            "/v1/customers", headers={"authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        assert gw.upstream.calls[0]["headers"]["x-tenant-id"] == tenant


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"authorization": "Bearer sk_test_" + "x" * 43},
            {"authorization": "Basic dXNlcjpwYXNz"},
            {"authorization": "Bearer not.a.jwt"},
        ],
    )
    async def test_without_valid_credentials_is_401(
        self, gw: Harness, headers: dict[str, str]
    ) -> None:
        response = await gw.client.get("/v1/customers", headers=headers)
        problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"
        assert gw.upstream.calls == []

    async def test_an_expired_token_is_401(self, gw: Harness) -> None:
        token = encode_jwt(
            {"tenant": TENANT, "exp": (NOW - timedelta(seconds=1)).timestamp()},
            JWT_SECRET.encode(),
        )
        response = await gw.client.get(
            "/v1/customers", headers={"authorization": f"Bearer {token}"}
        )
        assert "expired" in problem(response, 401, "unauthenticated")["detail"]


class TestRateLimit:
    async def test_over_the_limit_is_429_with_retry_after(self, redis: Redis) -> None:
        async with running_gateway(
            redis, gateway_rate_limit_per_second=0.5, gateway_rate_limit_burst=2
        ) as gw:
            statuses = [
                (await gw.client.get("/v1/customers", headers=gw.auth)).status_code
                for _ in range(2)
            ]
            assert statuses == [200, 200]
            response = await gw.client.get("/v1/customers", headers=gw.auth)
            problem(response, 429, "rate_limited")
            assert response.headers["retry-after"] == "2"
            assert len(gw.upstream.calls) == 2
            # Another key has its own bucket.
            other = gw.store.issue(TENANT)
            response = await gw.client.get(
                "/v1/customers", headers={"authorization": f"Bearer {other}"}
            )
            assert response.status_code == 200

    async def test_without_redis_requests_are_let_through(self, unreachable_redis: Redis) -> None:
        async with running_gateway(unreachable_redis) as gw:
            response = await gw.client.get("/v1/customers", headers=gw.auth)
            assert response.status_code == 200


class TestIdempotency:
    async def test_a_retry_replays_the_first_response(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "create-acme"}
        first = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
        second = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.content == first.content
        assert second.headers["content-type"] == first.headers["content-type"]
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert len(gw.upstream.calls) == 1

    async def test_keys_are_per_tenant(self, gw: Harness) -> None:
        other_tenant_key = gw.store.issue(TenantId.new())
        for key in (gw.key, other_tenant_key):
            headers = {"authorization": f"Bearer {key}", "idempotency-key": "same"}
            response = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
            assert "idempotent-replayed" not in response.headers
        assert len(gw.upstream.calls) == 2

    async def test_the_same_key_with_another_body_is_409(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "create-acme"}
        await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
        response = await gw.client.post(
            "/v1/customers", json={**CUSTOMER, "name": "Acme 2"}, headers=headers
        )
        problem(response, 409, "idempotency_key_reused")
        assert len(gw.upstream.calls) == 1

    async def test_a_retry_while_the_first_runs_is_409(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "slow-one"}
        body = {**CUSTOMER, "name": "slow"}
        gw.upstream.delay = 0.3
        first = asyncio.create_task(gw.client.post("/v1/customers", json=body, headers=headers))
        await gw.upstream.called.wait()
        response = await gw.client.post("/v1/customers", json=body, headers=headers)
        problem(response, 409, "idempotent_request_in_progress")
        assert (await first).status_code == 201

    async def test_a_server_error_is_not_stored(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "flaky"}
        body = {**CUSTOMER, "name": "fail"}
        for _ in range(2):
            response = await gw.client.post("/v1/customers", json=body, headers=headers)
            assert response.status_code == 500
            assert "idempotent-replayed" not in response.headers
        assert len(gw.upstream.calls) == 2

    async def test_a_rejected_body_does_not_use_up_the_key(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "fix-and-retry"}
        bad = await gw.client.post("/v1/customers", json={"name": "Acme"}, headers=headers)
        problem(bad, 422, "validation_failed")
        good = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
        assert good.status_code == 201

    async def test_an_invalid_key_is_400(self, gw: Harness) -> None:
        headers = {**gw.auth, "idempotency-key": "k" * 256}
        response = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
        problem(response, 400, "invalid_idempotency_key")

    async def test_without_redis_a_keyed_request_is_503(self, unreachable_redis: Redis) -> None:
        async with running_gateway(unreachable_redis) as gw:
            headers = {**gw.auth, "idempotency-key": "k1"}
            response = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
            problem(response, 503, "service_unavailable")
            assert gw.upstream.calls == []
            response = await gw.client.post("/v1/customers", json=CUSTOMER, headers=gw.auth)
            assert response.status_code == 201


class TestBadInput:
    async def test_malformed_json_is_400(self, gw: Harness) -> None:
        response = await gw.client.post(
            "/v1/customers",
            content=b'{"name": ',
            headers={**gw.auth, "content-type": "application/json"},
        )
        problem(response, 400, "malformed_body")

    async def test_an_empty_body_is_400(self, gw: Harness) -> None:
        response = await gw.client.post(
            "/v1/customers", headers={**gw.auth, "content-type": "application/json"}
        )
        problem(response, 400, "malformed_body")

    async def test_an_unknown_field_is_422_naming_it(self, gw: Harness) -> None:
        response = await gw.client.post(
            "/v1/customers", json={**CUSTOMER, "colour": "red"}, headers=gw.auth
        )
        body = problem(response, 422, "validation_failed")
        assert [e["field"] for e in body["errors"]] == ["colour"]
        assert body["errors"][0]["type"] == "extra_forbidden"

    async def test_wrong_types_are_422_per_field(self, gw: Harness) -> None:
        response = await gw.client.post(
            "/v1/customers",
            json={"external_id": 5, "name": "", "currency": "EUR", "metadata": []},
            headers=gw.auth,
        )
        body = problem(response, 422, "validation_failed")
        assert {e["field"] for e in body["errors"]} == {"external_id", "name", "metadata"}
        assert gw.upstream.calls == []

    async def test_a_body_that_is_not_an_object_is_422(self, gw: Harness) -> None:
        response = await gw.client.post("/v1/customers", json=[1, 2], headers=gw.auth)
        problem(response, 422, "validation_failed")

    async def test_an_oversized_body_is_413(self, redis: Redis) -> None:
        async with running_gateway(redis, gateway_max_body_bytes=64) as gw:
            big = {**CUSTOMER, "name": "x" * 100}
            response = await gw.client.post("/v1/customers", json=big, headers=gw.auth)
            problem(response, 413, "payload_too_large")

            async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as read
                for _ in range(10):
                    yield b" " * 10

            response = await gw.client.post(
                "/v1/customers",
                content=chunks(),
                headers={**gw.auth, "content-type": "application/json"},
            )
            problem(response, 413, "payload_too_large")

    async def test_another_content_type_is_415(self, gw: Harness) -> None:
        response = await gw.client.post("/v1/customers", data={"name": "Acme"}, headers=gw.auth)
        problem(response, 415, "unsupported_media_type")

    async def test_an_unknown_query_parameter_is_422(self, gw: Harness) -> None:
        response = await gw.client.get("/v1/customers?colour=red", headers=gw.auth)
        body = problem(response, 422, "validation_failed")
        assert body["errors"][0]["field"] == "colour"
        response = await gw.client.get("/v1/customers?limit=1000", headers=gw.auth)
        problem(response, 422, "validation_failed")

    async def test_an_unknown_route_is_404(self, gw: Harness) -> None:
        response = await gw.client.get("/v1/nothing_here", headers=gw.auth)
        problem(response, 404, "not_found")

    async def test_a_wrong_method_is_405(self, gw: Harness) -> None:
        response = await gw.client.delete("/v1/customers", headers=gw.auth)
        problem(response, 405, "method_not_allowed")
        response = await gw.client.post("/v1/audit_events", json={}, headers=gw.auth)
        problem(response, 405, "method_not_allowed")


class TestUpstreamFailures:
    async def test_a_service_that_is_down_is_503(self, redis: Redis, closed_port: int) -> None:
        async with running_gateway(
            redis, customers_service_url=f"http://127.0.0.1:{closed_port}"
        ) as gw:
            response = await gw.client.get("/v1/customers", headers=gw.auth)
            body = problem(response, 503, "service_unavailable")
            assert "customers" in body["detail"]
            assert response.headers["retry-after"] == "1"

    async def test_a_service_not_configured_is_503(self, redis: Redis) -> None:
        async with running_gateway(redis, audit_service_url=None) as gw:
            response = await gw.client.get("/v1/audit_events", headers=gw.auth)
            body = problem(response, 503, "service_unavailable")
            assert "AUDIT_SERVICE_URL" in body["detail"]

    async def test_a_service_too_slow_is_504(self, redis: Redis) -> None:
        async with running_gateway(redis, gateway_upstream_timeout_seconds=0.1) as gw:
            response = await gw.client.post(
                "/v1/customers", json={**CUSTOMER, "name": "slow"}, headers=gw.auth
            )
            problem(response, 504, "upstream_timeout")

    async def test_a_failed_keyed_request_can_be_retried(
        self, redis: Redis, closed_port: int
    ) -> None:
        async with running_gateway(
            redis, customers_service_url=f"http://127.0.0.1:{closed_port}"
        ) as gw:
            headers = {**gw.auth, "idempotency-key": "retry-me"}
            for _ in range(2):
                response = await gw.client.post("/v1/customers", json=CUSTOMER, headers=headers)
                problem(response, 503, "service_unavailable")


class TestDocuments:
    async def test_openapi_is_served_without_credentials(self, gw: Harness) -> None:
        response = await gw.client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        document = response.json()
        assert document["openapi"] == "3.1.0"
        operations = [op for item in document["paths"].values() for op in item]
        assert len(operations) == len(ROUTES) + len(GATEWAY_OPERATIONS)

    async def test_docs_are_served_as_html(self, gw: Harness) -> None:
        response = await gw.client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "/v1/customers" in response.text


class TestRouting:
    def test_the_served_routes_are_the_route_table(self) -> None:
        gateway = Gateway(
            GatewaySettings(),
            store=InMemoryApiKeyStore(),
            redis=Redis(),
            clock=lambda: NOW,
        )
        served = {
            (method, route.path)
            for route in gateway.routes()
            if isinstance(route, Route) and route.path.startswith("/v1/")
            for method in (route.methods or set())
            if method != "HEAD"
        }
        assert served == {(spec.method, spec.path) for spec in ROUTES} | set(GATEWAY_OPERATIONS)

    def test_a_route_twice_is_refused(self) -> None:
        gateway = Gateway(
            GatewaySettings(),
            store=InMemoryApiKeyStore(),
            redis=Redis(),
            clock=lambda: NOW,
            routes=(*ROUTES, ROUTES[0]),
        )
        with pytest.raises(ValueError, match="twice"):
            gateway.routes()
