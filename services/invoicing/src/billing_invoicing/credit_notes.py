"""Credit notes: what is taken back from a finalized (or paid) invoice. Pure.

A credit note credits lines of one invoice, each wholly (what remains of it)
or by an amount. What can be credited is counted per line and in total,
previous credit notes included:

- a line's creditable amount is what the customer was charged for it before
  tax (`amount - discount`); lines at zero or below (proration credits) are
  not creditable;
- the tax credited with an amount is the line's tax in the same proportion
  (`tax * amount / taxable`), rounded once to the minor unit by the invoice's
  rounding, never more than the line's tax still uncredited; crediting what
  remains of a line credits exactly the tax that remains, so a line credited in
  pieces gives back exactly its tax;
- all credit notes of an invoice together never exceed its total (credits on
  other lines of the invoice, such as proration, lower what can be credited).

The outcome says where the money goes: a refund request (the invoice must be
paid) or the customer's credit balance. Every refusal has its own code.

Worked example: a 100 USD line taxed 20 % (tax 20 USD) credited by 30 USD gives
back 30 USD and 6 USD of tax; what remains creditable is 70 USD and 14 USD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing_common.currency import Currency
from billing_common.errors import Conflict, ValidationFailed
from billing_common.ids import CreditNoteId, InvoiceId
from billing_common.money import Money, divide_rounded, sum_money
from billing_invoicing.domain import Invoice, InvoiceStatus

__all__ = [
    "CreditLineRequest",
    "CreditNote",
    "CreditNoteAmountInvalid",
    "CreditNoteEmpty",
    "CreditNoteExceedsInvoice",
    "CreditNoteExceedsLine",
    "CreditNoteInvoiceMismatch",
    "CreditNoteLine",
    "CreditNoteLineNotCreditable",
    "CreditNoteLineRepeated",
    "CreditNoteLineUnknown",
    "CreditNoteReason",
    "CreditOutcome",
    "Creditable",
    "InvoiceNotCreditable",
    "RefundRequiresPayment",
    "creditable_total",
    "issue_credit_note",
    "remaining_creditable",
]


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    OTHER = "other"


class CreditOutcome(StrEnum):
    REFUND = "refund"
    """Ask payments to refund the amount to the customer's payment method."""
    CUSTOMER_BALANCE = "customer_balance"
    """Add the amount to the customer's credit balance, for its next invoices."""


# -- refusals --------------------------------------------------------------------------------


class InvoiceNotCreditable(Conflict):
    code = "invoice_not_creditable"
    title = "Only a finalized or paid invoice can be credited"


class RefundRequiresPayment(Conflict):
    code = "credit_note_refund_unpaid"
    title = "A refund needs a paid invoice; credit the customer's balance instead"


class CreditNoteLineNotCreditable(Conflict):
    code = "credit_note_line_not_creditable"
    title = "Nothing of this line can be credited"


class CreditNoteExceedsLine(Conflict):
    code = "credit_note_exceeds_line"
    title = "The credit exceeds what remains creditable of the line"


class CreditNoteExceedsInvoice(Conflict):
    code = "credit_note_exceeds_invoice"
    title = "The credit notes would exceed the invoice's total"


class CreditNoteEmpty(ValidationFailed):
    code = "credit_note_empty"
    title = "A credit note needs at least one line"


class CreditNoteLineUnknown(ValidationFailed):
    code = "credit_note_line_unknown"
    title = "The invoice has no such line"


class CreditNoteLineRepeated(ValidationFailed):
    code = "credit_note_line_repeated"
    title = "A line appears twice in one credit note"


class CreditNoteAmountInvalid(ValidationFailed):
    code = "credit_note_amount_invalid"
    title = "A credited amount is positive, in whole minor units, in the invoice's currency"


class CreditNoteInvoiceMismatch(ValidationFailed):
    code = "credit_note_invoice_mismatch"
    title = "A previous credit note belongs to another invoice"


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditLineRequest:
    """Credit `amount` (before tax) of a line, or all that remains of it when `amount` is None."""

    line_id: str
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class CreditNoteLine:
    """What one line gives back: `amount` before tax and its `tax`, both whole minor units."""

    line_id: str
    description: str
    amount: Money
    tax: Money

    @property
    def total(self) -> Money:
        return self.amount + self.tax


@dataclass(frozen=True, slots=True)
class CreditNote:
    credit_note_id: CreditNoteId
    invoice_id: InvoiceId
    currency: Currency
    reason: CreditNoteReason
    outcome: CreditOutcome
    lines: tuple[CreditNoteLine, ...]
    created_at: datetime
    memo: str | None = None

    @property
    def subtotal(self) -> Money:
        return sum_money((line.amount for line in self.lines), self.currency)

    @property
    def tax_total(self) -> Money:
        return sum_money((line.tax for line in self.lines), self.currency)

    @property
    def total(self) -> Money:
        return self.subtotal + self.tax_total


@dataclass(frozen=True, slots=True)
class Creditable:
    """What remains creditable of one line: before tax, and its tax."""

    line_id: str
    amount: Money
    tax: Money


# -- rules -----------------------------------------------------------------------------------


def _check_previous(invoice: Invoice, previous: Sequence[CreditNote]) -> None:
    for note in previous:
        if note.invoice_id != invoice.invoice_id:
            raise CreditNoteInvoiceMismatch(
                f"credit note {note.credit_note_id} is against invoice {note.invoice_id}, "
                f"not {invoice.invoice_id}",
                credit_note_id=str(note.credit_note_id),
            )


def remaining_creditable(
    invoice: Invoice, previous: Sequence[CreditNote] = ()
) -> Mapping[str, Creditable]:
    """What remains creditable of each creditable line, after `previous` credit notes.

    Lines charged nothing or less (after discount) are not listed.
    """
    _check_previous(invoice, previous)
    credited: dict[str, tuple[int, int]] = {}
    for note in previous:
        for line in note.lines:
            amount, tax = credited.get(line.line_id, (0, 0))
            credited[line.line_id] = (amount + line.amount.amount, tax + line.tax.amount)
    remaining: dict[str, Creditable] = {}
    for invoice_line in invoice.lines:
        taxable = invoice_line.taxable_amount
        if not taxable.is_positive():
            continue
        amount, tax = credited.get(invoice_line.line_id, (0, 0))
        remaining[invoice_line.line_id] = Creditable(
            invoice_line.line_id,
            Money(taxable.amount - amount, invoice.currency),
            Money(invoice_line.tax_amount.amount - tax, invoice.currency),
        )
    return remaining


def creditable_total(invoice: Invoice, previous: Sequence[CreditNote] = ()) -> Money:
    """The invoice's total less every previous credit note: the most a new one may credit."""
    _check_previous(invoice, previous)
    credited = sum_money((note.total for note in previous), invoice.currency)
    return invoice.total - credited


def _proportional_tax(invoice: Invoice, line_id: str, amount: Money) -> Money:
    line = invoice.line(line_id)
    assert line is not None
    taxable = line.taxable_amount.amount
    unit = invoice.currency.pico_per_minor_unit
    minor = divide_rounded(line.tax_amount.amount * amount.amount, taxable * unit, invoice.rounding)
    return Money(minor * unit, invoice.currency)


def _credit_line(
    invoice: Invoice, request: CreditLineRequest, remaining: Mapping[str, Creditable]
) -> CreditNoteLine:
    line = invoice.line(request.line_id)
    if line is None:
        raise CreditNoteLineUnknown(
            f"invoice {invoice.invoice_id} has no line {request.line_id!r}",
            line_id=request.line_id,
        )
    left = remaining.get(request.line_id)
    if left is None or not left.amount.is_positive():
        raise CreditNoteLineNotCreditable(
            f"line {request.line_id} has nothing left to credit"
            if left is not None
            else f"line {request.line_id} charged {line.taxable_amount}: nothing to credit",
            line_id=request.line_id,
        )
    if request.amount is None:
        return CreditNoteLine(line.line_id, line.description, left.amount, left.tax)
    amount = request.amount
    if (
        amount.currency != invoice.currency
        or not amount.is_positive()
        or amount.amount % invoice.currency.pico_per_minor_unit
    ):
        raise CreditNoteAmountInvalid(
            f"cannot credit {amount} of line {request.line_id}: an amount is positive, in "
            f"whole minor units of {invoice.currency.code}",
            line_id=request.line_id,
        )
    if amount > left.amount:
        raise CreditNoteExceedsLine(
            f"cannot credit {amount} of line {request.line_id}: {left.amount} remains",
            line_id=request.line_id,
            remaining=left.amount.to_decimal_string(),
        )
    if amount == left.amount:
        return CreditNoteLine(line.line_id, line.description, amount, left.tax)
    tax = min(_proportional_tax(invoice, line.line_id, amount), left.tax)
    return CreditNoteLine(line.line_id, line.description, amount, tax)


def issue_credit_note(
    invoice: Invoice,
    lines: Sequence[CreditLineRequest],
    *,
    credit_note_id: CreditNoteId,
    reason: CreditNoteReason,
    outcome: CreditOutcome,
    at: datetime,
    previous: Sequence[CreditNote] = (),
    memo: str | None = None,
) -> CreditNote:
    """A credit note against `invoice` for `lines`, given the invoice's `previous` notes.

    Refused (each with its own code): an invoice neither finalized nor paid; a
    refund of an unpaid invoice; no lines, a line twice, a line the invoice does
    not have; an amount not positive or not in whole minor units; more than what
    remains of a line; more, with the previous notes, than the invoice's total.
    """
    reason = CreditNoteReason(reason)
    outcome = CreditOutcome(outcome)
    if at.utcoffset() is None:
        raise ValueError("a credit note's instant is an aware datetime")
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
        raise InvoiceNotCreditable(
            f"invoice {invoice.invoice_id} is {invoice.status.value}: only a finalized or paid "
            "invoice can be credited",
            invoice_status=invoice.status.value,
        )
    if outcome is CreditOutcome.REFUND and invoice.status is not InvoiceStatus.PAID:
        raise RefundRequiresPayment(
            f"invoice {invoice.invoice_id} is not paid: nothing to refund",
            invoice_status=invoice.status.value,
        )
    if not lines:
        raise CreditNoteEmpty("a credit note needs at least one line")
    seen: set[str] = set()
    for request in lines:
        if request.line_id in seen:
            raise CreditNoteLineRepeated(
                f"line {request.line_id} appears twice", line_id=request.line_id
            )
        seen.add(request.line_id)
    remaining = remaining_creditable(invoice, previous)
    credit_lines = tuple(_credit_line(invoice, request, remaining) for request in lines)
    note = CreditNote(
        credit_note_id=credit_note_id,
        invoice_id=invoice.invoice_id,
        currency=invoice.currency,
        reason=reason,
        outcome=outcome,
        lines=credit_lines,
        created_at=at,
        memo=memo,
    )
    left = creditable_total(invoice, previous)
    if note.total > left:
        raise CreditNoteExceedsInvoice(
            f"a credit of {note.total} would exceed what remains of invoice "
            f"{invoice.invoice_id}'s total: {left}",
            remaining=left.to_decimal_string(),
        )
    return note
