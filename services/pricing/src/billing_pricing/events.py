"""Topics the pricing service produces and consumes.

Catalog changes carry the whole object (event-carried state transfer), with
amounts in the wire form (`MoneyWire`: pico-units as an integer string). The
key of a catalog event is the id of the object it is about; a price override's
is the customer's, so that one customer's events stay in order.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.events import EventData, Topic
from billing_common.ids import CustomerId, PlanId, ProductId
from billing_common.money import MoneyWire
from billing_metering.events import METER_ARCHIVED, METER_CREATED, METER_UPDATED
from billing_pricing.schemas import (
    CouponDuration,
    CouponId,
    DecimalText,
    PlanBody,
    PlanMigrationId,
    PriceOverrideId,
    WirePrice,
)


class ProductCreated(EventData):
    product_id: ProductId
    name: str
    description: str | None
    metadata: dict[str, str]
    created_at: AwareDatetime


class PlanPublished(EventData, PlanBody[MoneyWire]):
    """A plan version, whole: version 1 when the plan is created, then one per change.

    Subscriptions on earlier versions keep theirs until a migration moves them.
    """

    plan_id: PlanId
    code: str
    version: int = Field(ge=1)
    meter_keys: list[str] = Field(description="the meters the charges use, sorted")
    published_at: AwareDatetime


class PlanMigrationScheduled(EventData):
    """Subscriptions of `plan_id` on `from_version` move to `to_version` at `effective_at`."""

    migration_id: PlanMigrationId
    plan_id: PlanId
    plan_code: str
    from_version: int = Field(ge=1)
    to_version: int = Field(ge=1)
    effective_at: AwareDatetime
    scheduled_at: AwareDatetime


class PriceOverrideSet(EventData):
    """A customer's own price for one charge of a plan (of any version that has the charge);
    it replaces any earlier override of the same customer, plan and charge."""

    override_id: PriceOverrideId
    plan_id: PlanId
    customer_id: CustomerId
    charge_key: str
    meter_key: str
    currency: Currency
    price: WirePrice
    set_at: AwareDatetime


class CouponCreated(EventData):
    coupon_id: CouponId
    code: str
    name: str
    percent_off: DecimalText | None
    amount_off: MoneyWire | None
    duration: CouponDuration
    duration_periods: int | None
    plan_ids: list[PlanId]
    created_at: AwareDatetime


PRODUCT_CREATED = Topic(
    "pricing", "product_created", ProductCreated, "A product was created; carries it whole."
)
PLAN_PUBLISHED = Topic(
    "pricing",
    "plan_published",
    PlanPublished,
    "A plan version was published (a new plan, or a new version of one); carries the whole "
    "version and the meter keys its charges use.",
)
PLAN_MIGRATION_SCHEDULED = Topic(
    "pricing",
    "plan_migration_scheduled",
    PlanMigrationScheduled,
    "Subscriptions on one version of a plan are to move to another at a given instant.",
)
PRICE_OVERRIDE_SET = Topic(
    "pricing",
    "price_override_set",
    PriceOverrideSet,
    "A customer's own price for one charge of a plan was set (replacing any earlier one).",
)
COUPON_CREATED = Topic(
    "pricing", "coupon_created", CouponCreated, "A coupon was created; carries it whole."
)

PRODUCES: tuple[Topic[Any], ...] = (
    PRODUCT_CREATED,
    PLAN_PUBLISHED,
    PLAN_MIGRATION_SCHEDULED,
    PRICE_OVERRIDE_SET,
    COUPON_CREATED,
)

#: The meter definitions pricing projects, to refuse charges on unknown or archived meters.
CONSUMES: tuple[Topic[Any], ...] = (METER_CREATED, METER_UPDATED, METER_ARCHIVED)
