"""The route table of the public API: the one source of forwarding and of the OpenAPI document.

A service exposes an endpoint by adding a `RouteSpec` to its group below (and
to `ROUTES` if the group is new); the gateway then authenticates, rate-limits,
validates and forwards it, and `/openapi.json` and `/docs` describe it. The
service itself serves the same method and path (see its `api.py`). The operations the
gateway serves itself (`openapi.GATEWAY_OPERATIONS`) are not in this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from billing_audit.schemas import AuditEventList, AuditEventQuery
from billing_customers.schemas import (
    Customer,
    CustomerChildrenQuery,
    CustomerCreate,
    CustomerList,
    CustomerListQuery,
    CustomerUpdate,
)
from billing_engine.schemas import (
    BillingRun,
    BillingRunList,
    BillingRunListQuery,
    TestClock,
    TestClockAdvance,
    TestClockAttach,
    TestClockCreate,
    TestClockList,
    TestClockListQuery,
)
from billing_invoicing.schemas import (
    CreditNoteCreate,
    CreditNoteList,
    CreditNoteListQuery,
    CreditNoteResource,
    InvoiceList,
    InvoiceListQuery,
    InvoiceResource,
    OneOffLineCreate,
    TaxRates,
)
from billing_ledger.schemas import (
    CustomerBalance,
    LedgerAccount,
    LedgerAccountBalance,
    LedgerAccountList,
    LedgerAccountListQuery,
    LedgerTrialBalance,
    TrialBalanceQuery,
)
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
from billing_rating.schemas import RatingPreview, RatingPreviewRequest
from billing_subscriptions.policy import SubscriptionPolicy
from billing_subscriptions.schemas import (
    Subscription,
    SubscriptionCancel,
    SubscriptionChangePlan,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionListQuery,
    SubscriptionPolicyResource,
)

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_PATH_PARAM = re.compile(r"{([a-z_][a-z0-9_]*)}")
_PATH = re.compile(r"^/v1(/([a-z0-9_]+|{[a-z_][a-z0-9_]*}))+$")


@dataclass(frozen=True)
class RouteSpec:
    """One operation of the public API and the service that owns it.

    `request_model` validates the JSON body (None: the route takes no body);
    `query_model` validates the query string (None: no query parameters);
    `idempotent`: the route honours `Idempotency-Key` (every POST does);
    `response_media_type`: what a success carries, `application/json` (the response model)
    or a document rendered from it (`application/pdf`, `text/html`), passed through as is.
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
    response_media_type: str = "application/json"

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
        description="Oldest first; filter by `external_id` or by `parent_id` (a customer's "
        "children); pass `next_cursor` as `starting_after` for the next page.",
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
    RouteSpec(
        "PATCH",
        "/v1/customers/{customer_id}",
        service="customers",
        summary="Update a customer",
        description="Only the fields sent change; email, billing_address and parent_id accept "
        "null to clear. currency never changes.",
        request_model=CustomerUpdate,
        query_model=None,
        response_model=Customer,
    ),
    RouteSpec(
        "GET",
        "/v1/customers/{customer_id}/children",
        service="customers",
        summary="List a customer's children",
        description="Oldest first; 404 if the customer does not exist.",
        request_model=None,
        query_model=CustomerChildrenQuery,
        response_model=CustomerList,
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

RATING: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/rating/preview",
        service="rating",
        summary="Preview the rating of usage against a plan",
        description="Rates the usage you describe against a published plan version (the latest "
        "when `version` is omitted), with the customer's price overrides when `customer_id` is "
        "given, as the billing cycle would: a line per charge and group, plus a charge's minimum "
        "true-up, with exact amounts not yet rounded to the minor unit. The base fee and the "
        "plan's minimum commitment are not included.",
        request_model=RatingPreviewRequest,
        query_model=None,
        response_model=RatingPreview,
        idempotent=True,
    ),
)

SUBSCRIPTIONS: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/subscriptions",
        service="subscriptions",
        summary="Create a subscription",
        description="Trialing, or active with its first period charged; plan_version defaults "
        "to the latest.",
        request_model=SubscriptionCreate,
        query_model=None,
        response_model=Subscription,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/subscriptions",
        service="subscriptions",
        summary="List subscriptions",
        description=_PAGES,
        request_model=None,
        query_model=SubscriptionListQuery,
        response_model=SubscriptionList,
    ),
    RouteSpec(
        "GET",
        "/v1/subscriptions/{subscription_id}",
        service="subscriptions",
        summary="Retrieve a subscription",
        request_model=None,
        query_model=None,
        response_model=Subscription,
    ),
    RouteSpec(
        "POST",
        "/v1/subscriptions/{subscription_id}/cancel",
        service="subscriptions",
        summary="Cancel a subscription",
        description="`at`: now (credits the unused rest, per policy) or period_end.",
        request_model=SubscriptionCancel,
        query_model=None,
        response_model=Subscription,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/subscriptions/{subscription_id}/pause",
        service="subscriptions",
        summary="Pause a subscription",
        description="Credits the unused rest of the current period.",
        request_model=None,
        query_model=None,
        response_model=Subscription,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/subscriptions/{subscription_id}/resume",
        service="subscriptions",
        summary="Resume a paused subscription",
        description="Charges the rest of the current period.",
        request_model=None,
        query_model=None,
        response_model=Subscription,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/subscriptions/{subscription_id}/change_plan",
        service="subscriptions",
        summary="Change a subscription's plan",
        description="Upgrades apply now (prorated); downgrades as the policy says, unless "
        "`when` is given.",
        request_model=SubscriptionChangePlan,
        query_model=None,
        response_model=Subscription,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/subscription_policy",
        service="subscriptions",
        summary="Retrieve the subscription policy",
        request_model=None,
        query_model=None,
        response_model=SubscriptionPolicyResource,
    ),
    RouteSpec(
        "PUT",
        "/v1/subscription_policy",
        service="subscriptions",
        summary="Replace the subscription policy",
        description="Fields left out take their defaults.",
        request_model=SubscriptionPolicy,
        query_model=None,
        response_model=SubscriptionPolicyResource,
    ),
)

ENGINE: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/test_clocks",
        service="engine",
        summary="Create a test clock",
        description="A clock frozen at `frozen_time` for the customers attached to it.",
        request_model=TestClockCreate,
        query_model=None,
        response_model=TestClock,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/test_clocks",
        service="engine",
        summary="List test clocks",
        description=_PAGES,
        request_model=None,
        query_model=TestClockListQuery,
        response_model=TestClockList,
    ),
    RouteSpec(
        "GET",
        "/v1/test_clocks/{test_clock_id}",
        service="engine",
        summary="Retrieve a test clock",
        description="`status` is ready once every period its advances passed is closed, "
        "invoiced and renewed.",
        request_model=None,
        query_model=None,
        response_model=TestClock,
    ),
    RouteSpec(
        "POST",
        "/v1/test_clocks/{test_clock_id}/customers",
        service="engine",
        summary="Attach a customer to a test clock",
        description="Before the customer subscribes; its subscriptions then follow the clock.",
        request_model=TestClockAttach,
        query_model=None,
        response_model=TestClock,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/test_clocks/{test_clock_id}/advance",
        service="engine",
        summary="Advance a test clock",
        description="`to` must be later than `frozen_time`; every period that ends by then "
        "closes, in order.",
        request_model=TestClockAdvance,
        query_model=None,
        response_model=TestClock,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/billing_runs",
        service="engine",
        summary="List billing runs (period closes)",
        description="By period end; pass `next_cursor` as `starting_after` for the next page.",
        request_model=None,
        query_model=BillingRunListQuery,
        response_model=BillingRunList,
    ),
    RouteSpec(
        "GET",
        "/v1/billing_runs/{saga_id}",
        service="engine",
        summary="Retrieve a billing run",
        request_model=None,
        query_model=None,
        response_model=BillingRun,
    ),
)

INVOICING: tuple[RouteSpec, ...] = (
    RouteSpec(
        "GET",
        "/v1/invoices",
        service="invoicing",
        summary="List invoices",
        description="Filter by `customer` and `status`. " + _PAGES,
        request_model=None,
        query_model=InvoiceListQuery,
        response_model=InvoiceList,
    ),
    RouteSpec(
        "GET",
        "/v1/invoices/{invoice_id}",
        service="invoicing",
        summary="Retrieve an invoice",
        description="Every line with how it was computed (tiers, proration period, discount).",
        request_model=None,
        query_model=None,
        response_model=InvoiceResource,
    ),
    RouteSpec(
        "POST",
        "/v1/invoices/{invoice_id}/finalize",
        service="invoicing",
        summary="Finalize a draft invoice now",
        description="Numbers it (gapless per tenant and year) and makes it immutable.",
        request_model=None,
        query_model=None,
        response_model=InvoiceResource,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/invoices/{invoice_id}/void",
        service="invoicing",
        summary="Void a draft or finalized invoice",
        request_model=None,
        query_model=None,
        response_model=InvoiceResource,
        idempotent=True,
    ),
    RouteSpec(
        "POST",
        "/v1/invoices/{invoice_id}/lines",
        service="invoicing",
        summary="Add a one-off line to a draft",
        request_model=OneOffLineCreate,
        query_model=None,
        response_model=InvoiceResource,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/invoices/{invoice_id}/pdf",
        service="invoicing",
        summary="A finalized invoice as PDF",
        request_model=None,
        query_model=None,
        response_model=InvoiceResource,
        response_media_type="application/pdf",
    ),
    RouteSpec(
        "GET",
        "/v1/invoices/{invoice_id}/html",
        service="invoicing",
        summary="A finalized invoice as HTML",
        request_model=None,
        query_model=None,
        response_model=InvoiceResource,
        response_media_type="text/html",
    ),
    RouteSpec(
        "GET",
        "/v1/tax_rates",
        service="invoicing",
        summary="The tenant's tax rates",
        request_model=None,
        query_model=None,
        response_model=TaxRates,
    ),
    RouteSpec(
        "PUT",
        "/v1/tax_rates",
        service="invoicing",
        summary="Replace the tenant's tax rates",
        description="By country, or a region of it (a fraction: 0.2 is 20 %). A customer is "
        "taxed at its billing address's region's rate, else its country's; a place not in the "
        "table is not taxed. Invoices already finalized keep their tax.",
        request_model=TaxRates,
        query_model=None,
        response_model=TaxRates,
    ),
    RouteSpec(
        "POST",
        "/v1/credit_notes",
        service="invoicing",
        summary="Issue a credit note against an invoice",
        description="Whole lines or amounts, never more than remains creditable; a refund "
        "request or customer credit.",
        request_model=CreditNoteCreate,
        query_model=None,
        response_model=CreditNoteResource,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/credit_notes",
        service="invoicing",
        summary="List credit notes",
        description=_PAGES,
        request_model=None,
        query_model=CreditNoteListQuery,
        response_model=CreditNoteList,
    ),
)

LEDGER: tuple[RouteSpec, ...] = (
    RouteSpec(
        "GET",
        "/v1/ledger/accounts",
        service="ledger",
        summary="List ledger accounts with their balances",
        description="In id order; filter by `customer_id` or `currency`. Account ids are u128 "
        "decimal strings. " + _PAGES,
        request_model=None,
        query_model=LedgerAccountListQuery,
        response_model=LedgerAccountList,
    ),
    RouteSpec(
        "GET",
        "/v1/ledger/accounts/{account_id}",
        service="ledger",
        summary="Retrieve a ledger account",
        description="404 for an unknown id.",
        request_model=None,
        query_model=None,
        response_model=LedgerAccount,
    ),
    RouteSpec(
        "GET",
        "/v1/ledger/accounts/{account_id}/balance",
        service="ledger",
        summary="A ledger account's balance",
        description="Debits and credits posted and pending, and the balance on its normal side.",
        request_model=None,
        query_model=None,
        response_model=LedgerAccountBalance,
    ),
    RouteSpec(
        "GET",
        "/v1/ledger/trial_balance",
        service="ledger",
        summary="Trial balance",
        description="Per currency: total debits equal total credits; by account kind.",
        request_model=None,
        query_model=TrialBalanceQuery,
        response_model=LedgerTrialBalance,
    ),
    RouteSpec(
        "GET",
        "/v1/customers/{customer_id}/balance",
        service="ledger",
        summary="A customer's receivable and credit balance",
        description="Per currency; empty until the customer's first invoice is posted.",
        request_model=None,
        query_model=None,
        response_model=CustomerBalance,
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

ROUTES: tuple[RouteSpec, ...] = (
    *CUSTOMERS,
    *METERING,
    *PRICING,
    *RATING,
    *SUBSCRIPTIONS,
    *ENGINE,
    *INVOICING,
    *LEDGER,
    *AUDIT,
)
