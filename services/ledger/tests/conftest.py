"""The `ledger` fixture: every behavioral test runs on each `Ledger` implementation.

`InProcessLedger` always runs. `TigerBeetleLedger` runs when `TIGERBEETLE_ADDRESSES`
points at a reachable cluster; the `tigerbeetle` wheel ships only the client
library, no server binary, so on a bare machine those runs are skipped.

The service fixtures below: a migrated schema (`ledger_pool`), the journaled
in-process ledger opened on it (`books`), the routes over HTTP (`client`), and
invoicing's facts built with invoicing's own event models.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.currency import Currency
from billing_common.db import (
    Pool,
    apply_migrations,
    create_pool,
    load_migrations,
)
from billing_common.events import CloudEvent, DataT, Topic, new_event
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.ids import CreditNoteId, CustomerId, InvoiceId, TenantId
from billing_common.money import Money
from billing_common.runtime import ServiceRuntime
from billing_invoicing.events import (
    CREDIT_NOTE_ISSUED,
    INVOICE_FINALIZED,
    INVOICE_VOIDED,
    CreditNoteIssued,
    CreditNoteLineFact,
    InvoiceFinalized,
    InvoiceLineFact,
    InvoiceVoided,
)
from billing_ledger.accounts import AccountKind, ChartOfAccounts, normal_balance_of
from billing_ledger.api import ledger_routes
from billing_ledger.app import definition
from billing_ledger.books import Books, JournaledLedger
from billing_ledger.ledger import InProcessLedger, Ledger
from billing_ledger.tigerbeetle_ledger import TIGERBEETLE_ADDRESSES, TigerBeetleLedger, reachable

NO_SERVER = (
    f"{TIGERBEETLE_ADDRESSES} is not set: the tigerbeetle wheel ships only the client "
    "library (no server binary), so there is no TigerBeetle to run this suite against"
)


@pytest.fixture(params=["in_process", "tigerbeetle"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    if request.param == "in_process":
        yield InProcessLedger()
        return
    addresses = os.environ.get(TIGERBEETLE_ADDRESSES, "").strip()
    if not addresses:
        pytest.skip(NO_SERVER)
    if not await reachable(addresses):
        pytest.skip(f"{TIGERBEETLE_ADDRESSES}={addresses}, but no TigerBeetle answers there")
    async with TigerBeetleLedger.connect(addresses) as tigerbeetle_ledger:
        yield tigerbeetle_ledger


# -- the service: a migrated schema, the journaled ledger, invoicing's facts --------------------

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
USD = Currency.of("USD")
#: The tenant of the service tests (each test has a schema of its own).
TENANT = TenantId.new()


def usd(amount: str) -> Money:
    return Money.parse(amount, USD)


@pytest.fixture
async def ledger_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_ledger"))
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def books(ledger_pool: Pool) -> JournaledLedger:
    """The in-process ledger as the service opens it: rebuilt from the (empty) journal."""
    return await JournaledLedger.load(ledger_pool)


def line(
    kind: Any, amount: str, *, discount: str = "0", tax: str = "0", line_id: str | None = None
) -> InvoiceLineFact:
    return InvoiceLineFact(
        line_id=line_id or f"li_{uuid.uuid4().hex[:12]}",
        kind=kind,
        description=f"{kind} line",
        amount=usd(amount).to_wire(),
        discount=usd(discount).to_wire(),
        tax=usd(tax).to_wire(),
    )


def invoice_finalized(
    customer: CustomerId, *lines: InvoiceLineFact, invoice_id: InvoiceId | None = None
) -> CloudEvent[InvoiceFinalized]:
    """An `invoice_finalized` fact whose totals are its lines' sums, as invoicing builds it."""

    def total(field: str) -> Money:
        return sum((getattr(item, field).to_money() for item in lines), usd("0"))

    subtotal, discount, tax = total("amount"), total("discount"), total("tax")
    grand_total = subtotal - discount + tax
    data = InvoiceFinalized(
        invoice_id=invoice_id or InvoiceId.new(),
        number="INV-0001",
        customer_id=customer,
        subscription_id=None,
        saga_id=None,
        currency=USD,
        period_start=None,
        period_end=None,
        lines=list(lines),
        subtotal=subtotal.to_wire(),
        discount_total=discount.to_wire(),
        tax_total=tax.to_wire(),
        total=grand_total.to_wire(),
        status="open" if grand_total.is_positive() else "paid",
        finalized_at=NOW,
    )
    return _event(INVOICE_FINALIZED, data, customer)


def credit_note(
    invoice: CloudEvent[InvoiceFinalized], outcome: Any, *lines: tuple[str, str, str]
) -> CloudEvent[CreditNoteIssued]:
    """A credit note against `invoice`: (line id, amount, tax) per credited line."""
    facts = [
        CreditNoteLineFact(line_id=line_id, amount=usd(amount).to_wire(), tax=usd(tax).to_wire())
        for line_id, amount, tax in lines
    ]
    amount = sum((usd(a) for _, a, _ in lines), usd("0"))
    tax = sum((usd(t) for _, _, t in lines), usd("0"))
    data = CreditNoteIssued(
        credit_note_id=CreditNoteId.new(),
        invoice_id=invoice.data.invoice_id,
        customer_id=invoice.data.customer_id,
        currency=USD,
        reason="other",
        outcome=outcome,
        lines=facts,
        amount=amount.to_wire(),
        tax=tax.to_wire(),
        total=(amount + tax).to_wire(),
        issued_at=NOW,
    )
    return _event(CREDIT_NOTE_ISSUED, data, CustomerId(invoice.data.customer_id))


def voided(
    invoice: CloudEvent[InvoiceFinalized], *, number: str | None = "INV-0001"
) -> CloudEvent[InvoiceVoided]:
    data = InvoiceVoided(
        invoice_id=invoice.data.invoice_id,
        number=number,
        customer_id=invoice.data.customer_id,
        currency=USD,
        total=invoice.data.total,
        voided_at=NOW,
    )
    return _event(INVOICE_VOIDED, data, CustomerId(invoice.data.customer_id))


def _event(topic: Topic[DataT], data: DataT, customer: str) -> CloudEvent[DataT]:
    """An envelope as the producer's outbox writes it, parsed back as the consumer reads it."""
    event = new_event(
        topic,
        data,
        event_id=uuid.uuid4(),
        source="invoicing",
        subject=customer,
        tenant_id=TENANT,
        time=NOW,
    )
    return topic.parse(event.to_bytes())


async def balance(books: Books, kind: AccountKind, customer: CustomerId | None = None) -> Money:
    """An account's posted balance on its normal side (zero when it does not exist)."""
    account_id = ChartOfAccounts(TENANT, USD).account_id(kind, customer)
    found = await books.ledger.lookup_accounts([account_id])
    return Money(normal_balance_of(found[0]) if found else 0, USD)


class DatabaseOnlyRuntime(ServiceRuntime):
    """The runtime with only its database open: what the routes use, without a broker."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(definition, ServiceSettings(tigerbeetle_addresses=None), clock=lambda: NOW)
        self._pool = pool
        self.health_state.ready = True


@pytest.fixture
async def client(ledger_pool: Pool, books: JournaledLedger) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant `TENANT`)."""
    runtime = DatabaseOnlyRuntime(ledger_pool)
    app = Starlette(
        routes=list(ledger_routes(runtime, lambda: books)),
        exception_handlers=exception_handlers(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ledger", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http
