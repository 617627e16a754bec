from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.currency import Currency
from billing_common.errors import BillingError
from billing_common.ids import CreditNoteId, CustomerId, InvoiceId
from billing_common.money import Money
from billing_common.tax import RateTableTax
from billing_invoicing.credit_notes import (
    CreditLineRequest,
    CreditNote,
    CreditNoteAmountInvalid,
    CreditNoteEmpty,
    CreditNoteExceedsInvoice,
    CreditNoteExceedsLine,
    CreditNoteInvoiceMismatch,
    CreditNoteLineNotCreditable,
    CreditNoteLineRepeated,
    CreditNoteLineUnknown,
    CreditNoteReason,
    CreditOutcome,
    InvoiceNotCreditable,
    RefundRequiresPayment,
    creditable_total,
    issue_credit_note,
    remaining_creditable,
)
from billing_invoicing.domain import (
    ChargeSet,
    Invoice,
    InvoiceInputs,
    InvoiceStatus,
    OneOffCharge,
    ProrationCharge,
    TaxContext,
    build_invoice,
    finalize,
    mark_paid,
    void,
)

FAST = settings(database=None, deadline=None, max_examples=100)
EUR = Currency.of("EUR")
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
AT = datetime(2026, 2, 10, tzinfo=UTC)
FR_TAX = RateTableTax({("FR", None): Decimal("0.2")})
REASON = CreditNoteReason.ORDER_CHANGE


def eur(text: str) -> Money:
    return Money.parse(text, EUR)


def draft(inputs: InvoiceInputs, invoice_id: InvoiceId | None = None) -> Invoice:
    return build_invoice(
        invoice_id=invoice_id or InvoiceId.new(),
        customer_id=CustomerId.new(),
        currency=EUR,
        period_start=JAN,
        period_end=FEB,
        inputs=inputs,
        tax_context=TaxContext("FR"),
        tax=FR_TAX,
    )


def consulting_invoice(*, paid: bool = True) -> Invoice:
    """Consulting 100 + 20 % tax = 120; setup 50 + 10 = 60; total 180 EUR."""
    inputs = InvoiceInputs(
        one_offs=(OneOffCharge("Consulting", eur("100")), OneOffCharge("Setup", eur("50")))
    )
    invoice = finalize(draft(inputs), "INV-2026-000001", FEB)
    return mark_paid(invoice, FEB) if paid else invoice


def issue(
    invoice: Invoice,
    *lines: CreditLineRequest,
    previous: tuple[CreditNote, ...] = (),
    outcome: CreditOutcome = CreditOutcome.CUSTOMER_BALANCE,
) -> CreditNote:
    return issue_credit_note(
        invoice,
        lines,
        credit_note_id=CreditNoteId.new(),
        reason=REASON,
        outcome=outcome,
        at=AT,
        previous=previous,
    )


class TestIssue:
    def test_whole_line(self) -> None:
        invoice = consulting_invoice()
        note = issue(invoice, CreditLineRequest("line_1"), outcome=CreditOutcome.REFUND)
        assert [(line.line_id, line.amount, line.tax) for line in note.lines] == [
            ("line_1", eur("100"), eur("20"))
        ]
        assert (note.subtotal, note.tax_total, note.total) == (eur("100"), eur("20"), eur("120"))
        assert note.outcome is CreditOutcome.REFUND
        assert note.reason is CreditNoteReason.ORDER_CHANGE
        assert note.invoice_id == invoice.invoice_id
        assert note.lines[0].description == "Consulting"

    def test_partial_amount_credits_tax_proportionally(self) -> None:
        invoice = consulting_invoice()
        note = issue(invoice, CreditLineRequest("line_2", eur("30")))
        assert [(line.amount, line.tax, line.total) for line in note.lines] == [
            (eur("30"), eur("6"), eur("36"))
        ]
        left = remaining_creditable(invoice, (note,))
        assert (left["line_2"].amount, left["line_2"].tax) == (eur("20"), eur("4"))
        assert creditable_total(invoice, (note,)) == eur("144")

    def test_over_credit_of_a_line_is_refused(self) -> None:
        with pytest.raises(CreditNoteExceedsLine) as raised:
            issue(consulting_invoice(), CreditLineRequest("line_2", eur("50.01")))
        assert (raised.value.status, raised.value.code) == (409, "credit_note_exceeds_line")
        assert raised.value.extensions["remaining"] == "50"

    def test_second_note_is_limited_by_the_first(self) -> None:
        invoice = consulting_invoice()
        first = issue(invoice, CreditLineRequest("line_2", eur("30")))
        with pytest.raises(CreditNoteExceedsLine):
            issue(invoice, CreditLineRequest("line_2", eur("25")), previous=(first,))
        second = issue(invoice, CreditLineRequest("line_2", eur("20")), previous=(first,))
        assert (second.lines[0].amount, second.lines[0].tax) == (eur("20"), eur("4"))
        with pytest.raises(CreditNoteLineNotCreditable) as raised:
            issue(invoice, CreditLineRequest("line_2"), previous=(first, second))
        assert raised.value.code == "credit_note_line_not_creditable"
        rest = issue(invoice, CreditLineRequest("line_1"), previous=(first, second))
        assert first.total + second.total + rest.total == invoice.total

    def test_pieces_give_back_exactly_the_tax(self) -> None:
        """A 10 EUR line at 7.25 % bears 0.73 (0.725 half-up). 3.33 credits
        0.73 x 3.33/10 = 0.243 -> 0.24, twice; the rest (3.34) takes the 0.25 left."""
        invoice = build_invoice(
            invoice_id=InvoiceId.new(),
            customer_id=CustomerId.new(),
            currency=EUR,
            period_start=JAN,
            period_end=FEB,
            inputs=InvoiceInputs(one_offs=(OneOffCharge("Widget", eur("10")),)),
            tax_context=TaxContext("US", "CA"),
            tax=RateTableTax({("US", "CA"): Decimal("0.0725")}),
        )
        invoice = finalize(invoice, "INV-2026-000002", FEB)
        assert invoice.lines[0].tax == eur("0.73")
        notes: list[CreditNote] = []
        for amount in (eur("3.33"), eur("3.33"), None):
            notes.append(issue(invoice, CreditLineRequest("line_1", amount), previous=tuple(notes)))
        assert [note.lines[0].tax for note in notes] == [eur("0.24"), eur("0.24"), eur("0.25")]
        assert sum((note.total for note in notes), eur("0")) == invoice.total

    def test_credits_on_the_invoice_limit_the_total(self) -> None:
        """A 60 EUR line and a -20 EUR proration credit: 48 EUR with tax is all there is."""
        inputs = InvoiceInputs(
            own=ChargeSet(
                prorations=(ProrationCharge("plan_a", "unused_time", eur("-20"), JAN, FEB),)
            ),
            one_offs=(OneOffCharge("Service", eur("60")),),
        )
        invoice = finalize(draft(inputs), "INV-2026-000003", FEB)
        assert invoice.total == eur("48")
        with pytest.raises(CreditNoteExceedsInvoice) as raised:
            issue(invoice, CreditLineRequest("line_2"))
        assert raised.value.code == "credit_note_exceeds_invoice"
        with pytest.raises(CreditNoteLineNotCreditable):
            issue(invoice, CreditLineRequest("line_1"))
        note = issue(invoice, CreditLineRequest("line_2", eur("40")))
        assert note.total == eur("48")


class TestRefusals:
    def test_draft_and_void_are_not_creditable(self) -> None:
        inputs = InvoiceInputs(one_offs=(OneOffCharge("Consulting", eur("100")),))
        for invoice in (draft(inputs), void(draft(inputs), AT)):
            with pytest.raises(InvoiceNotCreditable) as raised:
                issue(invoice, CreditLineRequest("line_1"))
            assert (raised.value.status, raised.value.code) == (409, "invoice_not_creditable")

    def test_refund_needs_a_paid_invoice(self) -> None:
        invoice = consulting_invoice(paid=False)
        with pytest.raises(RefundRequiresPayment) as raised:
            issue(invoice, CreditLineRequest("line_1"), outcome=CreditOutcome.REFUND)
        assert raised.value.code == "credit_note_refund_unpaid"
        assert issue(invoice, CreditLineRequest("line_1")).total == eur("120")

    @pytest.mark.parametrize(
        ("lines", "error"),
        [
            ((), CreditNoteEmpty),
            ((CreditLineRequest("line_9"),), CreditNoteLineUnknown),
            ((CreditLineRequest("line_1"), CreditLineRequest("line_1")), CreditNoteLineRepeated),
            ((CreditLineRequest("line_1", eur("0")),), CreditNoteAmountInvalid),
            ((CreditLineRequest("line_1", eur("-1")),), CreditNoteAmountInvalid),
            ((CreditLineRequest("line_1", eur("0.001")),), CreditNoteAmountInvalid),
            ((CreditLineRequest("line_1", Money.parse("1", "USD")),), CreditNoteAmountInvalid),
        ],
    )
    def test_invalid_requests(
        self, lines: tuple[CreditLineRequest, ...], error: type[BillingError]
    ) -> None:
        with pytest.raises(error) as raised:
            issue(consulting_invoice(), *lines)
        assert raised.value.code == error.code

    def test_previous_notes_must_be_this_invoices(self) -> None:
        other = issue(consulting_invoice(), CreditLineRequest("line_1"))
        with pytest.raises(CreditNoteInvoiceMismatch):
            issue(consulting_invoice(), CreditLineRequest("line_1"), previous=(other,))


@FAST
@given(
    prices=st.lists(st.integers(min_value=-5_000, max_value=100_000), min_size=1, max_size=5),
    requests=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.none() | st.integers(1, 120_000)),
        max_size=12,
    ),
)
def test_credit_notes_never_exceed_the_invoice(
    prices: list[int], requests: list[tuple[int, int | None]]
) -> None:
    inputs = InvoiceInputs(
        one_offs=tuple(
            OneOffCharge(f"item {i}", Money.of_minor(cents, EUR)) for i, cents in enumerate(prices)
        )
    )
    invoice = finalize(draft(inputs), "INV-2026-000004", FEB)
    if invoice.status is InvoiceStatus.FINALIZED:
        invoice = mark_paid(invoice, FEB)
    notes: list[CreditNote] = []
    refusals: list[int] = []
    for index, cents in requests:
        amount = None if cents is None else Money.of_minor(cents, EUR)
        request = CreditLineRequest(f"line_{index + 1}", amount)
        try:
            notes.append(issue(invoice, request, previous=tuple(notes)))
        except BillingError as refused:
            refusals.append(refused.status)
    assert set(refusals) <= {409, 422}
    credited = sum((note.total for note in notes), eur("0"))
    assert credited <= max(invoice.total, eur("0"))
    for line in invoice.lines:
        mine = [cl for note in notes for cl in note.lines if cl.line_id == line.line_id]
        assert sum((cl.amount for cl in mine), eur("0")) <= max(line.taxable_amount, eur("0"))
        assert sum((cl.tax for cl in mine), eur("0")) <= max(line.tax_amount, eur("0"))
