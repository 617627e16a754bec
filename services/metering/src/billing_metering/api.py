"""HTTP routes the gateway forwards to: thin, one transaction per request."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.runtime import ServiceRuntime
from billing_metering import service
from billing_metering.accumulators import UsageAccumulators
from billing_metering.schemas import (
    CustomerUsageQuery,
    MeterCreate,
    MeterListQuery,
    MeterUpdate,
    MeterUsageQuery,
)
from billing_metering.store import UsageStore

UsageBackends = Callable[[], tuple[UsageStore, UsageAccumulators]]


def routes(runtime: ServiceRuntime, backends: UsageBackends) -> Sequence[BaseRoute]:
    async def create(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, MeterCreate)
        async with runtime.unit_of_work() as conn:
            meter = await service.create_meter(
                conn, runtime.outbox, tenant, body, now=runtime.clock()
            )
        return json_response(meter, status_code=201)

    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, MeterListQuery)
        async with runtime.pool.acquire() as conn:
            meters = await service.list_meters(
                conn, tenant, include_archived=query.include_archived
            )
        return json_response(meters)

    async def retrieve(request: Request) -> Response:
        tenant = tenant_of(request)
        async with runtime.pool.acquire() as conn:
            meter = await service.get_meter(conn, tenant, request.path_params["key"])
        return json_response(meter)

    async def update(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, MeterUpdate)
        async with runtime.unit_of_work() as conn:
            meter = await service.update_meter(
                conn, runtime.outbox, tenant, request.path_params["key"], body, now=runtime.clock()
            )
        return json_response(meter)

    async def archive(request: Request) -> Response:
        tenant = tenant_of(request)
        async with runtime.unit_of_work() as conn:
            meter = await service.archive_meter(
                conn, runtime.outbox, tenant, request.path_params["key"], now=runtime.clock()
            )
        return json_response(meter)

    async def meter_usage(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, MeterUsageQuery)
        async with runtime.pool.acquire() as conn:
            meter = await service.get_meter(conn, tenant, request.path_params["key"])
            customer = (
                None
                if query.customer is None
                else await service.resolve_customer(conn, tenant, query.customer)
            )
        store, accumulators = backends()
        return json_response(
            await service.usage(store, accumulators, tenant, meter, customer, query)
        )

    async def customer_usage(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, CustomerUsageQuery)
        async with runtime.pool.acquire() as conn:
            customer = await service.resolve_customer(
                conn, tenant, request.path_params["customer_id"]
            )
            meter = await service.get_meter(conn, tenant, query.meter)
        store, accumulators = backends()
        return json_response(
            await service.usage(store, accumulators, tenant, meter, customer, query)
        )

    return [
        Route("/v1/meters", create, methods=["POST"]),
        Route("/v1/meters", list_all, methods=["GET"]),
        Route("/v1/meters/{key}", retrieve, methods=["GET"]),
        Route("/v1/meters/{key}", update, methods=["PATCH"]),
        Route("/v1/meters/{key}", archive, methods=["DELETE"]),
        Route("/v1/meters/{key}/usage", meter_usage, methods=["GET"]),
        Route("/v1/customers/{customer_id}/usage", customer_usage, methods=["GET"]),
    ]
