from __future__ import annotations

import pytest

from billing_common.db import Pool, transaction
from billing_common.ids import CustomerId
from billing_common.tax import NoTax
from billing_invoicing import repository, service
from billing_invoicing.domain import InvalidInvoiceTransition, InvoiceNotEditable, InvoiceStatus
from billing_invoicing.events import INVOICE_FINALIZED
from billing_invoicing.schemas import OneOffLineCreate

from .conftest import APRIL, MAY, NOW, TENANT, Subscription, apply, customer_created, outbox_events

pytestmark = pytest.mark.service


class Boom(Exception):
    pass


async def drafts(pool: Pool, invoicing: service.Invoicing, count: int) -> list[str]:
    """`count` drafts (a grace period keeps them open), one per customer."""
    ids: list[str] = []
    for _ in range(count):
        customer = CustomerId.new()
        sub = Subscription(customer)
        await apply(
            pool,
            customer_created(customer, grace_days=7),
            sub.created(),
            sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
        )
        async with transaction(pool) as conn:
            stored = await service.bill_period(
                conn, invoicing.outbox, TENANT, sub.rated().data, now=NOW, tax=NoTax()
            )
        ids.append(stored.invoice.invoice_id)
    return ids


class TestNumbering:
    async def test_gapless_under_a_rolled_back_finalize(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        first, second, third = await drafts(invoicing_pool, invoicing, 3)
        taken: list[str | None] = []

        async def finalize_then_fail() -> None:
            async with transaction(invoicing_pool) as conn:
                stored = await service.finalize_invoice(
                    conn, invoicing.outbox, TENANT, first, now=NOW
                )
                taken.append(stored.invoice.number)
                raise Boom  # the transaction rolls back: number, status and event with it

        with pytest.raises(Boom):
            await finalize_then_fail()
        assert taken == ["INV-2026-000001"]
        async with invoicing_pool.acquire() as conn:
            rolled_back = await repository.get_invoice(conn, TENANT, first)
        assert rolled_back is not None
        assert rolled_back.invoice.status is InvoiceStatus.DRAFT
        assert rolled_back.invoice.number is None
        assert await outbox_events(invoicing_pool, INVOICE_FINALIZED) == []
        numbers = []
        for invoice_id in (second, first, third):
            async with transaction(invoicing_pool) as conn:
                stored = await service.finalize_invoice(
                    conn, invoicing.outbox, TENANT, invoice_id, now=NOW
                )
            numbers.append(stored.invoice.number)
        assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
        facts = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert [f["number"] for f in facts] == numbers

    async def test_a_finalized_invoice_is_immutable(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        [invoice_id] = await drafts(invoicing_pool, invoicing, 1)
        async with transaction(invoicing_pool) as conn:
            await service.finalize_invoice(conn, invoicing.outbox, TENANT, invoice_id, now=NOW)
        with pytest.raises(InvalidInvoiceTransition):
            async with transaction(invoicing_pool) as conn:
                await service.finalize_invoice(conn, invoicing.outbox, TENANT, invoice_id, now=NOW)
        line = OneOffLineCreate.model_validate(
            {"description": "Setup", "unit_amount": {"amount": "5", "currency": "USD"}}
        )
        async with transaction(invoicing_pool) as conn:
            with pytest.raises(InvoiceNotEditable):
                await service.add_one_off_line(conn, TENANT, invoice_id, line, now=NOW, tax=NoTax())
