"""HTTP routes the gateway forwards to: thin, one transaction per request.

Each command reads "now" from the runtime's clock once and hands the use case the time of
the customer concerned: the same, or its test clock's frozen time when the customer is
attached to one (`service.customer_now`, `service.subscription_now`), read in the command's
transaction. The tenant's policy changes on the real clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.ids import SubscriptionId
from billing_common.runtime import ServiceContext
from billing_subscriptions import service
from billing_subscriptions.policy import SubscriptionPolicy
from billing_subscriptions.schemas import (
    SubscriptionCancel,
    SubscriptionChangePlan,
    SubscriptionCreate,
    SubscriptionListQuery,
    SubscriptionPolicyResource,
)


def _subscription_id(request: Request) -> SubscriptionId:
    return SubscriptionId.parse(request.path_params["subscription_id"])


def routes(runtime: ServiceContext) -> Sequence[BaseRoute]:
    async def create(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, SubscriptionCreate)
        async with runtime.unit_of_work() as conn:
            now = await service.customer_now(conn, tenant, body.customer_id, now=runtime.clock())
            subscription = await service.create_subscription(
                conn, runtime.outbox, tenant, body, now=now
            )
        return json_response(subscription, status_code=201)

    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, SubscriptionListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_subscriptions(conn, tenant, query))

    async def retrieve(request: Request) -> Response:
        tenant = tenant_of(request)
        subscription_id = _subscription_id(request)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_subscription(conn, tenant, subscription_id))

    async def cancel(request: Request) -> Response:
        tenant = tenant_of(request)
        subscription_id = _subscription_id(request)
        body = await parse_body(request, SubscriptionCancel)
        async with runtime.unit_of_work() as conn:
            now = await service.subscription_now(conn, tenant, subscription_id, now=runtime.clock())
            subscription = await service.cancel_subscription(
                conn, runtime.outbox, tenant, subscription_id, body, now=now
            )
        return json_response(subscription)

    async def pause(request: Request) -> Response:
        tenant = tenant_of(request)
        subscription_id = _subscription_id(request)
        async with runtime.unit_of_work() as conn:
            now = await service.subscription_now(conn, tenant, subscription_id, now=runtime.clock())
            subscription = await service.pause_subscription(
                conn, runtime.outbox, tenant, subscription_id, now=now
            )
        return json_response(subscription)

    async def resume(request: Request) -> Response:
        tenant = tenant_of(request)
        subscription_id = _subscription_id(request)
        async with runtime.unit_of_work() as conn:
            now = await service.subscription_now(conn, tenant, subscription_id, now=runtime.clock())
            subscription = await service.resume_subscription(
                conn, runtime.outbox, tenant, subscription_id, now=now
            )
        return json_response(subscription)

    async def change_plan(request: Request) -> Response:
        tenant = tenant_of(request)
        subscription_id = _subscription_id(request)
        body = await parse_body(request, SubscriptionChangePlan)
        async with runtime.unit_of_work() as conn:
            now = await service.subscription_now(conn, tenant, subscription_id, now=runtime.clock())
            subscription = await service.change_subscription_plan(
                conn, runtime.outbox, tenant, subscription_id, body, now=now
            )
        return json_response(subscription)

    async def get_policy(request: Request) -> Response:
        tenant = tenant_of(request)
        async with runtime.pool.acquire() as conn:
            policy = await service.get_policy(conn, tenant)
        return json_response(SubscriptionPolicyResource.of(policy))

    async def put_policy(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, SubscriptionPolicy)
        async with runtime.unit_of_work() as conn:
            policy = await service.set_policy(conn, tenant, body, now=runtime.clock())
        return json_response(SubscriptionPolicyResource.of(policy))

    return [
        Route("/v1/subscriptions", create, methods=["POST"]),
        Route("/v1/subscriptions", list_all, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}", retrieve, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/subscriptions/{subscription_id}/pause", pause, methods=["POST"]),
        Route("/v1/subscriptions/{subscription_id}/resume", resume, methods=["POST"]),
        Route("/v1/subscriptions/{subscription_id}/change_plan", change_plan, methods=["POST"]),
        Route("/v1/subscription_policy", get_policy, methods=["GET"]),
        Route("/v1/subscription_policy", put_policy, methods=["PUT"]),
    ]
