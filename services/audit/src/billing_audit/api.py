"""HTTP routes of the audit log (read-only)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_audit import service
from billing_audit.schemas import AuditEventQuery
from billing_common.http import json_response, parse_query, tenant_of
from billing_common.runtime import ServiceRuntime


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, AuditEventQuery)
        async with runtime.pool.acquire() as conn:
            page = await service.list_entries(conn, tenant, query)
        return json_response(page)

    return [Route("/v1/audit_events", list_all, methods=["GET"])]
