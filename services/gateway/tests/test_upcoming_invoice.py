"""`GET /v1/customers/{customer_id}/upcoming_invoice` composed by the gateway: a real Valkey,
invoicing, subscriptions, pricing, metering and rating faked as in-process Starlette apps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing_common.errors import BillingError, NotFound, ValidationFailed
from billing_common.http import PROBLEM_JSON, exception_handlers
from billing_common.ids import CustomerId, PlanId, SubscriptionId, TenantId
from billing_common.money import Money
from billing_gateway.app import Gateway
from billing_gateway.auth import ApiKeyRecord, api_key_record, generate_api_key
from billing_gateway.openapi import GATEWAY_OPERATIONS, build_openapi
from billing_gateway.routes import ROUTES, RouteSpec
from billing_gateway.settings import GatewaySettings
from billing_gateway.upcoming_invoice import UPCOMING_INVOICE_PATH, UpcomingInvoiceWithUsage
from billing_invoicing.schemas import InvoiceLineResource, UpcomingInvoice
from billing_rating.schemas import RatedLine, RatingPreview

NOW = datetime(2025, 3, 1, 12, 0, 0, 250_999, tzinfo=UTC)  # metering reads whole ms
NOW_MS = NOW.replace(microsecond=250_000)
TENANT = TenantId.new()
CUSTOMER = CustomerId.new()
PLAN_A, PLAN_B, PLAN_TRIAL = PlanId.new(), PlanId.new(), PlanId.new()
# Ids in creation order: the answer lists subscriptions by id.
SUB_A, SUB_B, SUB_TRIAL, SUB_AHEAD = (SubscriptionId.new() for _ in range(4))

A_START, A_END = datetime(2025, 2, 15, 0, 0, 0, 400, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)
A_START_MS = datetime(2025, 2, 15, 0, 0, 0, 1000, tzinfo=UTC)  # its first whole millisecond
# B's period has ended but not closed yet: its usage is read up to its end, not to now.
B_START, B_END = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
AHEAD_START = NOW + timedelta(days=3)  # on a test clock ahead of the real one

SERVICES = ("invoicing", "subscriptions", "pricing", "metering", "rating")


def url_of(service: str) -> str:
    return f"http://{service}.test"


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


class InMemoryApiKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def issue(self, tenant_id: str) -> str:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=tenant_id, name="test", created_at=NOW)
        self.records[record.key_hash] = record
        return key

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        return self.records.get(key_hash)


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class UnknownMeterUsage(ValidationFailed):
    code = "unknown_meter_usage"


class ServiceBroke(BillingError):
    """A 500 problem, as a service's handlers render an unexpected failure."""


def subscription(
    subscription_id: str, plan_id: str, version: int, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """The fields of a subscription the gateway reads, and a few it does not."""
    return {
        "object": "subscription",
        "id": subscription_id,
        "customer_id": CUSTOMER,
        "plan_id": plan_id,
        "plan_version": version,
        "base_fee": usd("49"),
        "current_period_start": None if start is None else start.isoformat(),
        "current_period_end": None if end is None else end.isoformat(),
    }


SUBSCRIPTIONS: dict[str, list[dict[str, Any]]] = {
    # Two pages of one: the gateway follows `next_cursor`.
    "active": [
        subscription(SUB_A, PLAN_A, 1, A_START, A_END),
        subscription(SUB_AHEAD, PLAN_A, 1, AHEAD_START, AHEAD_START + timedelta(days=30)),
    ],
    "past_due": [subscription(SUB_B, PLAN_B, 3, B_START, B_END)],
    "trialing": [subscription(SUB_TRIAL, PLAN_TRIAL, 1, None, None)],
}
METER_KEYS = {(PLAN_A, 1): ["calls", "storage"], (PLAN_B, 3): ["calls"]}
USAGE: dict[str, list[dict[str, Any]]] = {
    "calls": [
        {"group": {"region": "eu"}, "value": "1234.5"},
        {"group": {"region": "us"}, "value": "10"},
    ],
    "storage": [{"group": {}, "value": "7"}],
}
# plan -> meter -> (unit price, billing)
PRICES = {
    PLAN_A: {"calls": ("0.0035", "in_arrears"), "storage": ("1.1", "in_advance")},
    PLAN_B: {"calls": ("0.000000001", "in_arrears")},
}


def invoice_line() -> InvoiceLineResource:
    fee = Money.parse("49", "USD").to_public()
    zero = Money.zero("USD").to_public()
    return InvoiceLineResource(
        id="line_1",
        kind="base_fee",
        description="Pro, 15 Feb - 15 Mar",
        child_customer_id=None,
        quantity=Decimal(1),
        amount=fee,
        exact_amount=fee,
        discount=zero,
        tax=zero,
        tax_rate=Decimal(0),
        tax_treatment="not_applicable",
        total=fee,
        period_start=A_START,
        period_end=A_END,
        details=[],
    )


def upcoming_invoice(customer_id: str) -> UpcomingInvoice:
    fee = Money.parse("49", "USD").to_public()
    return UpcomingInvoice(
        subtotal=fee,
        discount_total=Money.zero("USD").to_public(),
        tax_total=Money.zero("USD").to_public(),
        total=fee,
        amount_due=fee,
        customer_id=customer_id,
        currency="USD",
        period_start=A_START,
        period_end=A_END,
        covers=["pending base fees and prorations (billing effects not yet invoiced)"],
        lines=[invoice_line()],
    )


def rated(body: dict[str, Any]) -> RatingPreview:
    """A toy rating: per unit, one line per usage record."""
    prices = PRICES[body["plan_id"]]
    lines = []
    for record in body["usage"]:
        if record["meter_key"] not in prices:
            raise UnknownMeterUsage(f"plan does not charge {record['meter_key']}")
        unit_price, billing = prices[record["meter_key"]]
        amount = Decimal(unit_price) * Decimal(record["quantity"])
        lines.append(
            RatedLine.model_validate(
                {
                    "charge_key": record["meter_key"],
                    "meter_key": record["meter_key"],
                    "group": record["group"],
                    "kind": "usage",
                    "billing": billing,
                    "overridden": False,
                    "period_start": body["period_start"],
                    "period_end": body["period_end"],
                    "quantity": record["quantity"],
                    "amount": usd(f"{amount:f}"),
                    "unit_price": usd(unit_price),
                    "tiers": [],
                    "packages": None,
                    "percentage": None,
                    "matrix_cell": None,
                    "explanation": f"{record['quantity']} x {unit_price}",
                }
            )
        )
    total = sum((line.amount.to_money() for line in lines), Money.zero("USD"))
    return RatingPreview(
        plan_id=PlanId.parse(body["plan_id"]),
        version=body["version"],
        customer_id=CustomerId.parse(body["customer_id"]),
        currency="USD",
        period_start=body["period_start"],
        period_end=body["period_end"],
        lines=lines,
        total=total.to_public(),
    )


@dataclass
class Upstreams:
    """The five services, each recording what it was asked. `fail[service]` makes it answer
    that status (500: a bare error; 4xx: a problem); `slow` services take `delay` seconds."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    slow: set[str] = field(default_factory=set)
    delay: float = 1.0
    subscriptions: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: dict(SUBSCRIPTIONS)
    )

    async def _record(self, service: str, request: Request) -> None:
        raw = await request.body()
        self.calls.append(
            {
                "service": service,
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": json.loads(raw) if raw else None,
            }
        )
        if service in self.slow:
            await asyncio.sleep(self.delay)
        status = self.fail.get(service)
        if status is not None and status >= 500:
            raise ServiceBroke(f"{service} broke")
        if status == 404:
            raise CustomerNotFound(f"no customer {request.path_params.get('customer_id')}")
        if status == 422:
            raise UnknownMeterUsage("the plan does not charge meter storage")

    async def invoicing(self, request: Request) -> Response:
        await self._record("invoicing", request)
        preview = upcoming_invoice(request.path_params["customer_id"])
        return Response(preview.model_dump_json(), media_type="application/json")

    async def subscriptions_list(self, request: Request) -> Response:
        await self._record("subscriptions", request)
        found = self.subscriptions.get(request.query_params["status"], [])
        after = request.query_params.get("starting_after")
        start = 0 if after is None else [s["id"] for s in found].index(after) + 1
        page = found[start : start + 1]
        more = start + 1 < len(found)
        return JSONResponse(
            {
                "object": "list",
                "data": page,
                "has_more": more,
                "next_cursor": page[-1]["id"] if more else None,
            }
        )

    async def plan_version(self, request: Request) -> Response:
        await self._record("pricing", request)
        key = (request.path_params["plan_id"], int(request.path_params["version"]))
        return JSONResponse({"object": "plan", "id": key[0], "meter_keys": METER_KEYS[key]})

    async def usage(self, request: Request) -> Response:
        await self._record("metering", request)
        query = request.query_params
        data = [
            {
                "customer_id": request.path_params["customer_id"],
                "window_start": query["from"],
                "window_end": query["to"],
                **value,
            }
            for value in USAGE[query["meter"]]
        ]
        return JSONResponse(
            {
                "object": "usage",
                "meter": query["meter"],
                "aggregation": "count",
                "from": query["from"],
                "to": query["to"],
                "window_size": None,
                "source": "store",
                "data": data,
            }
        )

    async def rating(self, request: Request) -> Response:
        await self._record("rating", request)
        preview = rated(await request.json())
        return Response(preview.model_dump_json(), media_type="application/json")

    def app(self, service: str) -> Starlette:
        routes = {
            "invoicing": [
                Route("/v1/customers/{customer_id}/upcoming_invoice", self.invoicing),
            ],
            "subscriptions": [Route("/v1/subscriptions", self.subscriptions_list)],
            "pricing": [Route("/v1/plans/{plan_id}/versions/{version}", self.plan_version)],
            "metering": [Route("/v1/customers/{customer_id}/usage", self.usage)],
            "rating": [Route("/v1/rating/preview", self.rating, methods=["POST"])],
        }[service]
        return Starlette(routes=routes, exception_handlers=exception_handlers())

    def of(self, service: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["service"] == service]


@dataclass
class Harness:
    client: httpx.AsyncClient
    upstreams: Upstreams
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    async def preview(self, customer_id: str = CUSTOMER, **headers: str) -> httpx.Response:
        return await self.client.get(
            f"/v1/customers/{customer_id}/upcoming_invoice", headers={**self.auth, **headers}
        )


@asynccontextmanager
async def running_gateway(redis: Redis, **settings: Any) -> AsyncIterator[Harness]:
    upstreams = Upstreams()
    store = InMemoryApiKeyStore()
    values: dict[str, Any] = {"jwt_secret": SecretStr("secret")}
    values.update({f"{service}_service_url": url_of(service) for service in SERVICES})
    values.update(settings)
    gateway = Gateway(
        GatewaySettings(**values),
        store=store,
        redis=redis,
        clock=lambda: NOW,
        http_client=lambda: httpx.AsyncClient(
            mounts={
                url_of(service): httpx.ASGITransport(app=upstreams.app(service))
                for service in SERVICES
            }
        ),
    )
    app = Starlette(routes=gateway.routes(), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        try:
            yield Harness(client, upstreams, store.issue(TENANT))
        finally:
            await gateway.upstreams.aclose()


@pytest.fixture
async def gw(redis: Redis) -> AsyncIterator[Harness]:
    async with running_gateway(redis) as harness:
        yield harness


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert "Traceback" not in response.text
    return body


class TestComposition:
    async def test_invoicing_fields_with_the_usage_so_far_and_exact_totals(
        self, gw: Harness
    ) -> None:
        response = await gw.preview()
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = json.loads(response.text, parse_float=Decimal)
        # invoicing's own fields, as invoicing gave them
        expected = json.loads(upcoming_invoice(CUSTOMER).model_dump_json())
        assert {name: body[name] for name in expected} == expected
        assert body["object"] == "upcoming_invoice"
        # rating's lines, per subscription in id order, amounts exact
        lines = [
            (
                line["subscription_id"],
                line["plan_id"],
                line["plan_version"],
                line["meter_key"],
                line["group"],
                line["quantity"],
                line["amount"],
                line["billing"],
            )
            for line in body["usage_lines"]
        ]
        assert lines == [
            (SUB_A, PLAN_A, 1, "calls", {"region": "eu"}, "1234.5", usd("4.32075"), "in_arrears"),
            (SUB_A, PLAN_A, 1, "calls", {"region": "us"}, "10", usd("0.035"), "in_arrears"),
            (SUB_A, PLAN_A, 1, "storage", {}, "7", usd("7.7"), "in_advance"),
            (
                SUB_B,
                PLAN_B,
                3,
                "calls",
                {"region": "eu"},
                "1234.5",
                usd("0.0000012345"),
                "in_arrears",
            ),
            (SUB_B, PLAN_B, 3, "calls", {"region": "us"}, "10", usd("0.00000001"), "in_arrears"),
        ]
        assert [line["usage_through"] for line in body["usage_lines"]] == [
            "2025-03-01T12:00:00.250000Z"
        ] * 3 + ["2025-03-01T06:00:00Z"] * 2
        # 4.32075 + 0.035 + 0.0000012345 + 0.00000001; not the 7.7 in advance (billed already)
        # Every line counts, the in-advance storage (7.7) too: the invoice bills it at close.
        assert body["usage_total"] == usd("12.0557512445")
        assert body["total_with_usage"] == usd("61.0557512445")
        assert body["usage_as_of"] == "2025-03-01T12:00:00.250000Z"
        UpcomingInvoiceWithUsage.model_validate_json(response.text)

    async def test_each_upstream_is_asked_as_the_proxy_asks(self, gw: Harness) -> None:
        response = await gw.preview(**{"x-request-id": "req-7", "x-tenant-id": "ten_other"})
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "req-7"
        assert gw.upstreams.calls
        for call in gw.upstreams.calls:
            assert call["headers"]["x-tenant-id"] == TENANT
            assert call["headers"]["x-request-id"] == "req-7"
            assert "authorization" not in call["headers"]
        [invoicing] = gw.upstreams.of("invoicing")
        assert invoicing["path"] == f"/v1/customers/{CUSTOMER}/upcoming_invoice"
        listed = [
            (c["query"]["status"], c["query"].get("starting_after"))
            for c in gw.upstreams.of("subscriptions")
        ]
        assert sorted(listed, key=str) == sorted(
            [("active", None), ("active", SUB_A), ("past_due", None), ("trialing", None)],
            key=str,
        )
        for call in gw.upstreams.of("subscriptions"):
            assert call["query"]["customer_id"] == CUSTOMER
        # one plan version read each; none for the trial without a period
        assert sorted(c["path"] for c in gw.upstreams.of("pricing")) == sorted(
            [f"/v1/plans/{PLAN_A}/versions/1", f"/v1/plans/{PLAN_B}/versions/3"]
        )

    async def test_usage_is_read_from_the_period_start_up_to_now_in_whole_ms(
        self, gw: Harness
    ) -> None:
        await gw.preview()
        windows = sorted(
            (c["query"]["meter"], c["query"]["from"], c["query"]["to"], c["query"]["source"])
            for c in gw.upstreams.of("metering")
        )
        assert windows == [
            ("calls", B_START.isoformat(), B_END.isoformat(), "store"),
            ("calls", A_START_MS.isoformat(), NOW_MS.isoformat(), "store"),
            ("storage", A_START_MS.isoformat(), NOW_MS.isoformat(), "store"),
        ]
        for call in gw.upstreams.of("metering"):
            assert call["path"] == f"/v1/customers/{CUSTOMER}/usage"
            assert "window_size" not in call["query"]

    async def test_rating_rates_it_against_the_plan_version_for_the_customer(
        self, gw: Harness
    ) -> None:
        await gw.preview()
        bodies = sorted(
            (c["body"] for c in gw.upstreams.of("rating")), key=lambda body: body["plan_id"]
        )
        by_plan = {body["plan_id"]: body for body in bodies}
        assert set(by_plan) == {PLAN_A, PLAN_B}
        a = by_plan[PLAN_A]
        assert (a["version"], a["customer_id"]) == (1, CUSTOMER)
        assert (a["period_start"], a["period_end"]) == (A_START.isoformat(), A_END.isoformat())
        assert a["usage"] == [
            {"meter_key": "calls", "group": {"region": "eu"}, "quantity": "1234.5"},
            {"meter_key": "calls", "group": {"region": "us"}, "quantity": "10"},
            {"meter_key": "storage", "group": {}, "quantity": "7"},
        ]
        assert by_plan[PLAN_B]["version"] == 3

    async def test_without_subscriptions_the_usage_is_zero(self, gw: Harness) -> None:
        gw.upstreams.subscriptions = {}
        response = await gw.preview()
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["usage_lines"] == []
        assert body["usage_total"] == usd("0")
        assert body["total_with_usage"] == body["total"] == usd("49")
        assert {c["service"] for c in gw.upstreams.calls} == {"invoicing", "subscriptions"}


class TestFailures:
    async def test_an_unknown_customer_is_invoicings_404(self, gw: Harness) -> None:
        gw.upstreams.fail["invoicing"] = 404
        response = await gw.preview()
        body = problem(response, 404, "customer_not_found")
        assert body["detail"] == f"no customer {CUSTOMER}"
        assert [c["service"] for c in gw.upstreams.calls] == ["invoicing"]

    async def test_a_4xx_of_a_later_service_passes_through(self, gw: Harness) -> None:
        gw.upstreams.fail["rating"] = 422
        response = await gw.preview()
        problem(response, 422, "unknown_meter_usage")

    @pytest.mark.parametrize("service", SERVICES)
    async def test_a_5xx_of_any_service_is_503(self, gw: Harness, service: str) -> None:
        gw.upstreams.fail[service] = 500
        response = await gw.preview()
        body = problem(response, 503, "service_unavailable")
        assert service in body["detail"]
        assert response.headers["retry-after"] == "1"

    async def test_a_service_too_slow_is_503(self, redis: Redis) -> None:
        async with running_gateway(redis, gateway_upstream_timeout_seconds=0.2) as gw:
            gw.upstreams.slow.add("metering")
            response = await gw.preview()
            body = problem(response, 503, "service_unavailable")
            assert "metering" in body["detail"]

    async def test_a_service_not_configured_is_503(self, redis: Redis) -> None:
        async with running_gateway(redis, pricing_service_url=None) as gw:
            problem(await gw.preview(), 503, "service_unavailable")

    async def test_without_credentials_is_401_and_nothing_is_asked(self, gw: Harness) -> None:
        response = await gw.client.get(f"/v1/customers/{CUSTOMER}/upcoming_invoice")
        problem(response, 401, "unauthenticated")
        assert gw.upstreams.calls == []


class TestDocumented:
    DOCUMENT = build_openapi(ROUTES)

    def test_is_a_gateway_operation_not_a_forwarded_route(self) -> None:
        assert ("GET", UPCOMING_INVOICE_PATH) in GATEWAY_OPERATIONS
        assert all(spec.path != UPCOMING_INVOICE_PATH for spec in ROUTES)

    def test_a_route_table_entry_for_it_is_refused(self) -> None:
        forwarded = RouteSpec(
            "GET",
            UPCOMING_INVOICE_PATH,
            service="invoicing",
            summary="Forwarded",
            request_model=None,
            query_model=None,
            response_model=UpcomingInvoice,
        )
        gateway = Gateway(
            GatewaySettings(),
            store=InMemoryApiKeyStore(),
            redis=Redis(),
            clock=lambda: NOW,
            routes=(*ROUTES, forwarded),
        )
        with pytest.raises(ValueError, match="gateway's own"):
            gateway.routes()

    def test_answers_the_invoice_with_usage(self) -> None:
        operation = self.DOCUMENT["paths"][UPCOMING_INVOICE_PATH]["get"]
        assert operation["operationId"] == "get_v1_customers_customer_id_upcoming_invoice"
        assert operation["tags"] == ["invoicing"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/UpcomingInvoiceWithUsage"}
        properties = self.DOCUMENT["components"]["schemas"]["UpcomingInvoiceWithUsage"][
            "properties"
        ]
        assert {"lines", "total", "usage_lines", "usage_total", "total_with_usage"} <= set(
            properties
        )
        assert {"401", "404", "422", "429", "503"} <= set(operation["responses"])
