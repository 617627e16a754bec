"""`GET /v1/customers/{customer_id}/upcoming_invoice`: the period so far, usage included.

Invoicing previews only the billing effects it has recorded (base fees, prorations):
it learns usage when rating rates a closed period. So the gateway composes the
preview for the client, from the services' own read APIs, with the same headers as
the proxy (tenant, request id, trace):

1. invoicing's upcoming invoice (its 404 for an unknown customer comes first);
2. the customer's `active`, `past_due` and `trialing` subscriptions;
3. for each with a current period: the meter keys of its plan version (pricing), each
   meter's usage of the customer over `[current_period_start, now)` in one window per
   group (metering, from the store the billing cycle reads), and that usage rated
   against the plan version with the customer's overrides (rating);
4. one answer: invoicing's fields, `usage_lines` (rating's lines, exact, each with its
   subscription) and `usage_total` and `total_with_usage`.

Rated amounts stay exact (12 decimals); the invoice rounds each usage line to the
minor unit when the period closes. Lines of an `in_advance` charge count too: the
period's invoice bills them at its close. The customer's children, taxes on usage and
the plan's minimum commitment are not previewed. Upstream JSON is read with `Decimal`
for every number, never a float.

A 4xx from a service passes through as its problem+json; a 5xx, a service that cannot
be reached or does not answer in time, or an answer that does not parse is a 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from billing_common.errors import ServiceUnavailable, UpstreamTimeout
from billing_common.http import PROBLEM_JSON
from billing_common.money import Money, MoneyPublic, sum_money
from billing_gateway.proxy import UpstreamRequest, Upstreams
from billing_invoicing.schemas import UpcomingInvoice
from billing_rating.schemas import RatedLine, RatingPreview

logger = logging.getLogger(__name__)

UPCOMING_INVOICE_PATH = "/v1/customers/{customer_id}/upcoming_invoice"
PREVIEWED_STATUSES = ("active", "past_due", "trialing")
"""The subscriptions whose current period is previewed."""

MAX_CONCURRENT_CALLS = 8
"""Upstream calls one preview makes at a time."""

_SUBSCRIPTIONS_PAGE = 100

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


# -- the answer -----------------------------------------------------------------------------


class UsageLine(RatedLine):
    """One of rating's lines for a subscription's current period so far (amount exact)."""

    subscription_id: str
    plan_id: str
    plan_version: int
    usage_through: AwareDatetime = Field(
        description="usage is counted from `period_start` up to this instant (excluded)"
    )


class UpcomingInvoiceWithUsage(UpcomingInvoice):
    """The upcoming invoice of invoicing, plus the usage of the current periods so far."""

    usage_lines: list[UsageLine] = Field(
        description="rating's lines for each active, past_due or trialing subscription's "
        "current period so far, priced with the customer's overrides; amounts exact, "
        "before rounding to the minor unit"
    )
    usage_total: MoneyPublic = Field(
        description="the exact sum of the usage lines, as the period's invoice will bill them"
    )
    total_with_usage: MoneyPublic = Field(description="`total` plus `usage_total`")
    usage_as_of: AwareDatetime = Field(description="the instant the usage was read up to")


# -- what the gateway reads from the services (the fields it needs, no more) ---------------


class _Upstream(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Subscription(_Upstream):
    id: str
    plan_id: str
    plan_version: int
    current_period_start: AwareDatetime | None
    current_period_end: AwareDatetime | None


class _SubscriptionPage(_Upstream):
    data: list[_Subscription]
    has_more: bool
    next_cursor: str | None = None


class _PlanVersion(_Upstream):
    meter_keys: list[str]


class _UsageValue(_Upstream):
    group: dict[str, str]
    value: Decimal


class _Usage(_Upstream):
    data: list[_UsageValue]


# -- failures -------------------------------------------------------------------------------


class UpstreamRejected(Exception):
    """A service answered 4xx: the client gets that answer as it is."""

    def __init__(self, service: str, status: int, body: bytes, content_type: str | None) -> None:
        super().__init__(f"{service} answered {status}")
        self.service = service
        self.status = status
        self.body = body
        self.content_type = content_type

    def response(self) -> Response:
        if self.content_type == PROBLEM_JSON:
            return Response(self.body, status_code=self.status, media_type=PROBLEM_JSON)
        problem = {  # not a problem document (a service always sends one): say who refused
            "type": "https://docs.bill.sh/errors/upstream_rejected",
            "title": "Rejected by the owning service",
            "status": self.status,
            "detail": f"the {self.service} service refused the request ({self.status})",
            "code": "upstream_rejected",
        }
        return Response(json.dumps(problem), status_code=self.status, media_type=PROBLEM_JSON)


async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Every result, in order; on a failure the others are cancelled and it is raised."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                tasks.append(group.create_task(_awaited(call)))
    except BaseExceptionGroup as failed:
        raise _first_leaf(failed) from None
    return [task.result() for task in tasks]


async def _awaited(call: Awaitable[T]) -> T:
    return await call


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# -- the composition ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calls:
    """The upstream calls of one preview: the tenant and request id of the client's request."""

    upstreams: Upstreams
    tenant_id: str
    request_id: str
    limit: asyncio.Semaphore

    async def get(self, service: str, path: str, query: dict[str, str] | None = None) -> Any:
        return await self._call(service, "GET", path, query=query)

    async def post(self, service: str, path: str, body: dict[str, Any]) -> Any:
        return await self._call(service, "POST", path, body=json.dumps(body).encode())

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Any:
        request = UpstreamRequest(
            service=service,
            method=method,
            path=path,
            query=urlencode(query or {}, quote_via=quote),
            body=body,
            content_type="application/json" if body else None,
            tenant_id=self.tenant_id,
            request_id=self.request_id,
        )
        async with self.limit:
            try:
                answer = await self.upstreams.forward(request)
            except UpstreamTimeout as exc:
                raise ServiceUnavailable(f"{exc.detail}; retry shortly") from exc
        status = answer.status_code
        if 400 <= status < 500:
            raise UpstreamRejected(service, status, bytes(answer.body), _media_type(answer))
        if not 200 <= status < 300:
            logger.warning("%s answered %d on %s %s", service, status, method, path)
            raise ServiceUnavailable(f"the {service} service failed ({status}); retry shortly")
        try:
            return json.loads(bytes(answer.body), parse_float=Decimal)
        except ValueError as exc:
            raise _unreadable(service) from exc


def _media_type(response: Response) -> str | None:
    value = response.headers.get("content-type")
    return None if value is None else value.split(";", 1)[0].strip().lower()


def _unreadable(service: str) -> ServiceUnavailable:
    logger.warning("%s answered something the gateway cannot read", service)
    return ServiceUnavailable(f"the {service} service gave an unreadable answer; retry shortly")


def _read(model: type[M], service: str, document: Any) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _unreadable(service) from exc


def _segment(value: str) -> str:
    return quote(value, safe="")


async def preview_upcoming_invoice(
    upstreams: Upstreams,
    *,
    tenant_id: str,
    request_id: str,
    customer_segment: str,
    now: datetime,
) -> UpcomingInvoiceWithUsage:
    """The upcoming invoice of the customer whose id is `customer_segment` (the path part
    as the client sent it), with its subscriptions' usage over their current periods up to
    `now`. Raises `UpstreamRejected` (a 4xx to pass on) or `ServiceUnavailable`."""
    calls = _Calls(upstreams, tenant_id, request_id, asyncio.Semaphore(MAX_CONCURRENT_CALLS))
    upcoming = _read(
        UpcomingInvoice,
        "invoicing",
        await calls.get("invoicing", f"/v1/customers/{customer_segment}/upcoming_invoice"),
    )
    customer_id = upcoming.customer_id
    pages = await _all(_subscriptions(calls, customer_id, status) for status in PREVIEWED_STATUSES)
    subscriptions = sorted(
        ((s, period) for page in pages for s in page if (period := _current_period(s)) is not None),
        key=lambda found: found[0].id,
    )
    versions = sorted({(s.plan_id, s.plan_version) for s, _ in subscriptions})
    meter_keys = dict(
        zip(versions, await _all(_meter_keys(calls, *version) for version in versions), strict=True)
    )
    rated = await _all(
        _rated_so_far(calls, customer_id, s, period, meter_keys[(s.plan_id, s.plan_version)], now)
        for s, period in subscriptions
    )
    lines = [line for subscription_lines in rated for line in subscription_lines]
    usage_total = sum_money(
        (line.amount.to_money() for line in lines),
        upcoming.currency,
    )
    total: Money = upcoming.total.to_money() + usage_total
    return UpcomingInvoiceWithUsage(
        **dict(upcoming),
        usage_lines=lines,
        usage_total=usage_total.to_public(),
        total_with_usage=total.to_public(),
        usage_as_of=_floor_ms(now),
    )


def _floor_ms(instant: datetime) -> datetime:
    """`instant` down to its millisecond."""
    return instant.replace(microsecond=instant.microsecond - instant.microsecond % 1000)


def _ceil_ms(instant: datetime) -> datetime:
    floor = _floor_ms(instant)
    return floor if floor == instant else floor + timedelta(milliseconds=1)


def _current_period(subscription: _Subscription) -> tuple[datetime, datetime] | None:
    start, end = subscription.current_period_start, subscription.current_period_end
    return None if start is None or end is None else (start, end)


async def _subscriptions(calls: _Calls, customer_id: str, status: str) -> list[_Subscription]:
    found: list[_Subscription] = []
    query = {"customer_id": customer_id, "status": status, "limit": str(_SUBSCRIPTIONS_PAGE)}
    while True:
        page = _read(
            _SubscriptionPage,
            "subscriptions",
            await calls.get("subscriptions", "/v1/subscriptions", query),
        )
        found += page.data
        if not page.has_more or page.next_cursor is None:
            return found
        query = {**query, "starting_after": page.next_cursor}


async def _meter_keys(calls: _Calls, plan_id: str, version: int) -> list[str]:
    path = f"/v1/plans/{_segment(plan_id)}/versions/{version}"
    return _read(_PlanVersion, "pricing", await calls.get("pricing", path)).meter_keys


async def _usage(
    calls: _Calls, customer_id: str, meter_key: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The meter's value per group over `[start, end)`, as rating's usage records."""
    query = {
        "meter": meter_key,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "source": "store",  # exact, from the deduplicated events, as the cycle reads them
    }
    path = f"/v1/customers/{_segment(customer_id)}/usage"
    usage = _read(_Usage, "metering", await calls.get("metering", path, query))
    return [
        {"meter_key": meter_key, "group": value.group, "quantity": f"{value.value:f}"}
        for value in usage.data
    ]


async def _rated_so_far(
    calls: _Calls,
    customer_id: str,
    subscription: _Subscription,
    period: tuple[datetime, datetime],
    meter_keys: Sequence[str],
    now: datetime,
) -> list[UsageLine]:
    """Rating's lines for the subscription's current `period`, with the usage up to `now`."""
    start, end = period
    # Metering reads whole milliseconds, as events are timestamped.
    since, through = _ceil_ms(start), _floor_ms(min(now, end))
    if through <= since or not meter_keys:  # not begun (a test clock ahead), or no charges
        return []
    usage = await _all(_usage(calls, customer_id, key, since, through) for key in meter_keys)
    body = {
        "plan_id": subscription.plan_id,
        "version": subscription.plan_version,
        "customer_id": customer_id,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "usage": [record for records in usage for record in records],
    }
    preview = _read(RatingPreview, "rating", await calls.post("rating", "/v1/rating/preview", body))
    return [
        UsageLine(
            **dict(line),
            subscription_id=subscription.id,
            plan_id=subscription.plan_id,
            plan_version=subscription.plan_version,
            usage_through=through,
        )
        for line in preview.lines
    ]
