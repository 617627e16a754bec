"""What invoicing learns from other services, kept in its own schema.

- customers (customer_created/updated): name, currency, timezone, grace period, parent and
  `bill_to_parent`, where it is taxed;
- subscription revisions (subscription_created/updated): every revision, when it was made,
  its period, whether it bills (`revision_bills`) and the coupons it carries (each with
  the subscription period it starts at);
- coupons (pricing's coupon_created): their terms and the plans they are limited to;
- billing effects (billing_effects_recorded): each charge or credit, pending until one
  invoice claims it;
- period closes (the engine's period_closing): the revision each close saw;
- test clock attachments (the engine's test_clock_customer_attached): which customers live
  on a test clock, and its time (its advances, which also finalize drafts, are handled by
  `service.clock_advanced`).

Each handler runs inside the consumer's inbox transaction, so a redelivery changes nothing;
rows are keyed so that a replayed event (another id, same fact) changes nothing either.
"""

from __future__ import annotations

import re
from datetime import datetime

from billing_common import clock_projection
from billing_common.cycle import PeriodClosing, TestClockCustomerAttached
from billing_common.db import Connection
from billing_common.discounts import CouponTerms
from billing_common.events import CloudEvent
from billing_customers.events import CustomerCreated, CustomerUpdated
from billing_invoicing import repository
from billing_pricing.events import CouponCreated
from billing_subscriptions.events import (
    BillingEffectsRecorded,
    SubscriptionCreated,
    SubscriptionFields,
    SubscriptionUpdated,
)

_REGION = re.compile(r"[A-Z0-9]{1,3}")

#: Statuses in which a period's fee is billed when a period begins.
_BILLED_STATUSES = frozenset({"active", "past_due"})


def revision_bills(
    action: str, from_status: str | None, to_status: str, scheduled_plan_id: str | None
) -> bool:
    """Whether a revision made by `action` certainly recorded billing effects.

    Mirrors the subscriptions domain: a start or trial end into `active` charges the first
    period; a renewal into a billed status charges the next period unless the subscription
    was paused; pause credits and resume charges; an immediate plan change of an active
    subscription credits and charges. A cancellation's credit depends on the tenant's
    subscription policy (`prorate_on_cancel`), which invoicing does not know: it is not
    waited for (a late one stays pending and shows in the upcoming invoice).

    >>> revision_bills("renew", "active", "active", None), revision_bills("renew", "paused",
    ...     "paused", None), revision_bills("change_plan", "active", "active", "plan_x")
    (True, False, False)
    """
    if action in ("start", "end_trial"):
        return to_status == "active"
    if action == "renew":
        return from_status != "paused" and to_status in _BILLED_STATUSES
    if action in ("pause", "resume"):
        return True
    if action == "change_plan":
        return from_status == "active" and scheduled_plan_id is None
    return False


def customer_of(data: CustomerCreated | CustomerUpdated) -> repository.KnownCustomer:
    address = data.billing_address
    region = None
    if address is not None and address.state is not None:
        state = address.state.strip().upper()
        region = state if _REGION.fullmatch(state) else None
    return repository.KnownCustomer(
        customer_id=data.customer_id,
        name=data.name,
        currency=data.currency,
        timezone=data.timezone,
        invoice_grace_period_days=data.invoice_grace_period_days,
        parent_id=data.parent_id,
        bill_to_parent=data.bill_to_parent,
        country=None if address is None else address.country.upper(),
        region=region,
        tax_ids=tuple(f"{tax_id.type}:{tax_id.value}" for tax_id in data.tax_ids),
    )


async def customer_created(conn: Connection, event: CloudEvent[CustomerCreated]) -> None:
    data = event.data
    changed_at = data.updated_at or data.created_at
    await repository.upsert_customer(conn, event.tenantid, customer_of(data), changed_at)


async def customer_updated(conn: Connection, event: CloudEvent[CustomerUpdated]) -> None:
    """A new grace period or parent applies to invoices made from now on."""
    data = event.data
    await repository.upsert_customer(conn, event.tenantid, customer_of(data), data.updated_at)


def coupons_of(data: SubscriptionFields) -> tuple[repository.RevisionCoupon, ...]:
    return tuple(repository.RevisionCoupon(c.coupon_id, c.start_period) for c in data.coupons)


def coupon_of(data: CouponCreated) -> repository.KnownCoupon:
    return repository.KnownCoupon(
        coupon_id=data.coupon_id,
        terms=CouponTerms(
            data.code,
            data.percent_off,
            None if data.amount_off is None else data.amount_off.to_money(),
            data.duration,
            data.duration_periods,
        ),
        plan_ids=tuple(data.plan_ids),
    )


async def coupon_created(conn: Connection, event: CloudEvent[CouponCreated]) -> None:
    """Keep the coupon (coupons never change: a redelivery changes nothing)."""
    await repository.insert_coupon(conn, event.tenantid, coupon_of(event.data))


async def subscription_created(conn: Connection, event: CloudEvent[SubscriptionCreated]) -> None:
    data = event.data
    changed_at: datetime = min(data.created_at, data.billing_starts_at)
    await repository.insert_revision(
        conn,
        event.tenantid,
        repository.SubscriptionRevision(
            subscription_id=data.subscription_id,
            revision=data.revision,
            customer_id=data.customer_id,
            status=data.status.value,
            action="start",
            changed_at=changed_at,
            current_period_start=data.current_period_start,
            current_period_end=data.current_period_end,
            bills=revision_bills("start", None, data.status.value, data.scheduled_plan_id),
            coupons=coupons_of(data),
        ),
    )


async def subscription_updated(conn: Connection, event: CloudEvent[SubscriptionUpdated]) -> None:
    data = event.data
    transition = data.transition
    await repository.insert_revision(
        conn,
        event.tenantid,
        repository.SubscriptionRevision(
            subscription_id=data.subscription_id,
            revision=data.revision,
            customer_id=data.customer_id,
            status=data.status.value,
            action=transition.action,
            changed_at=transition.at,
            current_period_start=data.current_period_start,
            current_period_end=data.current_period_end,
            bills=revision_bills(
                transition.action,
                transition.from_status.value,
                transition.to_status.value,
                data.scheduled_plan_id,
            ),
            coupons=coupons_of(data),
        ),
    )


async def billing_effects_recorded(
    conn: Connection, event: CloudEvent[BillingEffectsRecorded]
) -> None:
    """Keep each effect pending; its (subscription, revision, position) is its identity."""
    data = event.data
    effects = [
        repository.RecordedEffect(
            subscription_id=data.subscription_id,
            revision=data.revision,
            position=position,
            customer_id=data.customer_id,
            reason=effect.reason.value,
            plan_id=effect.plan_id,
            plan_version=effect.plan_version,
            base_fee_timing=effect.base_fee_timing.value,
            amount=effect.amount.to_money(),
            service_start=effect.service_start,
            service_end=effect.service_end,
        )
        for position, effect in enumerate(data.effects)
    ]
    await repository.insert_effects(conn, event.tenantid, data.currency, effects)


async def period_closing(conn: Connection, event: CloudEvent[PeriodClosing]) -> None:
    data = event.data
    await repository.insert_period_closing(
        conn, event.tenantid, data.saga_id, data.subscription_id, data.subscription_revision
    )


async def test_clock_customer_attached(
    conn: Connection, event: CloudEvent[TestClockCustomerAttached]
) -> None:
    """The customer lives on the clock's time from now on."""
    data = event.data
    await clock_projection.advance_test_clock(
        conn, event.tenantid, data.test_clock_id, data.frozen_time
    )
    await clock_projection.attach_to_test_clock(
        conn, event.tenantid, data.customer_id, data.test_clock_id, data.attached_at
    )
