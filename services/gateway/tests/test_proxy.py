from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing_common.errors import ServiceUnavailable, UpstreamTimeout
from billing_gateway.proxy import UpstreamRequest, Upstreams, request_id_of
from billing_gateway.settings import GatewaySettings

SERVICE = "http://customers.test"
TENANT = "ten_01M8ARBC0TE1AAMP4XN1DBV6A6"


def _request(**overrides: Any) -> UpstreamRequest:
    values: dict[str, Any] = {
        "service": "customers",
        "method": "POST",
        "path": "/v1/customers",
        "query": "",
        "body": b'{"name":"a"}',
        "content_type": "application/json; charset=utf-8",
        "tenant_id": TENANT,
        "request_id": "req_1",
    }
    values.update(overrides)
    return UpstreamRequest(**values)


async def _teapot(request: Request) -> Response:
    if request.url.path == "/slow":
        await asyncio.sleep(1)
    body = await request.body()
    return Response(
        body,
        status_code=418,
        headers={
            "content-type": "application/vnd.test+json",
            "x-seen-tenant": request.headers.get("x-tenant-id", ""),
            "x-seen-type": request.headers.get("content-type", ""),
            "x-seen-url": str(request.url),
            "retry-after": "7",
        },
    )


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    app = Starlette(routes=[Route("/{path:path}", _teapot, methods=["GET", "POST"])])
    settings = GatewaySettings(customers_service_url=SERVICE, gateway_upstream_timeout_seconds=0.1)
    upstreams = Upstreams(
        settings, lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    )
    yield upstreams
    await upstreams.aclose()


class TestRequestId:
    def test_keeps_a_sane_client_id(self) -> None:
        assert request_id_of("abc-123_x.y:z") == "abc-123_x.y:z"

    @pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "new\nline"])
    def test_makes_one_otherwise(self, incoming: str | None) -> None:
        made = request_id_of(incoming)
        assert made.startswith("req_")
        assert made != request_id_of(incoming)


class TestForward:
    async def test_passes_status_body_and_content_type_back(self, upstreams: Upstreams) -> None:
        response = await upstreams.forward(_request(query="a=1&b=%20"))
        assert response.status_code == 418
        assert response.body == b'{"name":"a"}'
        assert response.headers["content-type"] == "application/vnd.test+json"
        assert response.headers["retry-after"] == "7"
        assert "x-seen-tenant" not in response.headers  # only what the client needs

    async def test_sends_tenant_content_type_and_query(self, upstreams: Upstreams) -> None:
        client = upstreams.client
        sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            sent.append(request)

        client.event_hooks["request"] = [record]
        await upstreams.forward(_request(query="a=1&b=%20"))
        (request,) = sent
        assert str(request.url) == f"{SERVICE}/v1/customers?a=1&b=%20"
        assert request.headers["x-tenant-id"] == TENANT
        assert request.headers["x-request-id"] == "req_1"
        assert request.headers["content-type"] == "application/json; charset=utf-8"

    async def test_a_slow_service_is_504(self, upstreams: Upstreams) -> None:
        with pytest.raises(UpstreamTimeout, match=r"0\.1 s"):
            await upstreams.forward(_request(method="GET", path="/slow", body=b""))

    async def test_an_unconfigured_service_is_503(self, upstreams: Upstreams) -> None:
        with pytest.raises(ServiceUnavailable, match="METERING_SERVICE_URL"):
            await upstreams.forward(_request(service="metering"))

    async def test_an_unreachable_service_is_503(self, closed_port: int) -> None:
        settings = GatewaySettings(customers_service_url=f"http://127.0.0.1:{closed_port}")
        upstreams = Upstreams(settings)
        try:
            with pytest.raises(ServiceUnavailable, match="unreachable"):
                await upstreams.forward(_request())
        finally:
            await upstreams.aclose()

    async def test_a_broken_connection_is_503(self) -> None:
        def broken(request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)

        settings = GatewaySettings(customers_service_url=SERVICE)
        upstreams = Upstreams(
            settings, lambda: httpx.AsyncClient(transport=httpx.MockTransport(broken))
        )
        with pytest.raises(ServiceUnavailable, match="failed to answer"):
            await upstreams.forward(_request())
        await upstreams.aclose()

    async def test_the_client_is_made_again_after_close(self, upstreams: Upstreams) -> None:
        first = upstreams.client
        await upstreams.aclose()
        assert upstreams.client is not first
        assert (await upstreams.forward(_request())).status_code == 418
