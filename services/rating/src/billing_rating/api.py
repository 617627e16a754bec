"""HTTP routes the gateway forwards to: thin, one connection per request."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_body, tenant_of
from billing_common.runtime import ServiceRuntime
from billing_rating import service
from billing_rating.schemas import RatingPreviewRequest


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    async def preview(request: Request) -> Response:
        """Rate described usage against a plan version; reads only, so no transaction."""
        tenant = tenant_of(request)
        body = await parse_body(request, RatingPreviewRequest)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.preview(conn, tenant, body))

    return [Route("/v1/rating/preview", preview, methods=["POST"])]
