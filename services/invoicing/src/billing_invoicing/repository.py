"""All SQL of the invoicing schema, and the records it reads and writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from billing_common.currency import Currency
from billing_common.db import Connection, fetch_page
from billing_common.discounts import CouponDuration, CouponTerms
from billing_common.ids import CustomerId
from billing_common.money import Money
from billing_invoicing import codec
from billing_invoicing.credit_notes import CreditNote
from billing_invoicing.domain import Invoice, InvoiceStatus

# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownCustomer:
    """What invoicing needs of a customer: who pays, in what, where, and the grace period."""

    customer_id: CustomerId
    name: str
    currency: Currency
    timezone: str
    invoice_grace_period_days: int
    parent_id: CustomerId | None
    bill_to_parent: bool
    country: str | None
    region: str | None
    tax_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionRevision:
    """One revision of a subscription as its snapshot announced it."""

    subscription_id: str
    revision: int
    customer_id: str
    status: str
    action: str
    changed_at: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    bills: bool
    coupons: tuple[RevisionCoupon, ...] = ()


@dataclass(frozen=True, slots=True)
class RevisionCoupon:
    """A coupon a subscription carries, from its period `start_period` on (0: the first)."""

    coupon_id: str
    start_period: int


@dataclass(frozen=True, slots=True)
class KnownCoupon:
    """A coupon as pricing announced it: its terms and the plans it is limited to (none:
    any plan)."""

    coupon_id: str
    terms: CouponTerms
    plan_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecordedEffect:
    """One billing effect of a subscription's revision (a `domain.FeeEffect`)."""

    subscription_id: str
    revision: int
    position: int
    customer_id: str
    reason: str
    plan_id: str
    plan_version: int
    base_fee_timing: str
    amount: Money
    service_start: datetime
    service_end: datetime


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    """An invoice and what the domain does not know: its tenant, saga and grace period."""

    tenant_id: str
    invoice: Invoice
    subscription_id: str | None
    saga_id: uuid.UUID | None
    finalize_after: datetime | None
    created_at: datetime
    updated_at: datetime


# -- customers ----------------------------------------------------------------------------------


async def upsert_customer(
    conn: Connection, tenant_id: str, customer: KnownCustomer, changed_at: datetime
) -> None:
    """Keep the customer; an older snapshot arriving late changes nothing."""
    await conn.execute(
        "INSERT INTO customers (tenant_id, customer_id, name, currency, timezone,"
        " invoice_grace_period_days, parent_id, bill_to_parent, country, region, tax_ids,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = EXCLUDED.name,"
        " currency = EXCLUDED.currency, timezone = EXCLUDED.timezone,"
        " invoice_grace_period_days = EXCLUDED.invoice_grace_period_days,"
        " parent_id = EXCLUDED.parent_id, bill_to_parent = EXCLUDED.bill_to_parent,"
        " country = EXCLUDED.country, region = EXCLUDED.region, tax_ids = EXCLUDED.tax_ids,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE customers.updated_at <= EXCLUDED.updated_at",
        tenant_id,
        customer.customer_id,
        customer.name,
        customer.currency.code,
        customer.timezone,
        customer.invoice_grace_period_days,
        customer.parent_id,
        customer.bill_to_parent,
        customer.country,
        customer.region,
        json.dumps(list(customer.tax_ids)),
        changed_at,
    )


async def get_customer(conn: Connection, tenant_id: str, customer_id: str) -> KnownCustomer | None:
    row = await conn.fetchrow(
        "SELECT * FROM customers WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id,
        customer_id,
    )
    if row is None:
        return None
    return KnownCustomer(
        customer_id=CustomerId(row["customer_id"]),
        name=row["name"],
        currency=Currency.of(row["currency"]),
        timezone=row["timezone"],
        invoice_grace_period_days=row["invoice_grace_period_days"],
        parent_id=None if row["parent_id"] is None else CustomerId(row["parent_id"]),
        bill_to_parent=row["bill_to_parent"],
        country=row["country"],
        region=row["region"],
        tax_ids=tuple(json.loads(row["tax_ids"])),
    )


async def children_billed_to(conn: Connection, tenant_id: str, parent_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT customer_id FROM customers WHERE tenant_id = $1 AND parent_id = $2"
        " AND bill_to_parent ORDER BY customer_id",
        tenant_id,
        parent_id,
    )
    return [row["customer_id"] for row in rows]


# -- subscription revisions and their effects ----------------------------------------------------


async def insert_revision(conn: Connection, tenant_id: str, revision: SubscriptionRevision) -> None:
    """Keep a revision; revisions never change, so a redelivery is ignored."""
    await conn.execute(
        "INSERT INTO subscription_revisions (tenant_id, subscription_id, revision, customer_id,"
        " status, action, changed_at, current_period_start, current_period_end, bills, coupons)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (tenant_id, subscription_id, revision) DO NOTHING",
        tenant_id,
        revision.subscription_id,
        revision.revision,
        revision.customer_id,
        revision.status,
        revision.action,
        revision.changed_at,
        revision.current_period_start,
        revision.current_period_end,
        revision.bills,
        json.dumps(
            [{"coupon_id": c.coupon_id, "start_period": c.start_period} for c in revision.coupons]
        ),
    )


async def get_revisions(
    conn: Connection, tenant_id: str, subscription_id: str
) -> list[SubscriptionRevision]:
    """Every known revision of the subscription, oldest first."""
    rows = await conn.fetch(
        "SELECT subscription_id, revision, customer_id, status, action, changed_at,"
        " current_period_start, current_period_end, bills, coupons FROM subscription_revisions"
        " WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY revision",
        tenant_id,
        subscription_id,
    )
    revisions = []
    for row in rows:
        fields = dict(row)
        fields["coupons"] = tuple(
            RevisionCoupon(c["coupon_id"], c["start_period"]) for c in json.loads(row["coupons"])
        )
        revisions.append(SubscriptionRevision(**fields))
    return revisions


async def insert_coupon(conn: Connection, tenant_id: str, coupon: KnownCoupon) -> None:
    """Keep a coupon; coupons never change, so one already known stays as it is."""
    terms = coupon.terms
    amount = terms.amount_off
    await conn.execute(
        "INSERT INTO coupons (tenant_id, coupon_id, code, percent_off, amount_off, currency,"
        " duration, duration_periods, plan_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (tenant_id, coupon_id) DO NOTHING",
        tenant_id,
        coupon.coupon_id,
        terms.code,
        None if terms.percent_off is None else str(terms.percent_off),
        None if amount is None else Decimal(amount.amount),
        None if amount is None else amount.currency.code,
        terms.duration.value,
        terms.duration_periods,
        json.dumps(list(coupon.plan_ids)),
    )


async def get_coupons(
    conn: Connection, tenant_id: str, coupon_ids: Sequence[str]
) -> dict[str, KnownCoupon]:
    """The coupons known among `coupon_ids`, by id."""
    rows = await conn.fetch(
        "SELECT coupon_id, code, percent_off, amount_off, currency, duration, duration_periods,"
        " plan_ids FROM coupons WHERE tenant_id = $1 AND coupon_id = ANY($2::TEXT[])",
        tenant_id,
        list(coupon_ids),
    )
    return {
        row["coupon_id"]: KnownCoupon(
            coupon_id=row["coupon_id"],
            terms=CouponTerms(
                row["code"],
                None if row["percent_off"] is None else Decimal(row["percent_off"]),
                None
                if row["amount_off"] is None
                else Money(int(row["amount_off"]), Currency.of(row["currency"])),
                CouponDuration(row["duration"]),
                row["duration_periods"],
            ),
            plan_ids=tuple(json.loads(row["plan_ids"])),
        )
        for row in rows
    }


async def insert_effects(
    conn: Connection, tenant_id: str, currency: Currency, effects: Sequence[RecordedEffect]
) -> None:
    """Keep a revision's effects, pending; a redelivery changes nothing (and never un-bills)."""
    for effect in effects:
        await conn.execute(
            "INSERT INTO billing_effects (tenant_id, subscription_id, revision, position,"
            " customer_id, reason, plan_id, plan_version, base_fee_timing, amount, currency,"
            " service_start, service_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
            " $11, $12, $13) ON CONFLICT (tenant_id, subscription_id, revision, position)"
            " DO NOTHING",
            tenant_id,
            effect.subscription_id,
            effect.revision,
            effect.position,
            effect.customer_id,
            effect.reason,
            effect.plan_id,
            effect.plan_version,
            effect.base_fee_timing,
            Decimal(effect.amount.amount),
            currency.code,
            effect.service_start,
            effect.service_end,
        )


async def latest_effect_revision(
    conn: Connection, tenant_id: str, subscription_id: str
) -> int | None:
    """The highest revision whose effects arrived (they arrive in revision order)."""
    value: int | None = await conn.fetchval(
        "SELECT max(revision) FROM billing_effects WHERE tenant_id = $1 AND subscription_id = $2",
        tenant_id,
        subscription_id,
    )
    return value


_EFFECT_COLUMNS = (
    "subscription_id, revision, position, customer_id, reason, plan_id, plan_version,"
    " base_fee_timing, amount, currency, service_start, service_end"
)


def _to_effect(row: asyncpg.Record) -> RecordedEffect:
    return RecordedEffect(
        subscription_id=row["subscription_id"],
        revision=row["revision"],
        position=row["position"],
        customer_id=row["customer_id"],
        reason=row["reason"],
        plan_id=row["plan_id"],
        plan_version=row["plan_version"],
        base_fee_timing=row["base_fee_timing"],
        amount=Money(int(row["amount"]), Currency.of(row["currency"])),
        service_start=row["service_start"],
        service_end=row["service_end"],
    )


async def claim_effects(
    conn: Connection,
    tenant_id: str,
    subscription_id: str,
    period_start: datetime,
    period_end: datetime,
    invoice_id: str,
) -> list[RecordedEffect]:
    """Put the pending effects whose service starts in `[period_start, period_end)` on
    `invoice_id`, and return them in revision order. An effect already claimed is not
    returned: each effect is on exactly one invoice."""
    rows = await conn.fetch(
        f"UPDATE billing_effects SET invoice_id = $5 WHERE tenant_id = $1"
        f" AND subscription_id = $2 AND invoice_id IS NULL AND service_start >= $3"
        f" AND service_start < $4 RETURNING {_EFFECT_COLUMNS}",
        tenant_id,
        subscription_id,
        period_start,
        period_end,
        invoice_id,
    )
    return sorted((_to_effect(row) for row in rows), key=lambda e: (e.revision, e.position))


async def pending_effects(
    conn: Connection, tenant_id: str, customer_ids: Sequence[str]
) -> list[RecordedEffect]:
    rows = await conn.fetch(
        f"SELECT {_EFFECT_COLUMNS} FROM billing_effects WHERE tenant_id = $1"
        " AND customer_id = ANY($2::TEXT[]) AND invoice_id IS NULL"
        " ORDER BY service_start, subscription_id, revision, position",
        tenant_id,
        list(customer_ids),
    )
    return [_to_effect(row) for row in rows]


async def effects_of_invoice(conn: Connection, invoice_id: str) -> list[RecordedEffect]:
    rows = await conn.fetch(
        f"SELECT {_EFFECT_COLUMNS} FROM billing_effects WHERE invoice_id = $1"
        " ORDER BY subscription_id, revision, position",
        invoice_id,
    )
    return [_to_effect(row) for row in rows]


# -- period closes -------------------------------------------------------------------------------


async def insert_period_closing(
    conn: Connection, tenant_id: str, saga_id: uuid.UUID, subscription_id: str, revision: int
) -> None:
    await conn.execute(
        "INSERT INTO period_closings (saga_id, tenant_id, subscription_id, subscription_revision)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (saga_id) DO NOTHING",
        saga_id,
        tenant_id,
        subscription_id,
        revision,
    )


async def closing_revision(conn: Connection, saga_id: uuid.UUID) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT subscription_revision FROM period_closings WHERE saga_id = $1", saga_id
    )
    return value


# -- invoices ------------------------------------------------------------------------------------

_INVOICE_COLUMNS = (
    "id, tenant_id, subscription_id, saga_id, finalize_after, document, created_at, updated_at"
)


def _to_stored(row: asyncpg.Record) -> StoredInvoice:
    return StoredInvoice(
        tenant_id=row["tenant_id"],
        invoice=codec.decode(Invoice, json.loads(row["document"])),
        subscription_id=row["subscription_id"],
        saga_id=row["saga_id"],
        finalize_after=row["finalize_after"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_invoice(conn: Connection, stored: StoredInvoice) -> None:
    invoice = stored.invoice
    await conn.execute(
        "INSERT INTO invoices (id, tenant_id, customer_id, subscription_id, saga_id, status,"
        " number, currency, period_start, period_end, total, finalize_after, document,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13, $14, $15)",
        invoice.invoice_id,
        stored.tenant_id,
        invoice.customer_id,
        stored.subscription_id,
        stored.saga_id,
        invoice.status.value,
        invoice.number,
        invoice.currency.code,
        invoice.period_start,
        invoice.period_end,
        Decimal(invoice.total.amount),
        stored.finalize_after,
        json.dumps(codec.encode(invoice)),
        stored.created_at,
        stored.updated_at,
    )


async def update_invoice(conn: Connection, stored: StoredInvoice) -> None:
    invoice = stored.invoice
    await conn.execute(
        "UPDATE invoices SET status = $2, number = $3, total = $4, finalize_after = $5,"
        " document = $6, updated_at = $7 WHERE id = $1",
        invoice.invoice_id,
        invoice.status.value,
        invoice.number,
        Decimal(invoice.total.amount),
        stored.finalize_after,
        json.dumps(codec.encode(invoice)),
        stored.updated_at,
    )


async def get_invoice(
    conn: Connection, tenant_id: str, invoice_id: str, *, for_update: bool = False
) -> StoredInvoice | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND id = $2{lock}",
        tenant_id,
        invoice_id,
    )
    return None if row is None else _to_stored(row)


async def find_open_draft(
    conn: Connection,
    tenant_id: str,
    customer_id: str,
    period_start: datetime,
    period_end: datetime,
    currency: Currency,
) -> StoredInvoice | None:
    """The customer's cycle draft for exactly this period, locked, if one is still open."""
    row = await conn.fetchrow(
        f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND customer_id = $2"
        " AND period_start = $3 AND period_end = $4 AND currency = $5 AND status = 'draft'"
        " AND saga_id IS NOT NULL ORDER BY id LIMIT 1 FOR UPDATE",
        tenant_id,
        customer_id,
        period_start,
        period_end,
        currency.code,
    )
    return None if row is None else _to_stored(row)


async def list_invoices(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    customer_id: str | None,
    status: InvoiceStatus | None,
) -> tuple[list[StoredInvoice], bool]:
    """One page in id order (ids are time-ordered); also says whether more follow."""
    rows, has_more = await fetch_page(
        conn,
        table="invoices",
        columns=_INVOICE_COLUMNS,
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal={"customer_id": customer_id, "status": None if status is None else status.value},
    )
    return [_to_stored(row) for row in rows], has_more


async def due_drafts(conn: Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """`(tenant_id, invoice_id)` of drafts whose grace period ended by `now` on the real
    clock: the drafts of customers on a test clock are left to their clock
    (`due_drafts_on_clock`)."""
    rows = await conn.fetch(
        "SELECT tenant_id, id FROM invoices i WHERE status = 'draft'"
        " AND finalize_after IS NOT NULL AND finalize_after <= $1"
        " AND NOT EXISTS (SELECT 1 FROM test_clock_customers c"
        "  WHERE c.tenant_id = i.tenant_id AND c.customer_id = i.customer_id)"
        " ORDER BY finalize_after, id LIMIT $2",
        now,
        limit,
    )
    return [(row["tenant_id"], row["id"]) for row in rows]


async def due_drafts_on_clock(
    conn: Connection, tenant_id: str, test_clock_id: str, clock_time: datetime
) -> list[StoredInvoice]:
    """The drafts of the clock's customers whose grace period ended by `clock_time`, locked,
    in the order their grace periods ended."""
    rows = await conn.fetch(
        f"SELECT {_INVOICE_COLUMNS} FROM invoices i WHERE i.tenant_id = $1"
        " AND i.status = 'draft' AND i.finalize_after IS NOT NULL AND i.finalize_after <= $3"
        " AND i.customer_id IN (SELECT customer_id FROM test_clock_customers"
        "  WHERE tenant_id = $1 AND test_clock_id = $2)"
        " ORDER BY i.finalize_after, i.id FOR UPDATE",
        tenant_id,
        test_clock_id,
        clock_time,
    )
    return [_to_stored(row) for row in rows]


async def insert_saga(
    conn: Connection,
    tenant_id: str,
    saga_id: uuid.UUID,
    invoice_id: str,
    subscription_id: str,
    customer_id: str,
    period_start: datetime | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO invoice_sagas (saga_id, tenant_id, invoice_id, subscription_id, customer_id,"
        " period_start) VALUES ($1, $2, $3, $4, $5, $6)",
        saga_id,
        tenant_id,
        invoice_id,
        subscription_id,
        customer_id,
        period_start,
    )


async def periods_invoiced_before(
    conn: Connection, tenant_id: str, subscription_id: str, period_start: datetime
) -> int:
    """How many periods of the subscription were invoiced that start before `period_start`."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM invoice_sagas WHERE tenant_id = $1 AND subscription_id = $2"
        " AND (period_start IS NULL OR period_start < $3)",
        tenant_id,
        subscription_id,
        period_start,
    )
    return count


async def invoice_of_saga(conn: Connection, saga_id: uuid.UUID) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT invoice_id FROM invoice_sagas WHERE saga_id = $1", saga_id
    )
    return value


async def sagas_of_invoice(conn: Connection, invoice_id: str) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT saga_id FROM invoice_sagas WHERE invoice_id = $1 ORDER BY saga_id", invoice_id
    )
    return [row["saga_id"] for row in rows]


async def next_sequence(conn: Connection, tenant_id: str, year: int) -> int:
    """The next invoice sequence of the tenant's year; the counter row stays locked until
    the transaction ends, and a rollback gives the number back (numbering.py)."""
    value: int = await conn.fetchval(
        "INSERT INTO invoice_number_counters (tenant_id, year, last_sequence)"
        " VALUES ($1, $2, 1) ON CONFLICT (tenant_id, year)"
        " DO UPDATE SET last_sequence = invoice_number_counters.last_sequence + 1"
        " RETURNING last_sequence",
        tenant_id,
        year,
    )
    return value


# -- credit notes --------------------------------------------------------------------------------


async def insert_credit_note(
    conn: Connection, tenant_id: str, customer_id: str, note: CreditNote
) -> None:
    await conn.execute(
        "INSERT INTO credit_notes (id, tenant_id, invoice_id, customer_id, document, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        note.credit_note_id,
        tenant_id,
        note.invoice_id,
        customer_id,
        json.dumps(codec.encode(note)),
        note.created_at,
    )


async def credit_notes_of(conn: Connection, tenant_id: str, invoice_id: str) -> list[CreditNote]:
    rows = await conn.fetch(
        "SELECT document FROM credit_notes WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY id",
        tenant_id,
        invoice_id,
    )
    return [codec.decode(CreditNote, json.loads(row["document"])) for row in rows]


async def list_credit_notes(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    invoice_id: str | None,
) -> tuple[list[tuple[str, CreditNote]], bool]:
    """One page of `(customer_id, credit note)` in id order, and whether more follow."""
    rows, has_more = await fetch_page(
        conn,
        table="credit_notes",
        columns="customer_id, document",
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal={"invoice_id": invoice_id},
    )
    page = [
        (row["customer_id"], codec.decode(CreditNote, json.loads(row["document"]))) for row in rows
    ]
    return page, has_more


# -- test clocks ----------------------------------------------------------------------------------


async def invoice_clock_time(conn: Connection, tenant_id: str, invoice_id: str) -> datetime | None:
    """The frozen time of the test clock the invoice's customer follows, if any."""
    frozen: datetime | None = await conn.fetchval(
        "SELECT k.frozen_time FROM invoices i"
        " JOIN test_clock_customers c"
        " ON c.tenant_id = i.tenant_id AND c.customer_id = i.customer_id"
        " JOIN test_clocks k ON k.tenant_id = c.tenant_id AND k.test_clock_id = c.test_clock_id"
        " WHERE i.tenant_id = $1 AND i.id = $2",
        tenant_id,
        invoice_id,
    )
    return frozen


# -- rated periods waiting for their projections --------------------------------------------------


async def park_period(
    conn: Connection,
    tenant_id: str,
    saga_id: uuid.UUID,
    customer_id: str,
    period_start: datetime,
    payload: str,
    reason: str,
    now: datetime,
) -> None:
    """Keep a rated period whose projections lag (a re-emitted one replaces it)."""
    await conn.execute(
        "INSERT INTO parked_periods (saga_id, tenant_id, customer_id, period_start, payload,"
        " reason, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (saga_id)"
        " DO UPDATE SET payload = EXCLUDED.payload, reason = EXCLUDED.reason,"
        " parked_at = EXCLUDED.parked_at",
        saga_id,
        tenant_id,
        customer_id,
        period_start,
        payload,
        reason,
        now,
    )


async def parked_periods_of(conn: Connection, tenant_id: str, customer_id: str) -> list[str]:
    """The payloads of the periods parked for `customer_id` or a child billed to it, oldest
    period first, locked (another transaction's are skipped)."""
    rows = await conn.fetch(
        "SELECT payload FROM parked_periods WHERE tenant_id = $1 AND (customer_id = $2"
        " OR customer_id IN (SELECT customer_id FROM customers WHERE tenant_id = $1"
        " AND parent_id = $2 AND bill_to_parent))"
        " ORDER BY period_start, saga_id FOR UPDATE SKIP LOCKED",
        tenant_id,
        customer_id,
    )
    return [row["payload"] for row in rows]


async def customers_with_parked_periods(conn: Connection, tenant_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT customer_id FROM parked_periods WHERE tenant_id = $1 ORDER BY 1",
        tenant_id,
    )
    return [row["customer_id"] for row in rows]


async def unpark_period(conn: Connection, saga_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM parked_periods WHERE saga_id = $1", saga_id)


# -- tax rates --------------------------------------------------------------------------------


async def tax_rates(conn: Connection, tenant_id: str) -> list[tuple[str, str | None, Decimal]]:
    rows = await conn.fetch(
        "SELECT country, region, rate FROM tax_rates WHERE tenant_id = $1 ORDER BY country, region",
        tenant_id,
    )
    return [(row["country"], row["region"] or None, row["rate"]) for row in rows]


async def replace_tax_rates(
    conn: Connection, tenant_id: str, rates: Sequence[tuple[str, str | None, Decimal]]
) -> None:
    await conn.execute("DELETE FROM tax_rates WHERE tenant_id = $1", tenant_id)
    await conn.executemany(
        "INSERT INTO tax_rates (tenant_id, country, region, rate) VALUES ($1, $2, $3, $4)",
        [(tenant_id, country, region or "", rate) for country, region, rate in rates],
    )
