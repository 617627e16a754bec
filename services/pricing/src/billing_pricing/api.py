"""HTTP routes the gateway forwards to: thin, one transaction per request."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.ids import PlanId, ProductId
from billing_common.runtime import ServiceRuntime
from billing_pricing import service
from billing_pricing.schemas import (
    CouponCreate,
    CouponId,
    CouponListQuery,
    PlanCreate,
    PlanListQuery,
    PlanMigrationCreate,
    PlanVersionCreate,
    PriceOverrideCreate,
    PriceOverrideListQuery,
    ProductCreate,
    ProductListQuery,
)

_MAX_VERSION = 2**31 - 1


def _version(request: Request) -> int:
    text = request.path_params["version"]
    if not text.isdigit() or not 1 <= int(text) <= _MAX_VERSION:
        raise service.PlanVersionNotFound(f"{text!r} is not a plan version (1, 2, ...)")
    return int(text)


def _plan_id(request: Request) -> PlanId:
    return PlanId.parse(request.path_params["plan_id"])


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    # -- products ------------------------------------------------------------------------------
    async def create_product(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, ProductCreate)
        async with runtime.unit_of_work() as conn:
            product = await service.create_product(
                conn, runtime.outbox, tenant, body, now=runtime.clock()
            )
        return json_response(product, status_code=201)

    async def list_products(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, ProductListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_products(conn, tenant, query))

    async def get_product(request: Request) -> Response:
        tenant = tenant_of(request)
        product_id = ProductId.parse(request.path_params["product_id"])
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_product(conn, tenant, product_id))

    # -- plans ---------------------------------------------------------------------------------
    async def create_plan(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, PlanCreate)
        async with runtime.unit_of_work() as conn:
            plan = await service.create_plan(
                conn, runtime.outbox, tenant, body, now=runtime.clock()
            )
        return json_response(plan, status_code=201)

    async def list_plans(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, PlanListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_plans(conn, tenant, query))

    async def get_plan(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_plan(conn, tenant, plan_id))

    async def publish_version(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        body = await parse_body(request, PlanVersionCreate)
        async with runtime.unit_of_work() as conn:
            plan = await service.publish_version(
                conn, runtime.outbox, tenant, plan_id, body, now=runtime.clock()
            )
        return json_response(plan, status_code=201)

    async def get_plan_version(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        version = _version(request)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_plan(conn, tenant, plan_id, version))

    async def schedule_migration(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        body = await parse_body(request, PlanMigrationCreate)
        async with runtime.unit_of_work() as conn:
            migration = await service.schedule_migration(
                conn, runtime.outbox, tenant, plan_id, body, now=runtime.clock()
            )
        return json_response(migration, status_code=201)

    async def list_migrations(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_migrations(conn, tenant, plan_id))

    async def set_override(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        body = await parse_body(request, PriceOverrideCreate)
        async with runtime.unit_of_work() as conn:
            override = await service.set_price_override(
                conn, runtime.outbox, tenant, plan_id, body, now=runtime.clock()
            )
        return json_response(override, status_code=201)

    async def list_overrides(request: Request) -> Response:
        tenant = tenant_of(request)
        plan_id = _plan_id(request)
        query = parse_query(request, PriceOverrideListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_overrides(conn, tenant, plan_id, query))

    # -- coupons -------------------------------------------------------------------------------
    async def create_coupon(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, CouponCreate)
        async with runtime.unit_of_work() as conn:
            coupon = await service.create_coupon(
                conn, runtime.outbox, tenant, body, now=runtime.clock()
            )
        return json_response(coupon, status_code=201)

    async def list_coupons(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, CouponListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_coupons(conn, tenant, query))

    async def get_coupon(request: Request) -> Response:
        tenant = tenant_of(request)
        coupon_id = CouponId.parse(request.path_params["coupon_id"])
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_coupon(conn, tenant, coupon_id))

    return [
        Route("/v1/products", create_product, methods=["POST"]),
        Route("/v1/products", list_products, methods=["GET"]),
        Route("/v1/products/{product_id}", get_product, methods=["GET"]),
        Route("/v1/plans", create_plan, methods=["POST"]),
        Route("/v1/plans", list_plans, methods=["GET"]),
        Route("/v1/plans/{plan_id}", get_plan, methods=["GET"]),
        Route("/v1/plans/{plan_id}/versions", publish_version, methods=["POST"]),
        Route("/v1/plans/{plan_id}/versions/{version}", get_plan_version, methods=["GET"]),
        Route("/v1/plans/{plan_id}/migrations", schedule_migration, methods=["POST"]),
        Route("/v1/plans/{plan_id}/migrations", list_migrations, methods=["GET"]),
        Route("/v1/plans/{plan_id}/overrides", set_override, methods=["POST"]),
        Route("/v1/plans/{plan_id}/overrides", list_overrides, methods=["GET"]),
        Route("/v1/coupons", create_coupon, methods=["POST"]),
        Route("/v1/coupons", list_coupons, methods=["GET"]),
        Route("/v1/coupons/{coupon_id}", get_coupon, methods=["GET"]),
    ]
