"""A rated period that arrives before its projections is parked, not retried in place.

The crash test of the billing cycle (tests/e2e/test_billing_crash.py) found it: after a
restart, invoicing's one consumer met `period_rated` before the `subscription_updated` and
`billing_effects_recorded` the invoice needs; retrying in place held those back (one
sequence for all topics), so every such period was dead-lettered after its attempts, the
consumer stood still 3 s each time, and only the engine's re-emission of the close (30 s
later) billed it; enough of them in a row halt the consumer.
"""

from __future__ import annotations

import pytest

from billing_common.db import Pool, transaction
from billing_common.ids import CustomerId
from billing_invoicing import projections, repository, service

from .conftest import APRIL, MAY, TENANT, Subscription, apply, customer_created

pytestmark = pytest.mark.service


async def parked(pool: Pool) -> list[str]:
    rows = await pool.fetch("SELECT reason FROM parked_periods ORDER BY period_start")
    return [row["reason"] for row in rows]


async def test_a_period_rated_before_its_projections_is_parked_then_billed_when_they_arrive(
    invoicing_pool: Pool, invoicing: service.Invoicing
) -> None:
    customer = CustomerId.new()
    sub = Subscription(customer)
    await apply(invoicing_pool, customer_created(customer), sub.closing(APRIL, MAY, revision=1))
    rated = sub.rated()

    async with transaction(invoicing_pool) as conn:
        await invoicing.bill_or_park(conn, rated)  # does not raise: nothing to retry
    assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 0
    [reason] = await parked(invoicing_pool)
    assert reason == f"subscription {sub.id} is not known to invoicing yet"

    # The redelivered or re-emitted period is parked once, with the latest reason.
    async with transaction(invoicing_pool) as conn:
        await invoicing.bill_or_park(conn, sub.rated())
    assert len(await parked(invoicing_pool)) == 1

    created = invoicing.resuming(projections.subscription_created)
    effects = invoicing.resuming(projections.billing_effects_recorded)
    async with transaction(invoicing_pool) as conn:
        await created(conn, sub.created())
    # Revision 1 bills: its effects still lag, the period stays parked.
    assert len(await parked(invoicing_pool)) == 1
    assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 0

    async with transaction(invoicing_pool) as conn:
        await effects(conn, sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)))
    assert await parked(invoicing_pool) == []
    async with invoicing_pool.acquire() as conn:
        invoice_id = await repository.invoice_of_saga(conn, rated.data.saga_id)
        assert invoice_id is not None
        stored = await repository.get_invoice(conn, TENANT, invoice_id)
    assert stored is not None
    assert stored.invoice.number is not None, "finalized (no grace period)"
    assert str(stored.invoice.total) == "33.5 USD"

    # A late redelivery of the period finds its invoice and parks nothing.
    async with transaction(invoicing_pool) as conn:
        await invoicing.bill_or_park(conn, rated)
    assert await parked(invoicing_pool) == []
    assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 1


async def test_billing_a_period_unparks_it(
    invoicing_pool: Pool, invoicing: service.Invoicing
) -> None:
    """A parked period billed through a re-emission (not a projection) is not kept."""
    customer = CustomerId.new()
    sub = Subscription(customer)
    await apply(invoicing_pool, customer_created(customer), sub.created())
    async with transaction(invoicing_pool) as conn:
        await invoicing.bill_or_park(conn, sub.rated())
    assert len(await parked(invoicing_pool)) == 1
    await apply(invoicing_pool, sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)))
    assert len(await parked(invoicing_pool)) == 1, "plain projections do not resume"
    async with transaction(invoicing_pool) as conn:
        await invoicing.bill_or_park(conn, sub.rated())
    assert await parked(invoicing_pool) == []
    assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 1
