from __future__ import annotations

from datetime import timedelta

import pytest

from billing_common.db import Pool, transaction
from billing_common.errors import is_retryable
from billing_common.ids import CustomerId
from billing_invoicing import repository, service
from billing_invoicing.domain import InvoiceStatus
from billing_invoicing.events import INVOICE_FINALIZED
from billing_invoicing.service import ProjectionBehind

from .conftest import (
    APRIL,
    JUNE,
    MAY,
    NOW,
    TENANT,
    Clock,
    DatabaseOnlyRuntime,
    Subscription,
    apply,
    customer_created,
    outbox_events,
    pico,
)

pytestmark = pytest.mark.service

MID_APRIL = APRIL + timedelta(days=15)


async def bill(pool: Pool, invoicing: service.Invoicing, sub: Subscription, **kw: object) -> str:
    async with transaction(pool) as conn:
        event = sub.rated(**kw)  # type: ignore[arg-type]
        await invoicing.period_rated(conn, event)
        invoice_id = await repository.invoice_of_saga(conn, event.data.saga_id)
    assert invoice_id is not None
    return invoice_id


async def started(pool: Pool, *, grace_days: int = 0) -> Subscription:
    """A customer and its subscription, active since April 1st, its April fee recorded."""
    customer = CustomerId.new()
    sub = Subscription(customer)
    await apply(
        pool,
        customer_created(customer, grace_days=grace_days),
        sub.created(),
        sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
    )
    return sub


class TestPeriodInvoice:
    async def test_one_invoice_per_saga_even_when_redelivered(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = await started(invoicing_pool)
        first = await bill(invoicing_pool, invoicing, sub)
        again = await bill(invoicing_pool, invoicing, sub)
        assert again == first
        count = await invoicing_pool.fetchval("SELECT count(*) FROM invoices")
        assert count == 1
        finalized = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert len(finalized) == 1
        fact = finalized[0]
        assert fact["invoice_id"] == first
        assert fact["number"] == "INV-2026-000001"
        assert fact["saga_id"] == str(sub.rated().data.saga_id)
        assert fact["saga_ids"] == [fact["saga_id"]]
        assert fact["status"] == "open"
        assert [(line["kind"], line["amount"]["amount"]) for line in fact["lines"]] == [
            ("base_fee", pico("30")),
            ("usage", pico("3.5")),
        ]
        assert fact["total"] == {"amount": pico("33.5"), "currency": "USD"}
        assert fact["tax_total"] == {"amount": "0", "currency": "USD"}

    async def test_waits_for_the_subscription_and_its_effects(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        customer = CustomerId.new()
        sub = Subscription(customer)
        await apply(invoicing_pool, customer_created(customer))
        with pytest.raises(ProjectionBehind) as unknown:
            await bill(invoicing_pool, invoicing, sub)
        assert is_retryable(unknown.value)
        await apply(invoicing_pool, sub.created())
        # Revision 1 started an active subscription: it bills, and its effects are missing.
        with pytest.raises(ProjectionBehind, match="revision 1"):
            await bill(invoicing_pool, invoicing, sub)
        assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 0
        await apply(invoicing_pool, sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)))
        invoice_id = await bill(invoicing_pool, invoicing, sub)
        async with invoicing_pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, invoice_id)
        assert stored is not None
        assert str(stored.invoice.total) == "33.5 USD"

    async def test_waits_for_the_revision_the_close_saw(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = await started(invoicing_pool)
        upgrade = MID_APRIL
        await apply(invoicing_pool, sub.closing(APRIL, MAY, revision=2))
        with pytest.raises(ProjectionBehind, match="revision 2"):
            await bill(invoicing_pool, invoicing, sub)
        await apply(invoicing_pool, sub.updated(2, "change_plan", upgrade))
        with pytest.raises(ProjectionBehind, match="effects of revision 2"):
            await bill(invoicing_pool, invoicing, sub)
        await apply(
            invoicing_pool,
            sub.effects(
                2,
                upgrade,
                ("unused_time", "-15", upgrade, MAY),
                ("remaining_time", "30", upgrade, MAY),
            ),
        )
        invoice_id = await bill(invoicing_pool, invoicing, sub, usage=None)
        async with invoicing_pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, invoice_id)
        assert stored is not None
        kinds = [(line.kind.value, str(line.amount)) for line in stored.invoice.lines]
        assert kinds == [
            ("base_fee", "30 USD"),
            ("proration", "-15 USD"),
            ("proration", "30 USD"),
        ]

    async def test_a_revision_that_bills_nothing_is_not_waited_for(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = await started(invoicing_pool)
        await apply(
            invoicing_pool,
            sub.updated(2, "cancel_at_period_end", MID_APRIL),
            sub.closing(APRIL, MAY, revision=2),
        )
        invoice_id = await bill(invoicing_pool, invoicing, sub)
        assert invoice_id.startswith("inv_")

    async def test_each_effect_is_billed_once(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = await started(invoicing_pool)
        await apply(
            invoicing_pool,
            sub.updated(2, "renew", MAY, start=MAY, end=JUNE),
            sub.effects(2, MAY, ("period_fee", "30", MAY, JUNE)),
        )
        april = await bill(invoicing_pool, invoicing, sub)
        may = await bill(invoicing_pool, invoicing, sub, start=MAY, end=JUNE)
        assert april != may
        rows = await invoicing_pool.fetch(
            "SELECT revision, invoice_id FROM billing_effects ORDER BY revision"
        )
        assert [(row["revision"], row["invoice_id"]) for row in rows] == [(1, april), (2, may)]
        # The effects redelivered change nothing: still billed once, on the same invoices.
        await apply(invoicing_pool, sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)))
        assert await invoicing_pool.fetchval("SELECT count(*) FROM billing_effects") == 2
        numbers = [f["number"] for f in await outbox_events(invoicing_pool, INVOICE_FINALIZED)]
        assert numbers == ["INV-2026-000001", "INV-2026-000002"]

    async def test_a_zero_total_is_paid_at_once(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        customer = CustomerId.new()
        sub = Subscription(customer, fee="0")
        await apply(
            invoicing_pool,
            customer_created(customer),
            sub.created(),
            sub.effects(1, APRIL, ("period_fee", "0", APRIL, MAY)),
        )
        await bill(invoicing_pool, invoicing, sub, usage=None)
        [fact] = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert fact["status"] == "paid"
        assert fact["total"]["amount"] == "0"


class TestGracePeriod:
    async def test_a_draft_waits_out_its_grace_period(
        self,
        invoicing_pool: Pool,
        invoicing: service.Invoicing,
        runtime: DatabaseOnlyRuntime,
    ) -> None:
        sub = await started(invoicing_pool, grace_days=3)
        invoice_id = await bill(invoicing_pool, invoicing, sub)
        async with invoicing_pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, invoice_id)
        assert stored is not None
        assert stored.invoice.status is InvoiceStatus.DRAFT
        assert stored.finalize_after == NOW + timedelta(days=3)
        assert await service.finalize_due(runtime, now=NOW + timedelta(days=2)) == 0
        assert await outbox_events(invoicing_pool, INVOICE_FINALIZED) == []
        assert await service.finalize_due(runtime, now=NOW + timedelta(days=3)) == 1
        async with invoicing_pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, invoice_id)
        assert stored is not None
        assert stored.invoice.status is InvoiceStatus.FINALIZED
        assert stored.invoice.number == "INV-2026-000001"
        assert len(await outbox_events(invoicing_pool, INVOICE_FINALIZED)) == 1
        assert await service.finalize_due(runtime, now=NOW + timedelta(days=9)) == 0


class TestBillToParent:
    async def test_a_childs_period_joins_the_parents_open_draft(
        self, invoicing_pool: Pool, clock: Clock
    ) -> None:
        runtime = DatabaseOnlyRuntime(invoicing_pool, clock)
        invoicing = service.Invoicing(runtime.outbox, runtime.clock)
        parent, child = CustomerId.new(), CustomerId.new()
        parent_sub, child_sub = Subscription(parent), Subscription(child, fee="10")
        await apply(
            invoicing_pool,
            customer_created(parent, name="Parent Co", grace_days=2),
            customer_created(child, name="Kid Ltd", parent_id=parent, bill_to_parent=True),
            parent_sub.created(),
            parent_sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
            child_sub.created(),
            child_sub.effects(1, APRIL, ("period_fee", "10", APRIL, MAY)),
        )
        first = await bill(invoicing_pool, invoicing, parent_sub)
        second = await bill(invoicing_pool, invoicing, child_sub, usage="1")
        assert second == first
        async with invoicing_pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, first)
        assert stored is not None
        invoice = stored.invoice
        assert invoice.customer_id == parent
        labelled = [
            (line.description, None if line.child is None else line.child.customer_id)
            for line in invoice.lines
        ]
        assert labelled == [
            (f"Base fee, plan {parent_sub.plan_id}", None),
            ("Usage, api_calls", None),
            (f"Kid Ltd: Base fee, plan {child_sub.plan_id}", child),
            ("Kid Ltd: Usage, api_calls", child),
        ]
        assert str(invoice.total) == "44.5 USD"
        assert await service.finalize_due(runtime, now=NOW + timedelta(days=2)) == 1
        [fact] = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert fact["customer_id"] == parent
        assert sorted(fact["saga_ids"]) == sorted(
            str(s.rated().data.saga_id) for s in (parent_sub, child_sub)
        )
        assert [line["child_customer_id"] for line in fact["lines"]] == [None, None, child, child]
