"""Forwarding to the owning service: the only HTTP calls between services (ARCHITECTURE.md §2).

The original body goes as it came, with the tenant (`x-tenant-id`), the trace
(`traceparent`) and the request id (`x-request-id`); nothing else from the
client crosses. Status, body and content type come back as they are. A service
that cannot be reached is a 503 problem, one that does not answer in time a 504.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from opentelemetry.trace import SpanKind
from starlette.responses import Response

from billing_common.errors import ServiceUnavailable, UpstreamTimeout
from billing_common.http import TENANT_HEADER
from billing_common.ids import uuid7
from billing_common.telemetry import current_traceparent, tracer
from billing_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PASSED_BACK = ("content-type", "retry-after")


def request_id_of(incoming: str | None) -> str:
    """The client's `x-request-id` when it is a sane token, else a new `req_…` id."""
    if incoming is not None and _REQUEST_ID.match(incoming):
        return incoming
    return f"req_{uuid7().hex}"


@dataclass(frozen=True)
class UpstreamRequest:
    service: str
    method: str
    path: str
    """As the client sent it (still percent-encoded)."""
    query: str
    body: bytes
    content_type: str | None
    tenant_id: str
    request_id: str


class Upstreams:
    """The services behind the gateway, reached with one shared `httpx.AsyncClient`."""

    def __init__(
        self,
        settings: GatewaySettings,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = settings.gateway_upstream_timeout_seconds
        self._factory = client_factory or self._default_client
        self._client: httpx.AsyncClient | None = None

    def _default_client(self) -> httpx.AsyncClient:
        # trust_env=False: calls between services never go through an HTTP proxy.
        return httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            trust_env=False,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared client, made on first use (and again after `aclose`)."""
        if self._client is None or self._client.is_closed:
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def forward(self, request: UpstreamRequest) -> Response:
        base = self._settings.service_url(request.service)
        if base is None:
            raise ServiceUnavailable(
                f"the {request.service} service is not configured on this gateway "
                f"({GatewaySettings.service_field(request.service).upper()} is unset)"
            )
        url = base + request.path + (f"?{request.query}" if request.query else "")
        with tracer().start_as_current_span(
            f"{request.method} {request.service}", kind=SpanKind.CLIENT
        ):
            headers = {TENANT_HEADER: request.tenant_id, REQUEST_ID_HEADER: request.request_id}
            traceparent = current_traceparent()
            if traceparent is not None:
                headers["traceparent"] = traceparent
            if request.body and request.content_type:
                headers["content-type"] = request.content_type
            try:
                async with asyncio.timeout(self._timeout):
                    upstream = await self.client.request(
                        request.method,
                        url,
                        content=request.body or None,
                        headers=headers,
                        timeout=self._timeout,
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                logger.warning("%s unreachable at %s: %s", request.service, base, exc)
                raise ServiceUnavailable(
                    f"the {request.service} service is unreachable; retry shortly"
                ) from exc
            except (TimeoutError, httpx.TimeoutException) as exc:
                logger.warning("%s timed out on %s %s", request.service, request.method, url)
                raise UpstreamTimeout(
                    f"the {request.service} service did not answer within {self._timeout:g} s"
                ) from exc
            except httpx.TransportError as exc:
                logger.warning("%s failed on %s %s: %r", request.service, request.method, url, exc)
                raise ServiceUnavailable(
                    f"the {request.service} service failed to answer; retry shortly"
                ) from exc
        passed = {name: upstream.headers[name] for name in _PASSED_BACK if name in upstream.headers}
        return Response(upstream.content, status_code=upstream.status_code, headers=passed)
