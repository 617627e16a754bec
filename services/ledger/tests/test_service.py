"""Posting invoicing's facts: the handlers called with parsed CloudEvents, in a transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from billing_common.consumer import Handler
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent
from billing_common.ids import CustomerId, InvoiceId
from billing_invoicing.events import (
    CREDIT_NOTE_ISSUED,
    INVOICE_FINALIZED,
    INVOICE_VOIDED,
    InvoiceFinalized,
)
from billing_ledger import service
from billing_ledger.accounts import AccountKind
from billing_ledger.books import JournaledLedger
from billing_ledger.domain import FactDoesNotAddUp
from billing_ledger.handlers import LedgerHandlers
from billing_ledger.ledger import ChainOutcome
from billing_ledger.postings import trial_balance

from .conftest import (
    balance,
    credit_note,
    invoice_finalized,
    line,
    usd,
    voided,
)

pytestmark = pytest.mark.service

AR = AccountKind.ACCOUNTS_RECEIVABLE
CREDIT = AccountKind.CUSTOMER_CREDIT
REVENUE = AccountKind.REVENUE
TAX = AccountKind.TAX_PAYABLE
CASH = AccountKind.CASH


def sample_invoice(customer: CustomerId) -> CloudEvent[InvoiceFinalized]:
    """100 USD of usage less 10 of discount, taxed 18; a 49 base fee taxed 9.80; a 5 USD
    proration credit: 161.80 in all."""
    return invoice_finalized(
        customer,
        line("usage", "100", discount="10", tax="18", line_id="li_usage"),
        line("base_fee", "49", tax="9.80", line_id="li_base"),
        line("proration", "-5", line_id="li_proration"),
    )


async def post(pool: Pool, books: JournaledLedger, *events: CloudEvent[Any]) -> None:
    """Each event through its handler, each in its own transaction (as the inbox runs them)."""
    handlers = LedgerHandlers(books)
    by_topic: dict[str, Handler] = {
        INVOICE_FINALIZED.name: handlers.invoice_finalized,
        INVOICE_VOIDED.name: handlers.invoice_voided,
        CREDIT_NOTE_ISSUED.name: handlers.credit_note_issued,
    }
    for event in events:
        async with transaction(pool) as conn:
            await by_topic[event.type](conn, event)


async def assert_balanced(pool: Pool, books: JournaledLedger) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id FROM accounts")
    accounts = await books.ledger.lookup_accounts([int(row["id"]) for row in rows])
    assert len(accounts) == len(rows)
    report = trial_balance(accounts)
    assert report.balanced
    assert all(totals.net == 0 for totals in report.totals.values())


class TestInvoiceFinalized:
    async def test_posts_balanced_transfers_and_receivable_grows_by_the_total(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        event = sample_invoice(customer)
        assert event.data.total.to_money() == usd("161.80")
        async with transaction(ledger_pool) as conn:
            outcome = await service.post_invoice_finalized(books, conn, event)
        assert outcome is ChainOutcome.APPLIED
        assert await balance(books, AR, customer) == usd("161.80")
        assert await balance(books, REVENUE) == usd("134")  # 90 + 49 - 5
        assert await balance(books, TAX) == usd("27.80")
        assert await balance(books, CREDIT, customer) == usd("0")
        journal = await ledger_pool.fetch("SELECT amount, code FROM journal ORDER BY position")
        # Positive legs first (usage, base fee, two taxes), then the proration credit.
        assert [(int(row["amount"]), row["code"]) for row in journal] == [
            (usd("90").amount, 10),
            (usd("49").amount, 10),
            (usd("18").amount, 12),
            (usd("9.80").amount, 12),
            (usd("5").amount, 10),
        ]
        await assert_balanced(ledger_pool, books)

    async def test_creates_the_chart_and_the_customers_accounts_once(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        first, second = CustomerId.new(), CustomerId.new()
        await post(ledger_pool, books, sample_invoice(first), sample_invoice(second))
        rows = await ledger_pool.fetch("SELECT kind, customer_id FROM accounts ORDER BY kind")
        kinds = sorted((row["kind"], row["customer_id"]) for row in rows)
        assert kinds == sorted(
            [(kind.value, None) for kind in (CASH, REVENUE, TAX, AccountKind.DEFERRED_REVENUE)]
            + [(kind.value, c) for kind in (AR, CREDIT) for c in (first, second)]
        )

    async def test_a_redelivered_fact_posts_nothing_twice(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        event = sample_invoice(customer)
        async with transaction(ledger_pool) as conn:
            assert await service.post_invoice_finalized(books, conn, event) is (
                ChainOutcome.APPLIED
            )
        # Delivered again (as after a crash between the ledger write and the inbox commit):
        # the same transfer ids, which the ledger answers `exists`.
        async with transaction(ledger_pool) as conn:
            assert await service.post_invoice_finalized(books, conn, event) is (
                ChainOutcome.ALREADY_APPLIED
            )
        assert await balance(books, AR, customer) == usd("161.80")
        assert await ledger_pool.fetchval("SELECT count(*) FROM journal") == 5
        assert await ledger_pool.fetchval("SELECT seq FROM journal_head") == 1

    async def test_a_transaction_that_rolls_back_after_the_ledger_write_is_posted_once(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        event = sample_invoice(customer)

        async def post_then_fail() -> None:
            async with transaction(ledger_pool) as conn:
                await service.post_invoice_finalized(books, conn, event)
                raise RuntimeError("inbox commit failed")

        with pytest.raises(RuntimeError, match="inbox commit failed"):
            await post_then_fail()
        # Memory moved, the database did not: the journal is empty.
        assert await ledger_pool.fetchval("SELECT count(*) FROM journal") == 0
        # The redelivery finds memory ahead of the journal, rebuilds, and posts once.
        async with transaction(ledger_pool) as conn:
            outcome = await service.post_invoice_finalized(books, conn, event)
        assert outcome is ChainOutcome.APPLIED
        assert await balance(books, AR, customer) == usd("161.80")
        restarted = await JournaledLedger.load(ledger_pool)
        assert await balance(restarted, AR, customer) == usd("161.80")

    async def test_a_fact_whose_lines_do_not_add_up_is_refused(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        event = sample_invoice(CustomerId.new())
        wrong = event.model_copy(
            update={"data": event.data.model_copy(update={"total": usd("1").to_wire()})}
        )
        with pytest.raises(FactDoesNotAddUp, match="total"):
            async with transaction(ledger_pool) as conn:
                await service.post_invoice_finalized(books, conn, wrong)
        assert await ledger_pool.fetchval("SELECT count(*) FROM journal") == 0


class TestCreditNoteIssued:
    async def test_to_the_customers_balance_reverses_revenue_and_tax_into_credit(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        invoice = sample_invoice(customer)
        note = credit_note(invoice, "customer_balance", ("li_usage", "30", "6"))
        await post(ledger_pool, books, invoice, note)
        assert await balance(books, REVENUE) == usd("104")
        assert await balance(books, TAX) == usd("21.80")
        assert await balance(books, CREDIT, customer) == usd("36")
        assert await balance(books, AR, customer) == usd("161.80")
        await assert_balanced(ledger_pool, books)

    async def test_a_refund_pays_back_from_cash(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        invoice = sample_invoice(customer)
        note = credit_note(invoice, "refund", ("li_base", "49", "9.80"))
        await post(ledger_pool, books, invoice, note)
        assert await balance(books, CASH) == usd("-58.80")
        assert await balance(books, REVENUE) == usd("85")
        assert await balance(books, TAX) == usd("18")
        assert await balance(books, CREDIT, customer) == usd("0")
        await assert_balanced(ledger_pool, books)


class TestInvoiceVoided:
    async def test_reverses_the_whole_invoice_to_the_receivable(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        invoice = sample_invoice(customer)
        await post(ledger_pool, books, invoice, voided(invoice))
        for kind, owner in ((AR, customer), (REVENUE, None), (TAX, None), (CREDIT, customer)):
            assert await balance(books, kind, owner) == usd("0"), kind
        await assert_balanced(ledger_pool, books)
        voided_at = await ledger_pool.fetchval("SELECT voided_at FROM invoices")
        assert voided_at is not None

    async def test_reverses_only_what_credit_notes_left(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        customer = CustomerId.new()
        invoice = sample_invoice(customer)
        note = credit_note(invoice, "customer_balance", ("li_usage", "30", "6"))
        await post(ledger_pool, books, invoice, note, voided(invoice))
        # Revenue and tax of the invoice are gone, once each; the customer keeps the
        # credit it was given, and the receivable the part that credit matches.
        assert await balance(books, REVENUE) == usd("0")
        assert await balance(books, TAX) == usd("0")
        assert await balance(books, CREDIT, customer) == usd("36")
        assert await balance(books, AR, customer) == usd("36")
        await assert_balanced(ledger_pool, books)

    async def test_a_voided_draft_posts_nothing(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        draft = sample_invoice(CustomerId.new())
        async with transaction(ledger_pool) as conn:
            assert await service.post_invoice_voided(books, conn, voided(draft, number=None)) is (
                None
            )
        assert await ledger_pool.fetchval("SELECT count(*) FROM journal") == 0

    async def test_a_void_before_its_invoice_is_retried(
        self, ledger_pool: Pool, books: JournaledLedger
    ) -> None:
        invoice = sample_invoice(CustomerId.new())
        with pytest.raises(service.InvoiceNotPostedYet) as raised:
            async with transaction(ledger_pool) as conn:
                await service.post_invoice_voided(books, conn, voided(invoice))
        assert raised.value.retryable


async def test_state_survives_a_restart(ledger_pool: Pool, books: JournaledLedger) -> None:
    first, second = CustomerId.new(), CustomerId.new()
    invoice = sample_invoice(first)
    other = invoice_finalized(second, line("one_off", "12.34", tax="1.23"))
    await post(
        ledger_pool,
        books,
        invoice,
        other,
        credit_note(invoice, "customer_balance", ("li_base", "49", "9.80")),
        voided(other),
    )
    restarted = await JournaledLedger.load(ledger_pool)
    assert restarted.seq == books.seq == 4
    rows = await ledger_pool.fetch("SELECT id FROM accounts ORDER BY id")
    ids = [int(row["id"]) for row in rows]
    # The same accounts with the same balances (timestamps are the replay's own).
    assert [replace(a, timestamp=0) for a in await restarted.ledger.lookup_accounts(ids)] == [
        replace(a, timestamp=0) for a in await books.ledger.lookup_accounts(ids)
    ]
    assert await balance(restarted, AR, first) == usd("161.80")
    assert await balance(restarted, CREDIT, first) == usd("58.80")
    assert await balance(restarted, AR, second) == usd("0")
    # The rebuilt ledger knows every transfer: a redelivered fact posts nothing.
    async with transaction(ledger_pool) as conn:
        again = await service.post_invoice_finalized(restarted, conn, invoice)
    assert again is ChainOutcome.ALREADY_APPLIED
    assert await balance(restarted, AR, first) == usd("161.80")


async def test_trial_balance_stays_zero_through_a_sequence_of_facts(
    ledger_pool: Pool, books: JournaledLedger
) -> None:
    customers = [CustomerId.new() for _ in range(3)]
    for index, customer in enumerate(customers):
        invoice = invoice_finalized(
            customer,
            line("usage", f"{10 + index}.25", tax="2.05", line_id="u"),
            line("minimum_commitment", "7", line_id="m"),
            invoice_id=InvoiceId.new(),
        )
        await post(ledger_pool, books, invoice)
        await assert_balanced(ledger_pool, books)
        await post(ledger_pool, books, credit_note(invoice, "customer_balance", ("u", "1", "0")))
        await assert_balanced(ledger_pool, books)
        if index % 2 == 0:
            await post(ledger_pool, books, voided(invoice))
            await assert_balanced(ledger_pool, books)
