"""What subscriptions learn from other services: the plan versions and coupons pricing
publishes, the customers (timezone, currency) customers creates and changes, and the test clocks the
engine attaches customers to and advances (the time such a customer lives on, see
`service.customer_now`).

Each handler runs inside the consumer's inbox transaction, so a redelivery changes nothing.
"""

from __future__ import annotations

import logging

from billing_common import clock_projection
from billing_common.cycle import TestClockAdvanced, TestClockCustomerAttached
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.money import Money
from billing_customers.events import CustomerCreated, CustomerUpdated
from billing_pricing.events import CouponCreated, PlanPublished
from billing_pricing.schemas import PerUnitPrice
from billing_subscriptions import repository
from billing_subscriptions.periods import Interval

logger = logging.getLogger(__name__)


def plan_version_of(data: PlanPublished) -> repository.PlanVersion:
    """The part of a published plan version a subscription needs.

    A version without a base fee costs nothing per period. Only per-unit usage prices
    are kept (by charge key): they are what the `any_price_increase` upgrade rule compares.
    """
    currency = data.currency
    base_fee = Money.zero(currency) if data.base_fee is None else data.base_fee.to_money()
    usage_prices = {
        charge.key: charge.price.unit_price.to_money()
        for charge in data.charges
        if isinstance(charge.price, PerUnitPrice)
    }
    return repository.PlanVersion(
        plan_id=data.plan_id,
        version=data.version,
        code=data.code,
        currency=currency,
        interval=Interval(data.interval.value),
        base_fee=base_fee,
        base_fee_timing=data.base_fee_timing,
        trial_days=data.trial_days,
        usage_prices=usage_prices,
        published_at=data.published_at,
    )


async def plan_published(conn: Connection, event: CloudEvent[PlanPublished]) -> None:
    """Keep the version; versions are immutable, so a late older one never hides a newer
    (the latest is the highest version known)."""
    await repository.insert_plan_version(conn, event.tenantid, plan_version_of(event.data))


def coupon_of(data: CouponCreated) -> repository.KnownCoupon:
    """What a subscription asking for the coupon is checked against (and announces)."""
    return repository.KnownCoupon(
        coupon_id=data.coupon_id,
        code=data.code,
        percent_off=data.percent_off,
        amount_off=None if data.amount_off is None else data.amount_off.to_money(),
        duration=data.duration.value,
        duration_periods=data.duration_periods,
        plan_ids=tuple(data.plan_ids),
        created_at=data.created_at,
    )


async def coupon_created(conn: Connection, event: CloudEvent[CouponCreated]) -> None:
    """Keep the coupon (coupons never change: a redelivery changes nothing)."""
    await repository.insert_coupon(conn, event.tenantid, coupon_of(event.data))


async def customer_created(conn: Connection, event: CloudEvent[CustomerCreated]) -> None:
    data = event.data
    customer = repository.KnownCustomer(data.customer_id, data.currency, data.timezone)
    changed_at = data.updated_at or data.created_at
    await repository.upsert_customer(conn, event.tenantid, customer, changed_at)


async def customer_updated(conn: Connection, event: CloudEvent[CustomerUpdated]) -> None:
    """A new timezone applies to subscriptions created from now on; existing ones keep the
    timezone their periods were cut in."""
    data = event.data
    customer = repository.KnownCustomer(data.customer_id, data.currency, data.timezone)
    await repository.upsert_customer(conn, event.tenantid, customer, data.updated_at)


async def test_clock_customer_attached(
    conn: Connection, event: CloudEvent[TestClockCustomerAttached]
) -> None:
    """The customer lives on the clock's time from now on (the clock's time at the
    attachment is kept unless a later one is known)."""
    data = event.data
    tenant_id = event.tenantid
    await clock_projection.advance_test_clock(conn, tenant_id, data.test_clock_id, data.frozen_time)
    if await repository.has_subscriptions(conn, tenant_id, data.customer_id):
        # The engine refuses to attach a customer it knows subscriptions of; one created
        # here before this event arrived keeps the real-clock instants it was made at.
        logger.warning(
            "customer %s was attached to test clock %s after subscribing",
            data.customer_id,
            data.test_clock_id,
        )
    await clock_projection.attach_to_test_clock(
        conn, tenant_id, data.customer_id, data.test_clock_id, data.attached_at
    )


async def test_clock_advanced(conn: Connection, event: CloudEvent[TestClockAdvanced]) -> None:
    """The clock's customers live at its new time (a late, earlier advance changes nothing)."""
    data = event.data
    await clock_projection.advance_test_clock(
        conn, event.tenantid, data.test_clock_id, data.frozen_time
    )
