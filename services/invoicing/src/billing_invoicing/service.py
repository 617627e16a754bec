"""Invoicing use cases: each runs in the transaction its caller opened, "now" passed in.

The period's invoice (`bill_period`, the saga step after rating):

1. a saga already billed finds its invoice (`invoice_sagas`, unique per saga): nothing more;
2. the projections must be current: the customer (and the parent it is billed to) known,
   the subscription revision current at the period's close seen, and the billing effects
   of the last revision up to it that bills (`projections.revision_bills`) arrived;
   otherwise `ProjectionBehind`, and the consumer parks the period (`Invoicing.bill_or_park`)
   until a projection of its customer arrives (`Invoicing.resuming`). The
   revision current at the close is the one the engine's `period_closing` saw when
   invoicing has it; without it, the snapshots must have reached the period's end and
   the revisions made before it count;
3. the pending effects whose service starts in `[period_start, period_end)` are claimed
   (each effect is on exactly one invoice) and, with the rated usage lines, become the
   period's charges;
4. the plan version's minimum commitment (`PeriodRated.minimum_commitment`) tops the
   period's charges up with a true-up line, and the subscription's coupons active in the
   period are taken off (`period_coupons`, below);
5. a customer billed to its parent (`bill_to_parent`) has its charges added to the
   parent's open cycle draft for the same period, labelled by the child; any customer's
   charges join its own open cycle draft of the same period (two subscriptions on one
   invoice); else a new draft is made, editable for the billed customer's
   `invoice_grace_period_days` (0: finalized at once, in the same transaction).
   A period joining a draft adds its minimum commitment to the draft's and its coupons
   to the draft's (one with a code the draft has already is not taken twice): both then
   apply to the draft's combined charges.

Coupons per period (`period_coupons`): the subscription's coupons are those of its
revision current at the close, each with the period it starts at (0 at creation). The
period's *index* in its subscription is the number of its periods already invoiced that
start before it (`invoice_sagas`; 0 for its first invoiced period, trial periods that
were invoiced included). A coupon starting at period `s` is active in period `i >= s`
when pricing's `CouponTerms.applies_in_period(i - s)` says so: `once` in period `s`
only, `repeating N` in periods `s` to `s + N - 1`, `forever` always. A coupon limited to
plans the period is not rated on (after a plan change) takes nothing. A coupon the
projection has not seen yet parks the period like any lagging projection.

Customers on a test clock (the engine's `test_clock_customer_attached` and
`test_clock_advanced`, projected here) live on its time: their period's draft is made when
the period closed on the clock (its end), editable for the grace period from then, and
finalized when the clock passes that (`clock_advanced` -> `finalize_due_on_clock`, or
at once when the clock is past it already), at the instant the grace ended on the clock;
the real-clock loop (`finalize_due`) leaves them alone. A command on such an invoice
through the API happens at the clock's frozen time (`invoice_now`).

Finalizing numbers the invoice gaplessly (`numbering`: a counter row per tenant and year,
taken in the finalize transaction; the year is UTC's, tenants having no timezone yet),
marks a zero total paid at once and writes `invoice_finalized` to the outbox.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from billing_common import clock_projection
from billing_common.cycle import TestClockAdvanced
from billing_common.db import Connection
from billing_common.errors import CurrencyMismatch, NotFound, ServiceUnavailable, ValidationFailed
from billing_common.events import CloudEvent, DataT
from billing_common.ids import CreditNoteId, CustomerId, InvoiceId
from billing_common.money import Money
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceContext
from billing_common.tax import NoTax, RateTableTax, TaxAdapter
from billing_invoicing import domain, projections, repository
from billing_invoicing.credit_notes import CreditLineRequest, issue_credit_note
from billing_invoicing.domain import (
    AppliedCoupon,
    ChargeSet,
    ChildRef,
    FeeTiming,
    Invoice,
    InvoiceInputs,
    InvoiceStatus,
    MinimumCommitment,
    OneOffCharge,
    TaxContext,
    TierDetail,
    UsageCharge,
    UsageDetail,
)
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
from billing_invoicing.numbering import format_number, numbering_year
from billing_invoicing.render import render_html, render_pdf
from billing_invoicing.repository import (
    KnownCustomer,
    RecordedEffect,
    StoredInvoice,
    SubscriptionRevision,
)
from billing_invoicing.schemas import (
    CreditNoteCreate,
    CreditNoteList,
    CreditNoteListQuery,
    CreditNoteResource,
    DiscountResource,
    InvoiceLineResource,
    InvoiceList,
    InvoiceListQuery,
    InvoiceResource,
    InvoiceTotals,
    OneOffLineCreate,
    TaxRate,
    TaxRates,
    UpcomingInvoice,
)
from billing_pricing.events import CouponCreated
from billing_rating.events import PeriodRated
from billing_rating.schemas import RatedLine

logger = logging.getLogger(__name__)

#: A customer with no billing address is taxed nowhere in particular (ISO "unknown").
UNKNOWN_COUNTRY = "ZZ"


class ProjectionBehind(ServiceUnavailable):
    """What a period's invoice needs has not arrived yet; retrying shortly will find it."""

    code = "invoicing_projection_behind"
    title = "Invoicing has not yet learned what this invoice needs"


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
    title = "Invoice not found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class InvoiceCurrencyMismatch(CurrencyMismatch):
    code = "invoice_currency_mismatch"
    title = "The charges are not in the currency of the customer billed"


# -- helpers ------------------------------------------------------------------------------------


def tax_context_of(customer: KnownCustomer) -> TaxContext:
    return TaxContext(
        country=customer.country or UNKNOWN_COUNTRY,
        region=customer.region,
        tax_ids=customer.tax_ids,
    )


def usage_from_rated(lines: Sequence[RatedLine]) -> tuple[UsageCharge, ...]:
    """Rated lines as usage charges, tiers kept; in-advance lines too (the domain's
    `usage_charges` rule: billed at the period's close, as nothing bills them per event)."""
    charges: list[UsageCharge] = []
    for line in lines:
        tiers = tuple(
            TierDetail(
                tier_index=tier.tier,
                from_units=tier.from_units,
                up_to=tier.up_to,
                units=tier.units,
                unit_price=None if tier.unit_price is None else tier.unit_price.to_money(),
                rate=tier.rate,
                flat_fee=None if tier.flat_fee is None else tier.flat_fee.to_money(),
                amount=tier.amount.to_money(),
                explanation=f"tier {tier.tier}: {tier.units:f} units, {tier.amount.amount}",
            )
            for tier in line.tiers
        )
        detail = UsageDetail(
            charge_id=line.charge_key,
            meter_key=line.meter_key,
            group=tuple(sorted(line.group.items())),
            rating_kind=line.kind,
            quantity=line.quantity,
            unit_price=None if line.unit_price is None else line.unit_price.to_money(),
            tiers=tiers,
            explanation=line.explanation,
        )
        charges.append(
            UsageCharge(detail, line.amount.to_money(), line.period_start, line.period_end)
        )
    return tuple(charges)


def charge_set_of(
    effects: Sequence[RecordedEffect],
    usage: Sequence[UsageCharge] = (),
    child: ChildRef | None = None,
) -> ChargeSet:
    fees: list[domain.BaseFeeCharge] = []
    prorations: list[domain.ProrationCharge] = []
    for effect in effects:
        timing = (
            FeeTiming.IN_ADVANCE if effect.base_fee_timing == "in_advance" else FeeTiming.ARREARS
        )
        more_fees, more_prorations = domain.charges_from_effects([effect], timing)
        fees.extend(more_fees)
        prorations.extend(more_prorations)
    return ChargeSet(tuple(fees), tuple(usage), tuple(prorations), child)


def _merge(
    inputs: InvoiceInputs,
    charges: ChargeSet,
    coupons: Sequence[AppliedCoupon] = (),
    minimum: MinimumCommitment | None = None,
) -> InvoiceInputs:
    """The draft's inputs with a period's charges, coupons and minimum commitment added
    (see the module: commitments add up; a coupon code already on the draft is not taken
    twice)."""
    codes = {coupon.code for coupon in inputs.coupons}
    added = tuple(coupon for coupon in coupons if coupon.code not in codes)
    commitment = inputs.minimum_commitment
    if minimum is not None:
        commitment = (
            minimum
            if commitment is None
            else replace(commitment, amount=commitment.amount + minimum.amount)
        )
    inputs = replace(inputs, coupons=inputs.coupons + added, minimum_commitment=commitment)

    def joined(into: ChargeSet) -> ChargeSet:
        return replace(
            into,
            base_fees=into.base_fees + charges.base_fees,
            usage=into.usage + charges.usage,
            prorations=into.prorations + charges.prorations,
        )

    if charges.child is None:
        return replace(inputs, own=joined(inputs.own))
    children = list(inputs.children)
    for index, child_set in enumerate(children):
        assert child_set.child is not None
        if child_set.child.customer_id == charges.child.customer_id:
            children[index] = joined(child_set)
            return replace(inputs, children=tuple(children))
    return replace(inputs, children=(*children, charges))


def _rebuilt(invoice: Invoice, inputs: InvoiceInputs, tax: TaxAdapter) -> Invoice:
    """The draft recomputed from new inputs (same id, period, tax context and rounding)."""
    return domain.build_invoice(
        invoice_id=invoice.invoice_id,
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        inputs=inputs,
        tax_context=invoice.tax_context,
        tax=tax,
        rounding=invoice.rounding,
    )


# -- the period's invoice (saga step) -------------------------------------------------------------


async def _known_customer(conn: Connection, tenant_id: str, customer_id: str) -> KnownCustomer:
    customer = await repository.get_customer(conn, tenant_id, customer_id)
    if customer is None:
        raise ProjectionBehind(f"customer {customer_id} is not known to invoicing yet")
    return customer


async def require_effects_seen(
    conn: Connection, tenant_id: str, period: PeriodRated
) -> SubscriptionRevision:
    """Raise `ProjectionBehind` unless the effects of the subscription revision current at
    the period's close have arrived (see the module); return that revision."""
    subscription_id = period.subscription_id
    revisions = await repository.get_revisions(conn, tenant_id, subscription_id)
    if not revisions:
        raise ProjectionBehind(f"subscription {subscription_id} is not known to invoicing yet")
    latest = revisions[-1]
    closing = await repository.closing_revision(conn, period.saga_id)
    if closing is not None:
        if latest.revision < closing:
            raise ProjectionBehind(
                f"subscription {subscription_id}: revision {closing} (current at the close) "
                f"not seen yet, {latest.revision} is"
            )
        relevant = [r for r in revisions if r.revision <= closing]
    else:
        reached = latest.status in ("canceled", "ended") or (
            latest.current_period_end is not None and latest.current_period_end >= period.period_end
        )
        if not reached:
            raise ProjectionBehind(
                f"subscription {subscription_id}: no revision seen yet reaches the close of "
                f"the period ending {period.period_end.isoformat()}"
            )
        relevant = [r for r in revisions if r.changed_at < period.period_end]
    current = relevant[-1] if relevant else latest
    needed = max((r.revision for r in relevant if r.bills), default=None)
    if needed is None:
        return current
    seen = await repository.latest_effect_revision(conn, tenant_id, subscription_id)
    if seen is None or seen < needed:
        raise ProjectionBehind(
            f"subscription {subscription_id}: the billing effects of revision {needed} "
            f"have not arrived yet (latest seen: {seen})"
        )
    return current


async def period_coupons(
    conn: Connection, tenant_id: str, period: PeriodRated, revision: SubscriptionRevision
) -> tuple[AppliedCoupon, ...]:
    """The subscription's coupons active in `period` (see the module), in attached order."""
    if not revision.coupons:
        return ()
    known = await repository.get_coupons(conn, tenant_id, [c.coupon_id for c in revision.coupons])
    missing = [c.coupon_id for c in revision.coupons if c.coupon_id not in known]
    if missing:
        raise ProjectionBehind(f"coupons {missing} are not known to invoicing yet")
    index = await repository.periods_invoiced_before(
        conn, tenant_id, period.subscription_id, period.period_start
    )
    active: list[AppliedCoupon] = []
    for attached in revision.coupons:
        coupon = known[attached.coupon_id]
        if coupon.plan_ids and period.plan_id not in coupon.plan_ids:
            continue
        since = index - attached.start_period
        if since < 0 or not coupon.terms.applies_in_period(since):
            continue
        terms = coupon.terms
        active.append(AppliedCoupon(terms.code, terms.percent_off, terms.amount_off))
    return tuple(active)


async def bill_period(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    period: PeriodRated,
    *,
    now: datetime,
    tax: TaxAdapter,
) -> StoredInvoice:
    """The invoice of a rated period (see the module); idempotent per saga."""
    already = await repository.invoice_of_saga(conn, period.saga_id)
    if already is not None:
        stored = await repository.get_invoice(conn, tenant_id, already)
        assert stored is not None
        return stored
    customer = await _known_customer(conn, tenant_id, period.customer_id)
    revision = await require_effects_seen(conn, tenant_id, period)
    coupons = await period_coupons(conn, tenant_id, period, revision)
    minimum = (
        None
        if period.minimum_commitment is None
        else MinimumCommitment(period.minimum_commitment.to_money())
    )
    billed, child = customer, None
    if customer.bill_to_parent and customer.parent_id is not None:
        billed = await _known_customer(conn, tenant_id, customer.parent_id)
        child = ChildRef(customer.customer_id, customer.name)
    if period.currency != billed.currency:
        raise InvoiceCurrencyMismatch(
            f"period {period.saga_id} is rated in {period.currency.code}, customer "
            f"{billed.customer_id} is billed in {billed.currency.code}"
        )
    # On the real clock the draft is made now; on a test clock when the period closed on
    # it (its end), and the clock is at least there (a later time may already be known).
    on_clock = await clock_projection.customer_clock_time(conn, tenant_id, billed.customer_id)
    made_at = now if on_clock is None else period.period_end
    clock_now = now if on_clock is None else max(on_clock, period.period_end)
    draft = await repository.find_open_draft(
        conn, tenant_id, billed.customer_id, period.period_start, period.period_end, billed.currency
    )
    invoice_id = draft.invoice.invoice_id if draft is not None else InvoiceId.new()
    effects = await repository.claim_effects(
        conn, tenant_id, period.subscription_id, period.period_start, period.period_end, invoice_id
    )
    charges = charge_set_of(effects, usage_from_rated(period.lines), child)
    if draft is None:
        inputs = _merge(InvoiceInputs(), charges, coupons, minimum)
        invoice = domain.build_invoice(
            invoice_id=invoice_id,
            customer_id=billed.customer_id,
            currency=billed.currency,
            period_start=period.period_start,
            period_end=period.period_end,
            inputs=inputs,
            tax_context=tax_context_of(billed),
            tax=tax,
        )
        stored = StoredInvoice(
            tenant_id=tenant_id,
            invoice=invoice,
            subscription_id=period.subscription_id,
            saga_id=period.saga_id,
            finalize_after=made_at + timedelta(days=billed.invoice_grace_period_days),
            created_at=made_at,
            updated_at=made_at,
        )
        await repository.insert_invoice(conn, stored)
    else:
        inputs = _merge(draft.invoice.inputs, charges, coupons, minimum)
        invoice = _rebuilt(draft.invoice, inputs, tax)
        stored = replace(draft, invoice=invoice, updated_at=clock_now)
        await repository.update_invoice(conn, stored)
    await repository.insert_saga(
        conn,
        tenant_id,
        period.saga_id,
        invoice_id,
        period.subscription_id,
        customer.customer_id,
        period.period_start,
    )
    if stored.finalize_after is not None and stored.finalize_after <= clock_now:
        # on a test clock: at the instant its grace ended on the clock
        finalized_at = now if on_clock is None else stored.finalize_after
        stored = await _finalize(conn, outbox, stored, now=finalized_at)
    return stored


# -- lifecycle ------------------------------------------------------------------------------------


async def _finalize(
    conn: Connection, outbox: OutboxWriter, stored: StoredInvoice, *, now: datetime
) -> StoredInvoice:
    """Number and finalize a locked draft, and announce it, in the caller's transaction."""
    year = numbering_year(now)
    sequence = await repository.next_sequence(conn, stored.tenant_id, year)
    invoice = domain.finalize(stored.invoice, format_number(year, sequence), now)
    finalized = replace(stored, invoice=invoice, finalize_after=None, updated_at=now)
    await repository.update_invoice(conn, finalized)
    sagas = await repository.sagas_of_invoice(conn, invoice.invoice_id)
    await outbox.add(
        conn,
        INVOICE_FINALIZED,
        finalized_fact(finalized, sagas),
        subject=invoice.customer_id,
        tenant_id=stored.tenant_id,
    )
    return finalized


def finalized_fact(stored: StoredInvoice, saga_ids: Sequence[uuid.UUID] = ()) -> InvoiceFinalized:
    invoice = stored.invoice
    assert invoice.number is not None
    assert invoice.finalized_at is not None
    return InvoiceFinalized(
        invoice_id=invoice.invoice_id,
        number=invoice.number,
        customer_id=invoice.customer_id,
        subscription_id=stored.subscription_id,
        saga_id=stored.saga_id,
        saga_ids=list(saga_ids),
        currency=invoice.currency,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        lines=[
            InvoiceLineFact(
                line_id=line.line_id,
                kind=line.kind.value,
                description=line.description,
                child_customer_id=None if line.child is None else str(line.child.customer_id),
                amount=line.amount.to_wire(),
                discount=line.discount_amount.to_wire(),
                tax=line.tax_amount.to_wire(),
                service_start=line.period_start,
                service_end=line.period_end,
            )
            for line in invoice.lines
        ],
        subtotal=invoice.subtotal.to_wire(),
        discount_total=invoice.discount_total.to_wire(),
        tax_total=invoice.tax_total.to_wire(),
        total=invoice.total.to_wire(),
        status="paid" if invoice.status is InvoiceStatus.PAID else "open",
        finalized_at=invoice.finalized_at,
    )


async def _load(
    conn: Connection, tenant_id: str, invoice_id: str, *, for_update: bool = False
) -> StoredInvoice:
    stored = await repository.get_invoice(conn, tenant_id, invoice_id, for_update=for_update)
    if stored is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", invoice_id=invoice_id)
    return stored


async def finalize_invoice(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, invoice_id: str, *, now: datetime
) -> StoredInvoice:
    """Finalize a draft before its grace period ends (409 unless it is a draft)."""
    stored = await _load(conn, tenant_id, invoice_id, for_update=True)
    return await _finalize(conn, outbox, stored, now=now)


async def void_invoice(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, invoice_id: str, *, now: datetime
) -> StoredInvoice:
    """Void a draft or a finalized invoice. The billing effects it claimed stay claimed:
    a voided period is not billed again on its own (a new one-off invoice would be)."""
    stored = await _load(conn, tenant_id, invoice_id, for_update=True)
    invoice = domain.void(stored.invoice, now)
    voided = replace(stored, invoice=invoice, finalize_after=None, updated_at=now)
    await repository.update_invoice(conn, voided)
    await outbox.add(
        conn,
        INVOICE_VOIDED,
        InvoiceVoided(
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            total=invoice.total.to_wire(),
            voided_at=now,
        ),
        subject=invoice.customer_id,
        tenant_id=tenant_id,
    )
    return voided


async def add_one_off_line(
    conn: Connection,
    tenant_id: str,
    invoice_id: str,
    request: OneOffLineCreate,
    *,
    now: datetime,
    tax: TaxAdapter,
) -> StoredInvoice:
    stored = await _load(conn, tenant_id, invoice_id, for_update=True)
    charge = OneOffCharge(
        request.description, request.unit_amount.to_money(), request.quantity, request.tax_code
    )
    invoice = domain.add_one_off_line(stored.invoice, charge, tax)
    edited = replace(stored, invoice=invoice, updated_at=now)
    await repository.update_invoice(conn, edited)
    return edited


async def finalize_due(context: ServiceContext, *, now: datetime, limit: int = 100) -> int:
    """Finalize the drafts whose grace period ended by `now`, each in its own transaction;
    return how many. The background loop calls it with the real clock; the drafts of
    customers on a test clock wait for their clock (`finalize_due_on_clock`)."""
    async with context.pool.acquire() as conn:
        due = await repository.due_drafts(conn, now, limit)
    finalized = 0
    for tenant_id, invoice_id in due:
        async with context.unit_of_work() as conn:
            stored = await repository.get_invoice(conn, tenant_id, invoice_id, for_update=True)
            if (
                stored is None
                or stored.invoice.status is not InvoiceStatus.DRAFT
                or stored.finalize_after is None
                or stored.finalize_after > now
            ):
                continue  # finalized, voided or edited meanwhile
            await _finalize(conn, context.outbox, stored, now=now)
            finalized += 1
    return finalized


# -- test clocks ----------------------------------------------------------------------------------


async def finalize_due_on_clock(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, test_clock_id: str, *, now: datetime
) -> list[StoredInvoice]:
    """Finalize, in the caller's transaction, the drafts of the clock's customers whose
    grace period ended by the clock's time `now`, each at the instant its grace ended (in
    that order, so they are numbered as the clock passed them); return them."""
    finalized = []
    for stored in await repository.due_drafts_on_clock(conn, tenant_id, test_clock_id, now):
        assert stored.finalize_after is not None
        finalized.append(await _finalize(conn, outbox, stored, now=stored.finalize_after))
    return finalized


async def clock_advanced(
    conn: Connection, outbox: OutboxWriter, event: CloudEvent[TestClockAdvanced]
) -> list[StoredInvoice]:
    """The clock moved: its customers' drafts whose grace period it passed are finalized.
    A late, earlier advance moves nothing back (the latest time known is used)."""
    data = event.data
    clock_time = await clock_projection.advance_test_clock(
        conn, event.tenantid, data.test_clock_id, data.frozen_time
    )
    return await finalize_due_on_clock(
        conn, outbox, event.tenantid, data.test_clock_id, now=clock_time
    )


async def invoice_now(
    conn: Connection, tenant_id: str, invoice_id: str, *, now: datetime
) -> datetime:
    """The time the invoice's customer lives on: its test clock's frozen time if it is
    attached to one, else `now` (the real time)."""
    frozen = await repository.invoice_clock_time(conn, tenant_id, invoice_id)
    return now if frozen is None else frozen


# -- reads ----------------------------------------------------------------------------------------


def to_public(stored: StoredInvoice) -> InvoiceResource:
    invoice = stored.invoice
    return InvoiceResource(
        **InvoiceTotals.of(invoice).model_dump(),
        id=invoice.invoice_id,
        number=invoice.number,
        status=invoice.status,
        customer_id=invoice.customer_id,
        subscription_id=stored.subscription_id,
        saga_id=stored.saga_id,
        currency=invoice.currency.code,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        lines=[InvoiceLineResource.of(line) for line in invoice.lines],
        discounts=[
            DiscountResource(
                coupon_code=d.coupon_code, description=d.description, amount=d.amount.to_public()
            )
            for d in invoice.discounts
        ],
        tax_jurisdiction=invoice.tax_jurisdiction,
        editable_until=stored.finalize_after if invoice.status is InvoiceStatus.DRAFT else None,
        finalized_at=invoice.finalized_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


async def get_invoice(conn: Connection, tenant_id: str, invoice_id: str) -> StoredInvoice:
    return await _load(conn, tenant_id, invoice_id)


async def list_invoices(conn: Connection, tenant_id: str, query: InvoiceListQuery) -> InvoiceList:
    page, has_more = await repository.list_invoices(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        customer_id=query.customer,
        status=query.status,
    )
    return InvoiceList(
        data=[to_public(stored) for stored in page],
        has_more=has_more,
        next_cursor=page[-1].invoice.invoice_id if has_more and page else None,
    )


async def invoice_document(
    conn: Connection, tenant_id: str, invoice_id: str, kind: str
) -> bytes | str:
    """The finalized invoice as PDF bytes or HTML text (409 for a draft)."""
    stored = await _load(conn, tenant_id, invoice_id)
    customer = await repository.get_customer(conn, tenant_id, stored.invoice.customer_id)
    name = "" if customer is None else customer.name
    if kind == "pdf":
        return render_pdf(stored.invoice, customer_name=name)
    return render_html(stored.invoice, customer_name=name)


async def upcoming_invoice(
    conn: Connection, tenant_id: str, customer_id: str, *, tax: TaxAdapter
) -> UpcomingInvoice:
    """The pending billing effects of the customer and of the children billed to it, priced
    as an invoice would price them (not stored). Usage is not included."""
    customer = await repository.get_customer(conn, tenant_id, customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id}", customer_id=customer_id)
    children = await repository.children_billed_to(conn, tenant_id, customer_id)
    effects = await repository.pending_effects(conn, tenant_id, [customer_id, *children])
    covers = ["pending base fees and prorations (billing effects not yet invoiced)"]
    if not effects:
        zero = Money.zero(customer.currency)
        return UpcomingInvoice(
            subtotal=zero.to_public(),
            discount_total=zero.to_public(),
            tax_total=zero.to_public(),
            total=zero.to_public(),
            amount_due=zero.to_public(),
            customer_id=customer_id,
            currency=customer.currency.code,
            period_start=None,
            period_end=None,
            covers=covers,
            lines=[],
        )
    own = charge_set_of([e for e in effects if e.customer_id == customer_id])
    child_sets = []
    for child_id in children:
        mine = [e for e in effects if e.customer_id == child_id]
        if mine:
            child = await repository.get_customer(conn, tenant_id, child_id)
            label = child.name if child is not None else child_id
            child_sets.append(charge_set_of(mine, child=ChildRef(CustomerId(child_id), label)))
    preview = domain.build_invoice(
        invoice_id=InvoiceId.new(),
        customer_id=customer.customer_id,
        currency=customer.currency,
        period_start=min(e.service_start for e in effects),
        period_end=max(e.service_end for e in effects),
        inputs=InvoiceInputs(own=own, children=tuple(child_sets)),
        tax_context=tax_context_of(customer),
        tax=tax,
    )
    return UpcomingInvoice(
        **InvoiceTotals.of(preview).model_dump(),
        customer_id=customer_id,
        currency=customer.currency.code,
        period_start=preview.period_start,
        period_end=preview.period_end,
        covers=covers,
        lines=[InvoiceLineResource.of(line) for line in preview.lines],
    )


# -- credit notes ---------------------------------------------------------------------------------


async def create_credit_note(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    request: CreditNoteCreate,
    *,
    now: datetime,
) -> CreditNoteResource:
    """Issue a credit note against a finalized or paid invoice (the invoice row locked, so
    two notes of one invoice never both pass the limits)."""
    stored = await _load(conn, tenant_id, request.invoice_id, for_update=True)
    invoice = stored.invoice
    previous = await repository.credit_notes_of(conn, tenant_id, invoice.invoice_id)
    note = issue_credit_note(
        invoice,
        [
            CreditLineRequest(line.line_id, None if line.amount is None else line.amount.to_money())
            for line in request.lines
        ],
        credit_note_id=CreditNoteId.new(),
        reason=request.reason,
        outcome=request.outcome,
        at=now,
        previous=previous,
        memo=request.memo,
    )
    await repository.insert_credit_note(conn, tenant_id, invoice.customer_id, note)
    await outbox.add(
        conn,
        CREDIT_NOTE_ISSUED,
        CreditNoteIssued(
            credit_note_id=note.credit_note_id,
            invoice_id=note.invoice_id,
            customer_id=invoice.customer_id,
            currency=note.currency,
            reason=note.reason.value,
            outcome=note.outcome.value,
            lines=[
                CreditNoteLineFact(
                    line_id=line.line_id, amount=line.amount.to_wire(), tax=line.tax.to_wire()
                )
                for line in note.lines
            ],
            amount=note.subtotal.to_wire(),
            tax=note.tax_total.to_wire(),
            total=note.total.to_wire(),
            issued_at=now,
        ),
        subject=invoice.customer_id,
        tenant_id=tenant_id,
    )
    return CreditNoteResource.of(note, invoice.customer_id)


async def list_credit_notes(
    conn: Connection, tenant_id: str, query: CreditNoteListQuery
) -> CreditNoteList:
    page, has_more = await repository.list_credit_notes(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        invoice_id=query.invoice,
    )
    return CreditNoteList(
        data=[CreditNoteResource.of(note, customer_id) for customer_id, note in page],
        has_more=has_more,
        next_cursor=page[-1][1].credit_note_id if has_more and page else None,
    )


# -- tax rates --------------------------------------------------------------------------------


class DuplicateTaxRate(ValidationFailed):
    code = "duplicate_tax_rate"
    title = "A jurisdiction appears twice"


class InvalidTaxRate(ValidationFailed):
    code = "invalid_tax_rate"
    title = "A tax rate is a fraction from 0 to 1"


async def tax_adapter(conn: Connection, tenant_id: str) -> TaxAdapter:
    """The tenant's taxes: its rate table, or no tax when it has none. A place the table
    does not name is not taxed (rate 0)."""
    rates = await repository.tax_rates(conn, tenant_id)
    if not rates:
        return NoTax()
    return RateTableTax(
        {(country, region): rate for country, region, rate in rates}, default_rate=Decimal(0)
    )


async def get_tax_rates(conn: Connection, tenant_id: str) -> TaxRates:
    return TaxRates(
        rates=[
            TaxRate(country=country, region=region, rate=rate)
            for country, region, rate in await repository.tax_rates(conn, tenant_id)
        ]
    )


async def set_tax_rates(conn: Connection, tenant_id: str, body: TaxRates) -> TaxRates:
    """Replace the tenant's table; invoices finalized before keep the tax they had."""
    seen: set[tuple[str, str | None]] = set()
    for index, rate in enumerate(body.rates):
        place = (rate.country, rate.region)
        if place in seen:
            raise DuplicateTaxRate(
                f"{rate.country}{'-' + rate.region if rate.region else ''} appears twice",
                errors=[{"field": f"rates.{index}", "message": "appears twice"}],
            )
        seen.add(place)
        if not Decimal(0) <= rate.rate < Decimal(1):
            raise InvalidTaxRate(
                f"rate {rate.rate} must be a fraction from 0 to 1 (0.2 is 20 %)",
                errors=[{"field": f"rates.{index}.rate", "message": "from 0 to 1"}],
            )
    await repository.replace_tax_rates(
        conn, tenant_id, [(rate.country, rate.region, rate.rate) for rate in body.rates]
    )
    return await get_tax_rates(conn, tenant_id)


# -- the service's handlers, bound to its outbox, clock and tax adapter ---------------------------


class Invoicing:
    """What the consumer's saga and test clock handlers need: an outbox, a clock and the
    tax adapter."""

    def __init__(
        self,
        outbox: OutboxWriter,
        clock: Callable[[], datetime],
        tax: TaxAdapter | None = None,
    ) -> None:
        self.outbox = outbox
        self.clock = clock
        self._tax = tax

    async def taxes(self, conn: Connection, tenant_id: str) -> TaxAdapter:
        """The adapter given at construction (tests), else the tenant's rate table."""
        return self._tax if self._tax is not None else await tax_adapter(conn, tenant_id)

    async def period_rated(self, conn: Connection, event: CloudEvent[PeriodRated]) -> None:
        """The saga step: the period's invoice (retryable while projections lag)."""
        tax = await self.taxes(conn, event.tenantid)
        await bill_period(conn, self.outbox, event.tenantid, event.data, now=self.clock(), tax=tax)

    async def bill_or_park(self, conn: Connection, event: CloudEvent[PeriodRated]) -> None:
        """The saga step as the consumer runs it: the period's invoice, or, while the
        projections it needs lag, the period parked until they arrive (`resuming`).

        Not retried in place: the consumer reads all its topics in one sequence, so the
        retry would hold back the very projection it waits for, and the period would end
        in the dead-letter topic (and, many in a row, halt the consumer).
        """
        period = event.data
        try:
            async with conn.transaction():  # a savepoint: a parked attempt leaves nothing
                await self.period_rated(conn, event)
        except ProjectionBehind as behind:
            await repository.park_period(
                conn,
                event.tenantid,
                period.saga_id,
                period.customer_id,
                period.period_start,
                period.model_dump_json(),
                behind.detail,
                self.clock(),
            )
            logger.info("parked period %s: %s", period.saga_id, behind.detail)
            return
        await repository.unpark_period(conn, period.saga_id)

    async def resume_parked(self, conn: Connection, tenant_id: str, customer_id: str) -> int:
        """Bill the parked periods of `customer_id` (and of the children billed to it) whose
        projections have arrived; return how many. One that still cannot be billed stays
        parked (the engine's re-emission of its close is the backstop)."""
        billed = 0
        for payload in await repository.parked_periods_of(conn, tenant_id, customer_id):
            period = PeriodRated.model_validate_json(payload)
            try:
                async with conn.transaction():
                    tax = await self.taxes(conn, tenant_id)
                    await bill_period(
                        conn, self.outbox, tenant_id, period, now=self.clock(), tax=tax
                    )
            except ProjectionBehind:
                continue
            except Exception:  # never fail the projection that triggered the attempt
                logger.warning("billing parked period %s failed", period.saga_id, exc_info=True)
                continue
            await repository.unpark_period(conn, period.saga_id)
            billed += 1
        return billed

    def resuming(
        self, handler: Callable[[Connection, CloudEvent[DataT]], Awaitable[None]]
    ) -> Callable[[Connection, CloudEvent[DataT]], Awaitable[None]]:
        """`handler` (a projection), then the parked periods of the event's customer (its
        subject), in the same inbox transaction."""

        async def handle(conn: Connection, event: CloudEvent[DataT]) -> None:
            await handler(conn, event)
            await self.resume_parked(conn, event.tenantid, event.subject)

        return handle

    async def coupon_created(self, conn: Connection, event: CloudEvent[CouponCreated]) -> None:
        """Keep the coupon, then bill the tenant's parked periods that waited for it (its
        subject is the coupon, not a customer)."""
        await projections.coupon_created(conn, event)
        for customer_id in await repository.customers_with_parked_periods(conn, event.tenantid):
            await self.resume_parked(conn, event.tenantid, customer_id)

    async def test_clock_advanced(
        self, conn: Connection, event: CloudEvent[TestClockAdvanced]
    ) -> None:
        """Finalize the drafts whose grace period the clock passed."""
        await clock_advanced(conn, self.outbox, event)
