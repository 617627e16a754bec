"""The route table of the public API: the one source of forwarding and of the OpenAPI document.

A service exposes an endpoint by adding a `RouteSpec` to its group below (and
to `ROUTES` if the group is new); the gateway then authenticates, rate-limits,
validates and forwards it, and `/openapi.json` and `/docs` describe it. The
service itself serves the same method and path (see its `api.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from billing_audit.schemas import AuditEventList, AuditEventQuery
from billing_customers.schemas import Customer, CustomerCreate, CustomerList, CustomerListQuery
from billing_metering.schemas import (
    CustomerUsageQuery,
    Meter,
    MeterCreate,
    MeterList,
    MeterListQuery,
    MeterUpdate,
    MeterUsageQuery,
    Usage,
)
from billing_pricing.schemas import (
    Coupon,
    CouponCreate,
    CouponList,
    CouponListQuery,
    Plan,
    PlanCreate,
    PlanList,
    PlanListQuery,
    PlanMigration,
    PlanMigrationCreate,
    PlanMigrationList,
    PlanVersionCreate,
    PriceOverride,
    PriceOverrideCreate,
    PriceOverrideList,
    PriceOverrideListQuery,
    Product,
    ProductCreate,
    ProductList,
    ProductListQuery,
)

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_PATH_PARAM = re.compile(r"{([a-z_][a-z0-9_]*)}")
_PATH = re.compile(r"^/v1(/([a-z0-9_]+|{[a-z_][a-z0-9_]*}))+$")


@dataclass(frozen=True)
class RouteSpec:
    """One operation of the public API and the service that owns it.

    `request_model` validates the JSON body (None: the route takes no body);
    `query_model` validates the query string (None: no query parameters);
    `idempotent`: the route honours `Idempotency-Key` (every POST does).
    """

    method: HttpMethod
    path: str
    service: str
    summary: str
    request_model: type[BaseModel] | None
    query_model: type[BaseModel] | None
    response_model: type[BaseModel]
    success_status: int = 200
    idempotent: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not _PATH.match(self.path):
            raise ValueError(f"{self.path!r} must be /v1 then snake_case or {{param}} parts")
        if self.method == "GET" and self.request_model is not None:
            raise ValueError(f"GET {self.path} cannot take a request body")

    @property
    def path_params(self) -> list[str]:
        """The names of the `{param}` parts of the path, in order."""
        return _PATH_PARAM.findall(self.path)

    @property
    def operation_id(self) -> str:
        """A stable id for the OpenAPI document: `get_v1_customers_customer_id`."""
        parts = [part.strip("{}") for part in self.path.strip("/").split("/")]
        return "_".join([self.method.lower(), *parts])


CUSTOMERS: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/customers",
        service="customers",
        summary="Create a customer",
        request_model=CustomerCreate,
        query_model=None,
        response_model=Customer,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/customers",
        service="customers",
        summary="List customers",
        description="Oldest first; pass `next_cursor` as `starting_after` for the next page.",
        request_model=None,
        query_model=CustomerListQuery,
        response_model=CustomerList,
    ),
    RouteSpec(
        "GET",
        "/v1/customers/{customer_id}",
        service="customers",
        summary="Retrieve a customer",
        request_model=None,
        query_model=None,
        response_model=Customer,
    ),
)

METERING: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/meters",
        service="metering",
        summary="Create a meter",
        description="What a meter counts: the event types it matches, its filters, its "
        "aggregation and value property, and its group-by dimensions.",
        request_model=MeterCreate,
        query_model=None,
        response_model=Meter,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/meters",
        service="metering",
        summary="List meters",
        request_model=None,
        query_model=MeterListQuery,
        response_model=MeterList,
    ),
    RouteSpec(
        "GET",
        "/v1/meters/{key}",
        service="metering",
        summary="Retrieve a meter",
        request_model=None,
        query_model=None,
        response_model=Meter,
    ),
    RouteSpec(
        "PATCH",
        "/v1/meters/{key}",
        service="metering",
        summary="Update a meter",
        description="Name, event types and filters; usage already recorded keeps the meter it "
        "was recorded with.",
        request_model=MeterUpdate,
        query_model=None,
        response_model=Meter,
    ),
    RouteSpec(
        "DELETE",
        "/v1/meters/{key}",
        service="metering",
        summary="Archive a meter",
        description="The meter counts no new events; its usage stays queryable. Refused "
        "(409 meter_in_use) while a plan charges on it.",
        request_model=None,
        query_model=None,
        response_model=Meter,
    ),
    RouteSpec(
        "GET",
        "/v1/meters/{key}/usage",
        service="metering",
        summary="Query a meter's usage",
        description="Values per customer, group and window over `[from, to)`.",
        request_model=None,
        query_model=MeterUsageQuery,
        response_model=Usage,
    ),
    RouteSpec(
        "GET",
        "/v1/customers/{customer_id}/usage",
        service="metering",
        summary="Query a customer's usage of a meter",
        description="The customer by our id or its external id; values per group and window.",
        request_model=None,
        query_model=CustomerUsageQuery,
        response_model=Usage,
    ),
)

_PAGES = "Oldest first; pass `next_cursor` as `starting_after` for the next page."

PRICING: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/products",
        service="pricing",
        summary="Create a product",
        request_model=ProductCreate,
        query_model=None,
        response_model=Product,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/products",
        service="pricing",
        summary="List products",
        description=_PAGES,
        request_model=None,
        query_model=ProductListQuery,
        response_model=ProductList,
    ),
    RouteSpec(
        "GET",
        "/v1/products/{product_id}",
        service="pricing",
        summary="Retrieve a product",
        request_model=None,
        query_model=None,
        response_model=Product,
    ),
    RouteSpec(
        "POST",
        "/v1/plans",
        service="pricing",
        summary="Create a plan",
        description="Publishes version 1. Every charge's meter must exist and not be archived; "
        "invalid prices are refused with a specific problem `code`.",
        request_model=PlanCreate,
        query_model=None,
        response_model=Plan,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/plans",
        service="pricing",
        summary="List plans",
        description="Each plan at its latest version. " + _PAGES,
        request_model=None,
        query_model=PlanListQuery,
        response_model=PlanList,
    ),
    RouteSpec(
        "GET",
        "/v1/plans/{plan_id}",
        service="pricing",
        summary="Retrieve a plan (its latest version)",
        request_model=None,
        query_model=None,
        response_model=Plan,
    ),
    RouteSpec(
        "POST",
        "/v1/plans/{plan_id}/versions",
        service="pricing",
        summary="Publish a new version of a plan",
        description="The body is the whole plan as the new version will be (the currency "
        "cannot change). Subscriptions keep their version until migrated.",
        request_model=PlanVersionCreate,
        query_model=None,
        response_model=Plan,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/plans/{plan_id}/versions/{version}",
        service="pricing",
        summary="Retrieve one version of a plan",
        request_model=None,
        query_model=None,
        response_model=Plan,
    ),
    RouteSpec(
        "POST",
        "/v1/plans/{plan_id}/migrations",
        service="pricing",
        summary="Migrate subscriptions from one plan version to another",
        request_model=PlanMigrationCreate,
        query_model=None,
        response_model=PlanMigration,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/plans/{plan_id}/migrations",
        service="pricing",
        summary="List a plan's migrations",
        request_model=None,
        query_model=None,
        response_model=PlanMigrationList,
    ),
    RouteSpec(
        "POST",
        "/v1/plans/{plan_id}/overrides",
        service="pricing",
        summary="Set a customer's own price for one charge of a plan",
        description="Replaces any earlier override of the same customer and charge.",
        request_model=PriceOverrideCreate,
        query_model=None,
        response_model=PriceOverride,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/plans/{plan_id}/overrides",
        service="pricing",
        summary="List a plan's price overrides",
        description=_PAGES,
        request_model=None,
        query_model=PriceOverrideListQuery,
        response_model=PriceOverrideList,
    ),
    RouteSpec(
        "POST",
        "/v1/coupons",
        service="pricing",
        summary="Create a coupon",
        request_model=CouponCreate,
        query_model=None,
        response_model=Coupon,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/coupons",
        service="pricing",
        summary="List coupons",
        description=_PAGES,
        request_model=None,
        query_model=CouponListQuery,
        response_model=CouponList,
    ),
    RouteSpec(
        "GET",
        "/v1/coupons/{coupon_id}",
        service="pricing",
        summary="Retrieve a coupon",
        request_model=None,
        query_model=None,
        response_model=Coupon,
    ),
)

AUDIT: tuple[RouteSpec, ...] = (
    RouteSpec(
        "GET",
        "/v1/audit_events",
        service="audit",
        summary="List audit events",
        description="Every state change, oldest first; filter by `subject` or `type`.",
        request_model=None,
        query_model=AuditEventQuery,
        response_model=AuditEventList,
    ),
)

ROUTES: tuple[RouteSpec, ...] = (*CUSTOMERS, *METERING, *PRICING, *AUDIT)
