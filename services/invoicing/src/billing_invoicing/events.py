"""Topics the invoicing service produces: invoices as they are finalized, paid or voided,
and credit notes. Amounts are wire money (pico-units as integer strings).

Consumed (`CONSUMES`, see `projections` and `service.bill_period`): customers, subscription
revisions and billing effects (projections), the engine's period closes (the revision each
close saw), rating's rated periods (the saga step that makes the period's invoice) and the
engine's test clocks (attachments and advances: drafts of a clock's customers are made and
finalized on its time, see `service`).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.cycle import PERIOD_CLOSING, TEST_CLOCK_ADVANCED, TEST_CLOCK_CUSTOMER_ATTACHED
from billing_common.events import EventData, Topic
from billing_common.money import MoneyWire
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_pricing.events import COUPON_CREATED
from billing_rating.events import PERIOD_RATED
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
)

LineKind = Literal["base_fee", "usage", "proration", "minimum_commitment", "one_off"]


class InvoiceLineFact(EventData):
    line_id: str
    kind: LineKind
    description: str
    child_customer_id: str | None = Field(
        default=None, description="on a parent's invoice, the child the line was billed for"
    )
    amount: MoneyWire = Field(description="rounded to the minor unit, before discount")
    discount: MoneyWire
    tax: MoneyWire
    service_start: AwareDatetime | None = None
    service_end: AwareDatetime | None = None


class InvoiceFinalized(EventData):
    """An invoice became final: numbered, immutable, owed (or paid at once when zero).

    `total = subtotal - discount_total + tax_total`; each is the sum of the lines'.
    `saga_id` names the period close it came from (none for a one-off invoice).
    """

    invoice_id: str
    number: str
    customer_id: str
    subscription_id: str | None
    saga_id: uuid.UUID | None
    saga_ids: list[uuid.UUID] = Field(
        default_factory=list,
        description="every period close billed on this invoice (a parent's consolidated "
        "invoice bills its children's too); `saga_id` is the first of them",
    )
    currency: Currency
    period_start: AwareDatetime | None
    period_end: AwareDatetime | None
    lines: list[InvoiceLineFact]
    subtotal: MoneyWire
    discount_total: MoneyWire
    tax_total: MoneyWire
    total: MoneyWire
    status: Literal["open", "paid"] = Field(description="paid at once when the total is zero")
    finalized_at: AwareDatetime


INVOICE_FINALIZED = Topic(
    "invoicing",
    "invoice_finalized",
    InvoiceFinalized,
    "An invoice was finalized: the ledger posts it, the engine closes the period's saga.",
)


class InvoiceVoided(EventData):
    invoice_id: str
    number: str | None
    customer_id: str
    currency: Currency
    total: MoneyWire
    voided_at: AwareDatetime


INVOICE_VOIDED = Topic(
    "invoicing",
    "invoice_voided",
    InvoiceVoided,
    "An invoice was voided: nothing of it is owed any more.",
)


class CreditNoteLineFact(EventData):
    line_id: str
    amount: MoneyWire = Field(description="credited, before tax")
    tax: MoneyWire


class CreditNoteIssued(EventData):
    credit_note_id: str
    invoice_id: str
    customer_id: str
    currency: Currency
    reason: str
    outcome: Literal["refund", "customer_balance"]
    lines: list[CreditNoteLineFact]
    amount: MoneyWire = Field(description="sum of the lines' amounts, before tax")
    tax: MoneyWire
    total: MoneyWire
    issued_at: AwareDatetime


CREDIT_NOTE_ISSUED = Topic(
    "invoicing",
    "credit_note_issued",
    CreditNoteIssued,
    "A credit note was issued against an invoice: a refund request or customer credit.",
)

PRODUCES: tuple[Topic[Any], ...] = (INVOICE_FINALIZED, INVOICE_VOIDED, CREDIT_NOTE_ISSUED)

#: Customers, subscription revisions, billing effects and coupons (projections), the
#: engine's period closes (which revision each saw), rating's rated periods (the saga step
#: billed here) and the engine's test clocks (the time their customers' drafts are made
#: and finalized on).
CONSUMES: tuple[Topic[Any], ...] = (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BILLING_EFFECTS_RECORDED,
    PERIOD_CLOSING,
    COUPON_CREATED,
    PERIOD_RATED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    TEST_CLOCK_ADVANCED,
)
