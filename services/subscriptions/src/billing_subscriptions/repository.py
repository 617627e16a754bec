"""All SQL of the subscriptions schema, and the records it reads and writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from billing_common.currency import Currency
from billing_common.db import Connection, fetch_page
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_common.money import Money
from billing_pricing.schemas import Timing
from billing_subscriptions.domain import Plan, Subscription, SubscriptionStatus
from billing_subscriptions.periods import Anchor, BillingPeriod, Interval, SubscriptionTerms
from billing_subscriptions.policy import SubscriptionPolicy


class DuplicateExternalId(Exception):
    pass


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """One published version of a plan, as pricing announced it."""

    plan_id: PlanId
    version: int
    code: str
    currency: Currency
    interval: Interval
    base_fee: Money
    base_fee_timing: Timing
    trial_days: int
    usage_prices: Mapping[str, Money]
    published_at: datetime

    def to_plan(self) -> Plan:
        """The domain's view: what the subscription pays."""
        return Plan(self.plan_id, self.base_fee, self.interval, self.usage_prices)


@dataclass(frozen=True, slots=True)
class KnownCustomer:
    customer_id: CustomerId
    currency: Currency
    timezone: str


@dataclass(frozen=True, slots=True)
class KnownCoupon:
    """A coupon as pricing announced it: what a subscription asking for it is checked
    against (its currency, the plans it is limited to)."""

    coupon_id: str
    code: str
    percent_off: Decimal | None
    amount_off: Money | None
    duration: str
    duration_periods: int | None
    plan_ids: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttachedCoupon:
    """A coupon on a subscription, from its billing period `start_period` on (0: the first)."""

    coupon_id: str
    code: str
    start_period: int


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """A subscription as stored: its domain state and what the domain does not know
    (ids, the plan versions it is on and scheduled to move to, its revision)."""

    id: SubscriptionId
    customer_id: CustomerId
    external_id: str | None
    state: Subscription
    plan: PlanVersion
    scheduled_plan: PlanVersion | None
    revision: int
    created_at: datetime
    updated_at: datetime
    coupons: tuple[AttachedCoupon, ...] = ()


# -- projections --------------------------------------------------------------------------------


async def insert_plan_version(conn: Connection, tenant_id: str, plan: PlanVersion) -> None:
    """Keep a published version; one already known (a redelivery) stays as it is."""
    await conn.execute(
        "INSERT INTO plan_versions (tenant_id, plan_id, version, code, currency,"
        " billing_interval, base_fee, base_fee_timing, trial_days, usage_prices, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (tenant_id, plan_id, version) DO NOTHING",
        tenant_id,
        plan.plan_id,
        plan.version,
        plan.code,
        plan.currency.code,
        plan.interval.value,
        Decimal(plan.base_fee.amount),
        plan.base_fee_timing.value,
        plan.trial_days,
        json.dumps({key: str(price.amount) for key, price in plan.usage_prices.items()}),
        plan.published_at,
    )


_PLAN_COLUMNS = (
    "plan_id, version, code, currency, billing_interval, base_fee, base_fee_timing,"
    " trial_days, usage_prices, published_at"
)


def _to_plan_version(row: asyncpg.Record) -> PlanVersion:
    currency = Currency.of(row["currency"])
    return PlanVersion(
        plan_id=PlanId(row["plan_id"]),
        version=row["version"],
        code=row["code"],
        currency=currency,
        interval=Interval(row["billing_interval"]),
        base_fee=Money(int(row["base_fee"]), currency),
        base_fee_timing=Timing(row["base_fee_timing"]),
        trial_days=row["trial_days"],
        usage_prices={
            key: Money(int(amount), currency)
            for key, amount in json.loads(row["usage_prices"]).items()
        },
        published_at=row["published_at"],
    )


async def get_plan_version(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None
) -> PlanVersion | None:
    """Version `version` of the plan, or its highest known version when `version` is None."""
    if version is None:
        row = await conn.fetchrow(
            f"SELECT {_PLAN_COLUMNS} FROM plan_versions WHERE tenant_id = $1 AND plan_id = $2"
            " ORDER BY version DESC LIMIT 1",
            tenant_id,
            plan_id,
        )
    else:
        row = await conn.fetchrow(
            f"SELECT {_PLAN_COLUMNS} FROM plan_versions"
            " WHERE tenant_id = $1 AND plan_id = $2 AND version = $3",
            tenant_id,
            plan_id,
            version,
        )
    return None if row is None else _to_plan_version(row)


async def plan_exists(conn: Connection, tenant_id: str, plan_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM plan_versions WHERE tenant_id = $1 AND plan_id = $2)",
        tenant_id,
        plan_id,
    )
    return found


async def upsert_customer(
    conn: Connection,
    tenant_id: str,
    customer: KnownCustomer,
    updated_at: datetime,
) -> None:
    """Learn or refresh a customer; a change older than the one known is ignored."""
    await conn.execute(
        "INSERT INTO customers (tenant_id, customer_id, currency, timezone, updated_at)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE"
        " SET currency = excluded.currency, timezone = excluded.timezone,"
        " updated_at = excluded.updated_at"
        " WHERE customers.updated_at <= excluded.updated_at",
        tenant_id,
        customer.customer_id,
        customer.currency.code,
        customer.timezone,
        updated_at,
    )


async def get_customer(conn: Connection, tenant_id: str, customer_id: str) -> KnownCustomer | None:
    row = await conn.fetchrow(
        "SELECT customer_id, currency, timezone FROM customers"
        " WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id,
        customer_id,
    )
    if row is None:
        return None
    return KnownCustomer(
        CustomerId(row["customer_id"]), Currency.of(row["currency"]), row["timezone"]
    )


async def insert_coupon(conn: Connection, tenant_id: str, coupon: KnownCoupon) -> None:
    """Keep a coupon; coupons never change, so one already known stays as it is."""
    amount = coupon.amount_off
    await conn.execute(
        "INSERT INTO coupons (tenant_id, coupon_id, code, percent_off, amount_off, currency,"
        " duration, duration_periods, plan_ids, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (tenant_id, coupon_id) DO NOTHING",
        tenant_id,
        coupon.coupon_id,
        coupon.code,
        None if coupon.percent_off is None else str(coupon.percent_off),
        None if amount is None else Decimal(amount.amount),
        None if amount is None else amount.currency.code,
        coupon.duration,
        coupon.duration_periods,
        json.dumps(list(coupon.plan_ids)),
        coupon.created_at,
    )


async def get_coupon(conn: Connection, tenant_id: str, coupon_id: str) -> KnownCoupon | None:
    row = await conn.fetchrow(
        "SELECT coupon_id, code, percent_off, amount_off, currency, duration, duration_periods,"
        " plan_ids, created_at FROM coupons WHERE tenant_id = $1 AND coupon_id = $2",
        tenant_id,
        coupon_id,
    )
    if row is None:
        return None
    return KnownCoupon(
        coupon_id=row["coupon_id"],
        code=row["code"],
        percent_off=None if row["percent_off"] is None else Decimal(row["percent_off"]),
        amount_off=(
            None
            if row["amount_off"] is None
            else Money(int(row["amount_off"]), Currency.of(row["currency"]))
        ),
        duration=row["duration"],
        duration_periods=row["duration_periods"],
        plan_ids=tuple(json.loads(row["plan_ids"])),
        created_at=row["created_at"],
    )


# -- test clocks --------------------------------------------------------------------------------


async def subscription_clock_time(
    conn: Connection, tenant_id: str, subscription_id: str
) -> datetime | None:
    """The frozen time of the test clock the subscription's customer follows, if any."""
    frozen: datetime | None = await conn.fetchval(
        "SELECT k.frozen_time FROM subscriptions s"
        " JOIN test_clock_customers c"
        " ON c.tenant_id = s.tenant_id AND c.customer_id = s.customer_id"
        " JOIN test_clocks k ON k.tenant_id = c.tenant_id AND k.test_clock_id = c.test_clock_id"
        " WHERE s.tenant_id = $1 AND s.id = $2",
        tenant_id,
        subscription_id,
    )
    return frozen


async def has_subscriptions(conn: Connection, tenant_id: str, customer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant_id = $1 AND customer_id = $2)",
        tenant_id,
        customer_id,
    )
    return found


# -- policies -----------------------------------------------------------------------------------


async def get_policy(conn: Connection, tenant_id: str) -> SubscriptionPolicy:
    """The tenant's policy; the defaults when it never set one."""
    raw = await conn.fetchval(
        "SELECT policy FROM subscription_policies WHERE tenant_id = $1", tenant_id
    )
    return SubscriptionPolicy() if raw is None else SubscriptionPolicy.model_validate_json(raw)


async def put_policy(
    conn: Connection, tenant_id: str, policy: SubscriptionPolicy, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO subscription_policies (tenant_id, policy, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id) DO UPDATE"
        " SET policy = excluded.policy, updated_at = excluded.updated_at",
        tenant_id,
        policy.model_dump_json(),
        now,
    )


# -- subscriptions ------------------------------------------------------------------------------

_COLUMNS = (
    "id, customer_id, external_id, status, plan_id, plan_version, billing_interval,"
    " billing_anchor, timezone, starts_at, ends_at, period_start, period_end,"
    " period_nominal_start, period_nominal_end, period_fee, trial_end, cancel_at_period_end,"
    " scheduled_plan_id, scheduled_plan_version, paused_at, canceled_at, ended_at, revision,"
    " created_at, updated_at, coupons"
)


def _values(tenant_id: str, stored: StoredSubscription) -> list[Any]:
    """The row of `stored`, in the order of `_COLUMNS` with tenant_id and currency after."""
    state = stored.state
    period = state.current_period
    terms = state.terms
    return [
        stored.id,
        stored.customer_id,
        stored.external_id,
        state.status.value,
        stored.plan.plan_id,
        stored.plan.version,
        terms.interval.value,
        terms.anchor.value,
        terms.timezone,
        terms.starts_at,
        terms.ends_at,
        None if period is None else period.start,
        None if period is None else period.end,
        None if period is None else period.nominal_start,
        None if period is None else period.nominal_end,
        None if state.period_fee is None else Decimal(state.period_fee.amount),
        state.trial_end,
        state.cancel_at_period_end,
        None if stored.scheduled_plan is None else stored.scheduled_plan.plan_id,
        None if stored.scheduled_plan is None else stored.scheduled_plan.version,
        state.paused_at,
        state.canceled_at,
        state.ended_at,
        stored.revision,
        stored.created_at,
        stored.updated_at,
        json.dumps(
            [
                {"coupon_id": c.coupon_id, "code": c.code, "start_period": c.start_period}
                for c in stored.coupons
            ]
        ),
        tenant_id,
        stored.plan.currency.code,
    ]


_COLUMN_NAMES = [name.strip() for name in _COLUMNS.split(",")] + ["tenant_id", "currency"]


async def insert(conn: Connection, tenant_id: str, stored: StoredSubscription) -> None:
    placeholders = ", ".join(f"${i}" for i in range(1, len(_COLUMN_NAMES) + 1))
    try:
        await conn.execute(
            f"INSERT INTO subscriptions ({', '.join(_COLUMN_NAMES)}) VALUES ({placeholders})",
            *_values(tenant_id, stored),
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateExternalId(stored.external_id) from exc


async def update(conn: Connection, tenant_id: str, stored: StoredSubscription) -> None:
    """Write the new state of a subscription locked by `get(..., for_update=True)`."""
    names = _COLUMN_NAMES[1:-2]  # neither the id, the tenant nor the currency change
    values = _values(tenant_id, stored)[1:-2]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
    result: str = await conn.execute(
        f"UPDATE subscriptions SET {assignments} WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        stored.id,
        *values,
    )
    if result != "UPDATE 1":  # pragma: no cover - the row is locked by the caller
        raise RuntimeError(f"subscription {stored.id} vanished while locked")


async def _plans_of(
    conn: Connection, tenant_id: str, rows: list[asyncpg.Record]
) -> dict[tuple[str, int], PlanVersion]:
    wanted = {(row["plan_id"], row["plan_version"]) for row in rows} | {
        (row["scheduled_plan_id"], row["scheduled_plan_version"])
        for row in rows
        if row["scheduled_plan_id"] is not None
    }
    if not wanted:
        return {}
    plan_ids = sorted({plan_id for plan_id, _ in wanted})
    found = await conn.fetch(
        f"SELECT {_PLAN_COLUMNS} FROM plan_versions"
        " WHERE tenant_id = $1 AND plan_id = ANY($2::TEXT[])",
        tenant_id,
        plan_ids,
    )
    return {
        (row["plan_id"], row["version"]): _to_plan_version(row)
        for row in found
        if (row["plan_id"], row["version"]) in wanted
    }


def _to_stored(
    row: asyncpg.Record, plans: Mapping[tuple[str, int], PlanVersion]
) -> StoredSubscription:
    plan = plans[(row["plan_id"], row["plan_version"])]
    scheduled = (
        None
        if row["scheduled_plan_id"] is None
        else plans[(row["scheduled_plan_id"], row["scheduled_plan_version"])]
    )
    currency = plan.currency
    period = (
        None
        if row["period_start"] is None
        else BillingPeriod(
            row["period_start"],
            row["period_end"],
            row["period_nominal_start"],
            row["period_nominal_end"],
        )
    )
    state = Subscription(
        status=SubscriptionStatus(row["status"]),
        plan=plan.to_plan(),
        terms=SubscriptionTerms(
            Interval(row["billing_interval"]),
            Anchor(row["billing_anchor"]),
            row["timezone"],
            row["starts_at"],
            row["ends_at"],
        ),
        current_period=period,
        period_fee=None if row["period_fee"] is None else Money(int(row["period_fee"]), currency),
        trial_end=row["trial_end"],
        cancel_at_period_end=row["cancel_at_period_end"],
        scheduled_plan=None if scheduled is None else scheduled.to_plan(),
        paused_at=row["paused_at"],
        canceled_at=row["canceled_at"],
        ended_at=row["ended_at"],
    )
    return StoredSubscription(
        id=SubscriptionId(row["id"]),
        customer_id=CustomerId(row["customer_id"]),
        external_id=row["external_id"],
        state=state,
        plan=plan,
        scheduled_plan=scheduled,
        revision=row["revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        coupons=tuple(
            AttachedCoupon(c["coupon_id"], c["code"], c["start_period"])
            for c in json.loads(row["coupons"])
        ),
    )


async def get(
    conn: Connection, tenant_id: str, subscription_id: str, *, for_update: bool = False
) -> StoredSubscription | None:
    """One subscription of the tenant; `for_update` locks its row until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND id = $2{lock}",
        tenant_id,
        subscription_id,
    )
    if row is None:
        return None
    return _to_stored(row, await _plans_of(conn, tenant_id, [row]))


async def list_page(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    customer_id: str | None,
    status: SubscriptionStatus | None,
) -> tuple[list[StoredSubscription], bool]:
    """One page in id order (ids are time-ordered); also says whether more follow."""
    page, has_more = await fetch_page(
        conn,
        table="subscriptions",
        columns=_COLUMNS,
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal={"customer_id": customer_id, "status": None if status is None else status.value},
    )
    plans = await _plans_of(conn, tenant_id, page)
    return [_to_stored(row, plans) for row in page], has_more
