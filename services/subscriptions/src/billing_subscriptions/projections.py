"""What subscriptions learn from other services: the plan versions pricing publishes and
the customers (timezone, currency) customers creates and changes.

Each handler runs inside the consumer's inbox transaction, so a redelivery changes nothing.
"""

from __future__ import annotations

from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.money import Money
from billing_customers.events import CustomerCreated, CustomerUpdated
from billing_pricing.events import PlanPublished
from billing_pricing.schemas import PerUnitPrice
from billing_subscriptions import repository
from billing_subscriptions.periods import Interval


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
