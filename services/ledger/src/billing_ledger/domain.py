"""How invoicing's facts become the ledger's business facts (`postings`). Pure.

An invoice line posts its amount less its discount (what the customer is charged
for it before tax) to revenue, and its tax to tax payable; the receivable grows by
the invoice's total. A fact whose lines do not add up to its totals is refused
(dead-lettered): the ledger posts nothing it cannot reconcile.

Revenue treatment by line kind: every kind invoicing has today (`base_fee`,
`usage`, `proration`, `one_off`, `minimum_commitment`) is revenue recognized when
the invoice is finalized. Deferral (ASC 606) would apply to a fee billed in
advance for a service period that ends after the invoice, but nothing recognizes
deferred revenue yet (reporting's `RevenueRecognized` schedule is not wired), so
deferring now would leave it deferred forever; `REVENUE_TREATMENT` is the one
place to change when it is.

A credit note goes where its outcome says: `refund` to cash (the money goes back),
`customer_balance` to the customer's credit account. A void reverses what the
invoice still posts: each line and tax less what credit notes took back already,
credited to the receivable. A credit note to the customer's balance leaves the
receivable as it was, so after a void of a credited invoice the receivable keeps
the credited part, matched by the customer's credit.

>>> REVENUE_TREATMENT["usage"]
<RevenueTreatment.RECOGNIZED: 'recognized'>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from billing_common.currency import Currency
from billing_common.errors import InvalidEvent
from billing_common.ids import CreditNoteId, CustomerId, InvoiceId, TenantId
from billing_common.money import Money, sum_money
from billing_invoicing import events as invoicing
from billing_ledger import postings
from billing_ledger.postings import CreditNoteSettlement, InvoiceLine, RevenueTreatment

__all__ = [
    "REVENUE_TREATMENT",
    "SETTLEMENT",
    "CreditedLine",
    "FactDoesNotAddUp",
    "PostedLine",
    "credit_note_fact",
    "credited_lines",
    "invoice_finalized_fact",
    "invoice_voided_fact",
    "posted_lines",
]

#: How each line kind's revenue is booked (see the module docstring).
REVENUE_TREATMENT: Mapping[str, RevenueTreatment] = dict.fromkeys(
    get_args(invoicing.LineKind), RevenueTreatment.RECOGNIZED
)

#: Where a credit note's amount goes, by its outcome.
SETTLEMENT: Mapping[str, CreditNoteSettlement] = {
    "refund": CreditNoteSettlement.REFUND,
    "customer_balance": CreditNoteSettlement.CUSTOMER_CREDIT,
}


class FactDoesNotAddUp(InvalidEvent):
    code = "ledger_fact_does_not_add_up"
    title = "The fact's lines do not add up to its totals"


@dataclass(frozen=True, slots=True)
class PostedLine:
    """One invoice line as the ledger posted it: charged amount (after discount) and tax."""

    line_id: str
    treatment: RevenueTreatment
    amount: Money
    tax: Money


@dataclass(frozen=True, slots=True)
class CreditedLine:
    """What one credit note took back of one invoice line."""

    line_id: str
    amount: Money
    tax: Money


def _in(currency: Currency, money: Money, what: str) -> Money:
    if money.currency != currency:
        raise FactDoesNotAddUp(
            f"{what} is in {money.currency.code}, the fact in {currency.code}",
            currencies=[currency.code, money.currency.code],
        )
    return money


def _check(what: str, expected: Money, actual: Money) -> None:
    if expected != actual:
        raise FactDoesNotAddUp(
            f"{what}: the lines add up to {actual}, the fact says {expected}",
            expected=expected.to_decimal_string(),
            actual=actual.to_decimal_string(),
        )


def posted_lines(data: invoicing.InvoiceFinalized) -> list[PostedLine]:
    """The invoice's lines as the ledger posts them, checked against the invoice's totals."""
    currency = data.currency
    lines = []
    for line in data.lines:
        amount = _in(currency, line.amount.to_money(), f"line {line.line_id}")
        discount = _in(currency, line.discount.to_money(), f"line {line.line_id}'s discount")
        tax = _in(currency, line.tax.to_money(), f"line {line.line_id}'s tax")
        lines.append(PostedLine(line.line_id, REVENUE_TREATMENT[line.kind], amount - discount, tax))
    total = _in(currency, data.total.to_money(), "the total")
    _check(
        "subtotal",
        _in(currency, data.subtotal.to_money(), "the subtotal"),
        sum_money((line.amount.to_money() for line in data.lines), currency),
    )
    _check(
        "discount_total",
        _in(currency, data.discount_total.to_money(), "the discount total"),
        sum_money((line.discount.to_money() for line in data.lines), currency),
    )
    _check(
        "tax_total",
        _in(currency, data.tax_total.to_money(), "the tax total"),
        sum_money((line.tax for line in lines), currency),
    )
    _check(
        "total",
        total,
        sum_money((line.amount + line.tax for line in lines), currency),
    )
    return lines


def invoice_finalized_fact(
    tenant: TenantId, data: invoicing.InvoiceFinalized
) -> postings.InvoiceFinalized:
    """`invoice_finalized` as the ledger's fact: receivable against revenue and tax."""
    lines = posted_lines(data)
    return postings.InvoiceFinalized(
        tenant=tenant,
        customer=CustomerId.parse(data.customer_id),
        invoice_id=InvoiceId.parse(data.invoice_id),
        currency=data.currency,
        lines=[InvoiceLine(line.amount, line.treatment) for line in lines],
        taxes=[line.tax for line in lines],
    )


def credited_lines(data: invoicing.CreditNoteIssued) -> list[CreditedLine]:
    """The credit note's lines, checked against its amount, tax and total."""
    currency = data.currency
    lines = [
        CreditedLine(
            line.line_id,
            _in(currency, line.amount.to_money(), f"credited line {line.line_id}"),
            _in(currency, line.tax.to_money(), f"credited line {line.line_id}'s tax"),
        )
        for line in data.lines
    ]
    amount = sum_money((line.amount for line in lines), currency)
    tax = sum_money((line.tax for line in lines), currency)
    _check("amount", _in(currency, data.amount.to_money(), "the amount"), amount)
    _check("tax", _in(currency, data.tax.to_money(), "the tax"), tax)
    _check("total", _in(currency, data.total.to_money(), "the total"), amount + tax)
    return lines


def credit_note_fact(
    tenant: TenantId,
    data: invoicing.CreditNoteIssued,
    treatments: Mapping[str, RevenueTreatment],
) -> postings.CreditNoteIssued:
    """`credit_note_issued` as the ledger's fact: each line reversed from the account the
    invoice posted it to (`treatments`, by line id; a line the ledger has not seen is
    recognized revenue, as every line kind is today), to where the outcome says."""
    lines = credited_lines(data)
    return postings.CreditNoteIssued(
        tenant=tenant,
        customer=CustomerId.parse(data.customer_id),
        credit_note_id=CreditNoteId.parse(data.credit_note_id),
        currency=data.currency,
        lines=[
            InvoiceLine(line.amount, treatments.get(line.line_id, RevenueTreatment.RECOGNIZED))
            for line in lines
        ],
        taxes=[line.tax for line in lines],
        settlement=SETTLEMENT[data.outcome],
    )


def invoice_voided_fact(
    tenant: TenantId,
    data: invoicing.InvoiceVoided,
    lines: Sequence[PostedLine],
    credited: Sequence[CreditedLine],
) -> postings.InvoiceVoided:
    """`invoice_voided` as the ledger's fact: every line and tax of the invoice (`lines`)
    less what the invoice's credit notes took back (`credited`)."""
    currency = data.currency
    taken: dict[str, tuple[Money, Money]] = {}
    for credit in credited:
        amount, tax = taken.get(credit.line_id, (Money.zero(currency), Money.zero(currency)))
        taken[credit.line_id] = (amount + credit.amount, tax + credit.tax)
    remaining = []
    for line in lines:
        amount, tax = taken.get(line.line_id, (Money.zero(currency), Money.zero(currency)))
        remaining.append((line.treatment, line.amount - amount, line.tax - tax))
    return postings.InvoiceVoided(
        tenant=tenant,
        customer=CustomerId.parse(data.customer_id),
        invoice_id=InvoiceId.parse(data.invoice_id),
        currency=currency,
        lines=[InvoiceLine(amount, treatment) for treatment, amount, _ in remaining],
        taxes=[tax for _, _, tax in remaining],
    )
