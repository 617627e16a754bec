from __future__ import annotations

import asyncio

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount
from billing_common.ids import CreditNoteId, CustomerId, EventId, InvoiceId, PaymentId, TenantId
from billing_common.money import Money
from billing_ledger.accounts import AccountKind, ChartOfAccounts, normal_balance_of
from billing_ledger.ledger import (
    Account,
    ChainOutcome,
    CreateTransferStatus,
    InProcessLedger,
    Transfer,
    TransferFlags,
    chain_outcome,
)
from billing_ledger.postings import (
    BusinessFact,
    CreditApplied,
    CreditNoteIssued,
    CreditNoteSettlement,
    InvoiceFinalized,
    InvoiceLine,
    PaymentSucceeded,
    RevenueRecognized,
    RevenueTreatment,
    TransferCode,
    credit_note_postings,
    invoice_finalized_postings,
    postings_for,
    trial_balance,
)

USD = Currency.of("USD")
TENANT = TenantId.new()


def usd(major: str) -> Money:
    return Money.parse(major, USD)


def invoice(lines: list[InvoiceLine], taxes: list[Money], customer: CustomerId) -> InvoiceFinalized:
    return InvoiceFinalized(TENANT, customer, InvoiceId.new(), USD, lines=lines, taxes=taxes)


async def open_chart(ledger: InProcessLedger, *customers: CustomerId) -> ChartOfAccounts:
    chart = ChartOfAccounts(TENANT, USD)
    accounts = chart.tenant_accounts()
    for customer in customers:
        accounts += chart.customer_accounts(customer)
    assert all(r.applied for r in await ledger.create_accounts(accounts))
    return chart


async def balance(
    ledger: InProcessLedger,
    chart: ChartOfAccounts,
    kind: AccountKind,
    customer: CustomerId | None = None,
) -> int:
    (found,) = await ledger.lookup_accounts([chart.account_id(kind, customer)])
    return normal_balance_of(found)


async def everything(
    ledger: InProcessLedger, chart: ChartOfAccounts, *customers: CustomerId
) -> list[Account]:
    ids = [a.id for a in chart.tenant_accounts()]
    for customer in customers:
        ids += [a.id for a in chart.customer_accounts(customer)]
    return await ledger.lookup_accounts(ids)


async def post(ledger: InProcessLedger, fact: BusinessFact) -> ChainOutcome:
    return chain_outcome(await ledger.create_transfers(postings_for(fact)))


amounts = st.integers(min_value=-(10**15), max_value=10**15).map(
    lambda minor: Money.of_minor(minor, USD)
)
lines = st.lists(
    st.builds(InvoiceLine, amount=amounts, treatment=st.sampled_from(RevenueTreatment)),
    min_size=1,
    max_size=12,
)
taxes = st.lists(
    st.integers(min_value=0, max_value=10**14).map(lambda m: Money.of_minor(m, USD)), max_size=3
)


class TestInvoiceFinalized:
    def test_one_linked_chain_per_invoice(self) -> None:
        customer = CustomerId.new()
        fact = invoice(
            [InvoiceLine(usd("10")), InvoiceLine(usd("5"), RevenueTreatment.DEFERRED)],
            [usd("3")],
            customer,
        )
        chart = ChartOfAccounts(TENANT, USD)
        transfers = invoice_finalized_postings(fact)
        receivable = chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, customer)
        assert [(t.debit_account_id, t.credit_account_id, t.amount, t.code) for t in transfers] == [
            (
                receivable,
                chart.account_id(AccountKind.REVENUE),
                usd("10").amount,
                TransferCode.INVOICE_REVENUE,
            ),
            (
                receivable,
                chart.account_id(AccountKind.DEFERRED_REVENUE),
                usd("5").amount,
                TransferCode.INVOICE_DEFERRED_REVENUE,
            ),
            (
                receivable,
                chart.account_id(AccountKind.TAX_PAYABLE),
                usd("3").amount,
                TransferCode.INVOICE_TAX,
            ),
        ]
        assert [t.flags for t in transfers] == [
            TransferFlags.LINKED,
            TransferFlags.LINKED,
            TransferFlags.NONE,
        ]
        assert {t.ledger for t in transfers} == {840}
        assert {t.user_data_128 for t in transfers} == {fact.invoice_id.uuid.int}

    def test_ids_are_derived_from_the_invoice(self) -> None:
        customer = CustomerId.new()
        fact = invoice([InvoiceLine(usd("1")), InvoiceLine(usd("2"))], [], customer)
        first = invoice_finalized_postings(fact)
        assert [t.id for t in first] == [t.id for t in invoice_finalized_postings(fact)]
        assert len({t.id for t in first}) == 2
        other = invoice_finalized_postings(invoice(fact.lines, [], customer))  # type: ignore[arg-type]
        assert not {t.id for t in first} & {t.id for t in other}

    def test_discount_posts_the_other_way_and_zero_posts_nothing(self) -> None:
        customer = CustomerId.new()
        fact = invoice(
            [InvoiceLine(usd("10")), InvoiceLine(usd("-4")), InvoiceLine(usd("0"))], [], customer
        )
        chart = ChartOfAccounts(TENANT, USD)
        transfers = invoice_finalized_postings(fact)
        assert len(transfers) == 2
        discount = transfers[1]
        assert discount.debit_account_id == chart.account_id(AccountKind.REVENUE)
        assert discount.amount == usd("4").amount
        assert fact.total == usd("6")

    def test_amounts_in_another_currency_are_refused(self) -> None:
        with pytest.raises(CurrencyMismatch):
            invoice([InvoiceLine(Money.parse("1", "EUR"))], [], CustomerId.new())

    async def test_reposting_is_idempotent(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        chart = await open_chart(ledger, customer)
        fact = invoice([InvoiceLine(usd("10")), InvoiceLine(usd("2"))], [usd("1")], customer)
        assert await post(ledger, fact) is ChainOutcome.APPLIED
        assert await post(ledger, fact) is ChainOutcome.ALREADY_APPLIED
        assert (
            await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, customer)
            == usd("13").amount
        )

    async def test_discount_before_a_deferred_line_is_posted_after_it(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        chart = await open_chart(ledger, customer)
        deferred = RevenueTreatment.DEFERRED
        fact = invoice(
            [InvoiceLine(usd("-2"), deferred), InvoiceLine(usd("5"), deferred)], [], customer
        )
        assert await post(ledger, fact) is ChainOutcome.APPLIED
        assert await balance(ledger, chart, AccountKind.DEFERRED_REVENUE) == usd("3").amount

    async def test_negative_deferred_total_is_refused_whole(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        chart = await open_chart(ledger, customer)
        fact = invoice(
            [InvoiceLine(usd("9")), InvoiceLine(usd("-1"), RevenueTreatment.DEFERRED)], [], customer
        )
        results = await ledger.create_transfers(invoice_finalized_postings(fact))
        assert [r.status for r in results] == [
            CreateTransferStatus.LINKED_EVENT_FAILED,
            CreateTransferStatus.EXCEEDS_CREDITS,
        ]
        assert await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, customer) == 0

    @settings(max_examples=60, deadline=None)
    @given(lines=lines, taxes=taxes)
    def test_postings_balance_and_receivable_grows_by_the_total(
        self, lines: list[InvoiceLine], taxes: list[Money]
    ) -> None:
        deferred_total = sum(
            line.amount.amount for line in lines if line.treatment is RevenueTreatment.DEFERRED
        )
        assume(deferred_total >= 0)  # below zero is refused whole: the test above
        customer = CustomerId.new()
        fact = invoice(lines, taxes, customer)
        transfers = invoice_finalized_postings(fact)
        assert all(t.amount > 0 for t in transfers)

        async def apply() -> None:
            ledger = InProcessLedger()
            chart = await open_chart(ledger, customer)
            results = await ledger.create_transfers(transfers)
            if transfers:
                assert chain_outcome(results) is ChainOutcome.APPLIED
            accounts = await everything(ledger, chart, customer)
            assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
            receivable = await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, customer)
            assert receivable == fact.total.amount
            earned = sum(
                [
                    await balance(ledger, chart, AccountKind.REVENUE),
                    await balance(ledger, chart, AccountKind.DEFERRED_REVENUE),
                    await balance(ledger, chart, AccountKind.TAX_PAYABLE),
                ]
            )
            assert earned == fact.total.amount

        asyncio.run(apply())


class TestCreditNote:
    @pytest.mark.parametrize(
        ("settlement", "credited"),
        [
            (CreditNoteSettlement.RECEIVABLE, AccountKind.ACCOUNTS_RECEIVABLE),
            (CreditNoteSettlement.CUSTOMER_CREDIT, AccountKind.CUSTOMER_CREDIT),
            (CreditNoteSettlement.REFUND, AccountKind.CASH),
        ],
    )
    def test_reverses_the_invoice_to_the_settlement(
        self, settlement: CreditNoteSettlement, credited: AccountKind
    ) -> None:
        customer = CustomerId.new()
        chart = ChartOfAccounts(TENANT, USD)
        note = CreditNoteIssued(
            TENANT,
            customer,
            CreditNoteId.new(),
            USD,
            lines=[InvoiceLine(usd("4"))],
            taxes=[usd("1")],
            settlement=settlement,
        )
        transfers = credit_note_postings(note)
        target = chart.account_id(credited, customer if credited.per_customer else None)
        assert [(t.debit_account_id, t.credit_account_id, t.code) for t in transfers] == [
            (chart.account_id(AccountKind.REVENUE), target, TransferCode.CREDIT_NOTE_REVENUE),
            (chart.account_id(AccountKind.TAX_PAYABLE), target, TransferCode.CREDIT_NOTE_TAX),
        ]

    async def test_credit_note_on_an_unpaid_invoice_clears_the_receivable(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        chart = await open_chart(ledger, customer)
        lines = [InvoiceLine(usd("8")), InvoiceLine(usd("2"), RevenueTreatment.DEFERRED)]
        assert await post(ledger, invoice(lines, [usd("1")], customer)) is ChainOutcome.APPLIED
        note = CreditNoteIssued(
            TENANT, customer, CreditNoteId.new(), USD, lines=lines, taxes=[usd("1")]
        )
        assert await post(ledger, note) is ChainOutcome.APPLIED
        for kind in (AccountKind.REVENUE, AccountKind.DEFERRED_REVENUE, AccountKind.TAX_PAYABLE):
            assert await balance(ledger, chart, kind) == 0
        assert await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, customer) == 0


class TestPaymentsAndCredit:
    def test_amounts_must_be_positive(self) -> None:
        with pytest.raises(InvalidAmount):
            PaymentSucceeded(TENANT, CustomerId.new(), PaymentId.new(), usd("0"))
        with pytest.raises(InvalidAmount):
            CreditApplied(TENANT, CustomerId.new(), InvoiceId.new(), EventId.new(), usd("-1"))

    async def test_credit_cannot_be_spent_beyond_the_balance(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        chart = await open_chart(ledger, customer)
        fact = invoice([InvoiceLine(usd("10"))], [], customer)
        await post(ledger, fact)
        applied = CreditApplied(TENANT, customer, fact.invoice_id, EventId.new(), usd("1"))
        results = await ledger.create_transfers(postings_for(applied))
        assert [r.status for r in results] == [CreateTransferStatus.EXCEEDS_CREDITS]
        assert (
            await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, customer)
            == usd("10").amount
        )

    async def test_recognizing_more_than_was_deferred_is_refused(self) -> None:
        ledger = InProcessLedger()
        customer = CustomerId.new()
        await open_chart(ledger, customer)
        deferred = invoice([InvoiceLine(usd("12"), RevenueTreatment.DEFERRED)], [], customer)
        await post(ledger, deferred)
        assert (
            await post(ledger, RevenueRecognized(TENANT, EventId.new(), usd("12")))
            is ChainOutcome.APPLIED
        )
        assert (
            await post(ledger, RevenueRecognized(TENANT, EventId.new(), usd("0.01")))
            is ChainOutcome.REJECTED
        )


class TestTrialBalance:
    async def test_is_zero_after_a_sequence_of_facts(self) -> None:
        ledger = InProcessLedger()
        alice, bob = CustomerId.new(), CustomerId.new()
        chart = await open_chart(ledger, alice, bob)
        alice_invoice = invoice(
            [InvoiceLine(usd("100")), InvoiceLine(usd("50"), RevenueTreatment.DEFERRED)],
            [usd("15")],
            alice,
        )
        bob_invoice = invoice([InvoiceLine(usd("40"))], [usd("4")], bob)
        facts: list[BusinessFact] = [
            alice_invoice,
            bob_invoice,
            PaymentSucceeded(TENANT, alice, PaymentId.new(), usd("165")),
            CreditNoteIssued(
                TENANT,
                alice,
                CreditNoteId.new(),
                USD,
                lines=[InvoiceLine(usd("20"))],
                taxes=[usd("2")],
                settlement=CreditNoteSettlement.CUSTOMER_CREDIT,
            ),
            CreditApplied(TENANT, alice, InvoiceId.new(), EventId.new(), usd("22")),
            CreditNoteIssued(
                TENANT,
                bob,
                CreditNoteId.new(),
                USD,
                lines=[InvoiceLine(usd("10"))],
                settlement=CreditNoteSettlement.RECEIVABLE,
            ),
            RevenueRecognized(TENANT, EventId.new(), usd("25")),
            PaymentSucceeded(TENANT, bob, PaymentId.new(), usd("34")),
        ]
        for fact in facts:
            assert await post(ledger, fact) is ChainOutcome.APPLIED
            assert await post(ledger, fact) is ChainOutcome.ALREADY_APPLIED

        report = trial_balance(await everything(ledger, chart, alice, bob))
        assert report.balanced
        (totals,) = report.totals.values()
        assert totals.net == 0
        assert totals.ledger == 840
        assert sum(row.debit for row in report.rows) == sum(row.credit for row in report.rows)
        assert await balance(ledger, chart, AccountKind.CASH) == usd("199").amount
        assert (
            await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, alice)
            == usd("-22").amount
        )
        assert await balance(ledger, chart, AccountKind.ACCOUNTS_RECEIVABLE, bob) == 0
        assert await balance(ledger, chart, AccountKind.CUSTOMER_CREDIT, alice) == 0
        assert await balance(ledger, chart, AccountKind.REVENUE) == usd("135").amount
        assert await balance(ledger, chart, AccountKind.DEFERRED_REVENUE) == usd("25").amount
        assert await balance(ledger, chart, AccountKind.TAX_PAYABLE) == usd("17").amount

    def test_pending_amounts_count_too(self) -> None:
        unbalanced = trial_balance(
            [
                Account(id=1, ledger=840, code=1, debits_pending=3),
                Account(id=2, ledger=840, code=2),
            ]
        )
        assert not unbalanced.balanced

    def test_rows_sit_in_one_column(self) -> None:
        report = trial_balance(
            [Account(id=1, ledger=978, code=1, debits_posted=2, credits_posted=7)]
        )
        (row,) = report.rows
        assert (row.debit, row.credit) == (0, 5)
        assert not report.balanced


def test_postings_are_transfers() -> None:
    fact = PaymentSucceeded(TENANT, CustomerId.new(), PaymentId.new(), usd("1"))
    (payment,) = postings_for(fact)
    assert isinstance(payment, Transfer)
    assert payment.code == TransferCode.PAYMENT
