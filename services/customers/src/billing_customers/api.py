"""HTTP routes the gateway forwards to: thin, one transaction per request."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.ids import CustomerId
from billing_common.runtime import ServiceRuntime
from billing_customers import service
from billing_customers.schemas import (
    CustomerChildrenQuery,
    CustomerCreate,
    CustomerListQuery,
    CustomerUpdate,
)


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    async def create(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, CustomerCreate)
        async with runtime.unit_of_work() as conn:
            customer = await service.create_customer(
                conn, runtime.outbox, tenant, body, now=runtime.clock()
            )
        return json_response(customer, status_code=201)

    async def retrieve(request: Request) -> Response:
        tenant = tenant_of(request)
        customer_id = CustomerId.parse(request.path_params["customer_id"])
        async with runtime.pool.acquire() as conn:
            customer = await service.get_customer(conn, tenant, customer_id)
        return json_response(customer)

    async def update(request: Request) -> Response:
        tenant = tenant_of(request)
        customer_id = CustomerId.parse(request.path_params["customer_id"])
        body = await parse_body(request, CustomerUpdate)
        async with runtime.unit_of_work() as conn:
            customer = await service.update_customer(
                conn, runtime.outbox, tenant, customer_id, body, now=runtime.clock()
            )
        return json_response(customer)

    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, CustomerListQuery)
        async with runtime.pool.acquire() as conn:
            page = await service.list_customers(conn, tenant, query)
        return json_response(page)

    async def children(request: Request) -> Response:
        tenant = tenant_of(request)
        customer_id = CustomerId.parse(request.path_params["customer_id"])
        query = parse_query(request, CustomerChildrenQuery)
        async with runtime.pool.acquire() as conn:
            page = await service.list_children(conn, tenant, customer_id, query)
        return json_response(page)

    return [
        Route("/v1/customers", create, methods=["POST"]),
        Route("/v1/customers", list_all, methods=["GET"]),
        Route("/v1/customers/{customer_id}", retrieve, methods=["GET"]),
        Route("/v1/customers/{customer_id}", update, methods=["PATCH"]),
        Route("/v1/customers/{customer_id}/children", children, methods=["GET"]),
    ]
