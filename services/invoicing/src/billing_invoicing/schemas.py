"""The public API shapes of invoicing (validated by the gateway and by the service).

Money is `MoneyPublic` (`{"amount": "12.5", "currency": "USD"}`, major units); a JSON
float is refused wherever a quantity or amount is read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing_common.ids import CreditNoteId, CustomerId, InvoiceId
from billing_common.money import MoneyPublic
from billing_invoicing.credit_notes import CreditNote, CreditNoteReason, CreditOutcome
from billing_invoicing.domain import Invoice, InvoiceLine, InvoiceStatus, LineKind
from billing_pricing.schemas import DecimalText

_Text = Annotated[str, Field(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- queries and commands -----------------------------------------------------------------------


class InvoiceListQuery(_Strict):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: InvoiceId | None = None
    customer: CustomerId | None = None
    status: InvoiceStatus | None = None


class OneOffLineCreate(_Strict):
    """`POST /v1/invoices/{id}/lines`: `quantity` x `unit_amount` (negative for a credit)."""

    description: _Text
    unit_amount: MoneyPublic
    quantity: DecimalText = Decimal(1)
    tax_code: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class CreditNoteLineCreate(_Strict):
    line_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: MoneyPublic | None = Field(
        default=None, description="before tax; all that remains of the line when omitted"
    )


class CreditNoteCreate(_Strict):
    invoice_id: InvoiceId
    lines: list[CreditNoteLineCreate] = Field(max_length=500)
    reason: CreditNoteReason
    outcome: CreditOutcome
    memo: Annotated[str, Field(max_length=500)] | None = None


class CreditNoteListQuery(_Strict):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: CreditNoteId | None = None
    invoice: InvoiceId | None = None


# -- resources ----------------------------------------------------------------------------------


class InvoiceLineResource(BaseModel):
    id: str
    kind: LineKind
    description: str
    child_customer_id: str | None
    quantity: DecimalText | None
    amount: MoneyPublic = Field(description="rounded once to the minor unit")
    exact_amount: MoneyPublic
    discount: MoneyPublic
    tax: MoneyPublic
    tax_rate: DecimalText
    tax_treatment: str
    total: MoneyPublic
    period_start: AwareDatetime | None
    period_end: AwareDatetime | None
    details: list[str]

    @classmethod
    def of(cls, line: InvoiceLine) -> InvoiceLineResource:
        return cls(
            id=line.line_id,
            kind=line.kind,
            description=line.description,
            child_customer_id=None if line.child is None else str(line.child.customer_id),
            quantity=line.quantity,
            amount=line.amount.to_public(),
            exact_amount=line.exact_amount.to_public(),
            discount=line.discount_amount.to_public(),
            tax=line.tax_amount.to_public(),
            tax_rate=line.tax_rate,
            tax_treatment=line.tax_treatment.value,
            total=line.total.to_public(),
            period_start=line.period_start,
            period_end=line.period_end,
            details=list(line.details),
        )


class DiscountResource(BaseModel):
    coupon_code: str
    description: str
    amount: MoneyPublic


class InvoiceTotals(BaseModel):
    subtotal: MoneyPublic
    discount_total: MoneyPublic
    tax_total: MoneyPublic
    total: MoneyPublic
    amount_due: MoneyPublic

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceTotals:
        return cls(
            subtotal=invoice.subtotal.to_public(),
            discount_total=invoice.discount_total.to_public(),
            tax_total=invoice.tax_total.to_public(),
            total=invoice.total.to_public(),
            amount_due=invoice.amount_due.to_public(),
        )


class InvoiceResource(InvoiceTotals):
    object: Literal["invoice"] = "invoice"
    id: str
    number: str | None
    status: InvoiceStatus
    customer_id: str
    subscription_id: str | None
    saga_id: uuid.UUID | None
    currency: str
    period_start: AwareDatetime
    period_end: AwareDatetime
    lines: list[InvoiceLineResource]
    discounts: list[DiscountResource]
    tax_jurisdiction: str
    editable_until: AwareDatetime | None = Field(
        description="a draft's grace period: it is finalized when this passes"
    )
    finalized_at: AwareDatetime | None
    paid_at: AwareDatetime | None
    voided_at: AwareDatetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime


class InvoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[InvoiceResource]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class UpcomingInvoice(InvoiceTotals):
    """A preview of what the customer's next invoices bill so far, not stored.

    It covers the billing effects (base fees, prorations) recorded and not yet invoiced,
    the customer's own and those of its children billed to it. Usage is not included:
    invoicing learns usage only when rating rates a closed period.
    """

    object: Literal["upcoming_invoice"] = "upcoming_invoice"
    customer_id: str
    currency: str
    period_start: AwareDatetime | None
    period_end: AwareDatetime | None
    covers: list[str]
    lines: list[InvoiceLineResource]


class CreditNoteLineResource(BaseModel):
    line_id: str
    description: str
    amount: MoneyPublic
    tax: MoneyPublic
    total: MoneyPublic


class CreditNoteResource(BaseModel):
    object: Literal["credit_note"] = "credit_note"
    id: str
    invoice_id: str
    customer_id: str
    currency: str
    reason: CreditNoteReason
    outcome: CreditOutcome
    memo: str | None
    lines: list[CreditNoteLineResource]
    subtotal: MoneyPublic
    tax_total: MoneyPublic
    total: MoneyPublic
    created_at: datetime

    @classmethod
    def of(cls, note: CreditNote, customer_id: str) -> CreditNoteResource:
        return cls(
            id=note.credit_note_id,
            invoice_id=note.invoice_id,
            customer_id=customer_id,
            currency=note.currency.code,
            reason=note.reason,
            outcome=note.outcome,
            memo=note.memo,
            lines=[
                CreditNoteLineResource(
                    line_id=line.line_id,
                    description=line.description,
                    amount=line.amount.to_public(),
                    tax=line.tax.to_public(),
                    total=line.total.to_public(),
                )
                for line in note.lines
            ],
            subtotal=note.subtotal.to_public(),
            tax_total=note.tax_total.to_public(),
            total=note.total.to_public(),
            created_at=note.created_at,
        )


class CreditNoteList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CreditNoteResource]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class TaxRate(_Strict):
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    region: Annotated[str, Field(min_length=1, max_length=10)] | None = Field(
        default=None, description="a region of the country (US state, ...); none: all of it"
    )
    rate: DecimalText = Field(description="a fraction: 0.2 is 20 %; from 0 to 1 excluded")


class TaxRates(_Strict):
    """`PUT /v1/tax_rates`: the tenant's whole table. A customer is taxed at its billing
    address's region's rate, else its country's; a place not in the table is not taxed."""

    object: Literal["tax_rates"] = "tax_rates"
    rates: list[TaxRate] = Field(default_factory=list, max_length=500)
