"""Invoicing's facts as the ledger's business facts: pure, no database."""

from __future__ import annotations

from typing import get_args

import pytest

from billing_common.ids import CustomerId
from billing_invoicing.events import LineKind
from billing_ledger.accounts import AccountKind, ChartOfAccounts
from billing_ledger.domain import (
    REVENUE_TREATMENT,
    SETTLEMENT,
    CreditedLine,
    FactDoesNotAddUp,
    credit_note_fact,
    invoice_finalized_fact,
    invoice_voided_fact,
    posted_lines,
)
from billing_ledger.ledger import InProcessLedger, TransferFlags, chain_outcome
from billing_ledger.postings import (
    CreditNoteSettlement,
    RevenueTreatment,
    TransferCode,
    invoice_finalized_postings,
    invoice_voided_postings,
    trial_balance,
)

from .conftest import TENANT, credit_note, invoice_finalized, line, usd, voided


def test_every_line_kind_and_outcome_has_a_treatment() -> None:
    assert set(REVENUE_TREATMENT) == set(get_args(LineKind))
    assert set(REVENUE_TREATMENT.values()) == {RevenueTreatment.RECOGNIZED}
    assert SETTLEMENT == {
        "refund": CreditNoteSettlement.REFUND,
        "customer_balance": CreditNoteSettlement.CUSTOMER_CREDIT,
    }


def test_a_line_posts_its_amount_less_discount_and_its_tax() -> None:
    event = invoice_finalized(
        CustomerId.new(), line("usage", "10", discount="2.5", tax="1.5", line_id="u")
    )
    (posted,) = posted_lines(event.data)
    assert (posted.line_id, posted.amount, posted.tax) == ("u", usd("7.5"), usd("1.5"))
    fact = invoice_finalized_fact(TENANT, event.data)
    assert fact.total == usd("9") == event.data.total.to_money()


@pytest.mark.parametrize("field", ["subtotal", "discount_total", "tax_total", "total"])
def test_totals_that_the_lines_do_not_make_are_refused(field: str) -> None:
    event = invoice_finalized(CustomerId.new(), line("usage", "10", tax="2"))
    wrong = event.data.model_copy(update={field: usd("0.01").to_wire()})
    with pytest.raises(FactDoesNotAddUp, match=field):
        invoice_finalized_fact(TENANT, wrong)


def test_a_credit_note_that_does_not_add_up_is_refused() -> None:
    invoice = invoice_finalized(CustomerId.new(), line("usage", "10", line_id="u"))
    note = credit_note(invoice, "refund", ("u", "4", "0"))
    wrong = note.data.model_copy(update={"total": usd("5").to_wire()})
    with pytest.raises(FactDoesNotAddUp, match="total"):
        credit_note_fact(TENANT, wrong, {})


def test_a_credit_note_line_reverses_from_where_the_invoice_put_it() -> None:
    invoice = invoice_finalized(CustomerId.new(), line("usage", "10", line_id="u"))
    note = credit_note(invoice, "customer_balance", ("u", "4", "0"))
    deferred = credit_note_fact(TENANT, note.data, {"u": RevenueTreatment.DEFERRED})
    assert [item.treatment for item in deferred.lines] == [RevenueTreatment.DEFERRED]
    unknown = credit_note_fact(TENANT, note.data, {})
    assert [item.treatment for item in unknown.lines] == [RevenueTreatment.RECOGNIZED]
    assert unknown.settlement is CreditNoteSettlement.CUSTOMER_CREDIT


async def test_a_void_reverses_the_invoice_less_its_credit_notes() -> None:
    customer = CustomerId.new()
    invoice = invoice_finalized(
        customer,
        line("usage", "10", tax="2", line_id="u"),
        line("proration", "-3", line_id="p"),
    )
    lines = posted_lines(invoice.data)
    fact = invoice_voided_fact(
        TENANT, voided(invoice).data, lines, [CreditedLine("u", usd("4"), usd("0.8"))]
    )
    assert [item.amount for item in fact.lines] == [usd("6"), usd("-3")]
    assert list(fact.taxes) == [usd("1.2"), usd("0")]
    assert fact.total == usd("4.2")

    ledger = InProcessLedger()
    chart = ChartOfAccounts(TENANT, invoice.data.currency)
    await ledger.create_accounts([*chart.tenant_accounts(), *chart.customer_accounts(customer)])
    posted = invoice_finalized_postings(invoice_finalized_fact(TENANT, invoice.data))
    assert chain_outcome(await ledger.create_transfers(posted)).value == "applied"
    reversal = invoice_voided_postings(fact)
    assert [t.code for t in reversal] == [
        TransferCode.INVOICE_VOIDED_REVENUE,
        TransferCode.INVOICE_VOIDED_TAX,
        TransferCode.INVOICE_VOIDED_REVENUE,
    ]
    assert [bool(t.flags & TransferFlags.LINKED) for t in reversal] == [True, True, False]
    assert chain_outcome(await ledger.create_transfers(reversal)).value == "applied"
    receivable_id = chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, customer)
    (receivable,) = await ledger.lookup_accounts([receivable_id])
    # 9 invoiced, 4.2 reversed: what the credit note took back (4.8) stays owed.
    assert receivable.debits_posted - receivable.credits_posted == usd("4.8").amount
    accounts = await ledger.lookup_accounts([a.id for a in chart.tenant_accounts()])
    assert trial_balance([*accounts, receivable]).balanced
