"""HTTP routes the gateway forwards to: test clocks and billing runs. Thin, one
transaction per request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.errors import InvalidId
from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.ids import TestClockId
from billing_common.runtime import ServiceRuntime
from billing_engine import service
from billing_engine.clock import BillingClock
from billing_engine.domain import UnknownCustomer
from billing_engine.schemas import (
    BillingRunListQuery,
    TestClock,
    TestClockAdvance,
    TestClockAttach,
    TestClockCreate,
    TestClockListQuery,
)
from billing_engine.settings import EngineSettings


def routes(
    runtime: ServiceRuntime, billing_clock: BillingClock, settings: EngineSettings
) -> Sequence[BaseRoute]:
    async def create(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, TestClockCreate)
        async with runtime.unit_of_work() as conn:
            clock = await service.create_clock(conn, tenant, body, now=runtime.clock())
        return json_response(clock, status_code=201)

    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, TestClockListQuery)
        async with runtime.pool.acquire() as conn:
            page = await service.list_clocks(conn, tenant, query)
        return json_response(page)

    async def retrieve(request: Request) -> Response:
        tenant = tenant_of(request)
        clock_id = TestClockId.parse(request.path_params["test_clock_id"])
        async with runtime.pool.acquire() as conn:
            clock = await service.get_clock(conn, tenant, clock_id)
        return json_response(clock)

    async def attach(request: Request) -> Response:
        """A customer created a moment ago may not have reached the engine yet: an unknown
        customer is looked for again for up to `attach_customer_wait_ms`."""
        tenant = tenant_of(request)
        clock_id = TestClockId.parse(request.path_params["test_clock_id"])
        body = await parse_body(request, TestClockAttach)
        deadline = time.monotonic() + settings.attach_customer_wait_ms / 1000
        while True:
            try:
                async with runtime.unit_of_work() as conn:
                    clock: TestClock = await service.attach_customer(
                        conn,
                        runtime.outbox,
                        tenant,
                        clock_id,
                        body.customer_id,
                        now=runtime.clock(),
                    )
                return json_response(clock)
            except UnknownCustomer:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    async def advance(request: Request) -> Response:
        tenant = tenant_of(request)
        clock_id = TestClockId.parse(request.path_params["test_clock_id"])
        body = await parse_body(request, TestClockAdvance)
        async with runtime.unit_of_work() as conn:
            clock = await service.advance_clock(
                conn, runtime.outbox, tenant, clock_id, body.to, now=runtime.clock()
            )
        billing_clock.wake()
        return json_response(clock)

    async def list_runs(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, BillingRunListQuery)
        async with runtime.pool.acquire() as conn:
            page = await service.list_billing_runs(conn, tenant, query)
        return json_response(page)

    async def retrieve_run(request: Request) -> Response:
        tenant = tenant_of(request)
        raw = request.path_params["saga_id"]
        try:
            saga_id = uuid.UUID(raw)
        except ValueError as exc:
            raise InvalidId(f"{raw!r} is not a saga id (a UUID)") from exc
        async with runtime.pool.acquire() as conn:
            run = await service.get_billing_run(conn, tenant, saga_id)
        return json_response(run)

    return [
        Route("/v1/test_clocks", create, methods=["POST"]),
        Route("/v1/test_clocks", list_all, methods=["GET"]),
        Route("/v1/test_clocks/{test_clock_id}", retrieve, methods=["GET"]),
        Route("/v1/test_clocks/{test_clock_id}/customers", attach, methods=["POST"]),
        Route("/v1/test_clocks/{test_clock_id}/advance", advance, methods=["POST"]),
        Route("/v1/billing_runs", list_runs, methods=["GET"]),
        Route("/v1/billing_runs/{saga_id}", retrieve_run, methods=["GET"]),
    ]
