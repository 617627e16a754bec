"""All SQL of the engine schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from billing_common.db import Connection
from billing_engine.domain import (
    CLOSING_STATUSES,
    TRIALING,
    CustomerClock,
    DueWork,
    SubscriptionView,
)
from billing_engine.schemas import BillingRun, SagaCounts

# -- test clocks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredClock:
    id: str
    tenant_id: str
    name: str | None
    frozen_time: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClockProgress:
    """What decides a clock's status, and how many customers follow it."""

    customer_count: int
    sagas: SagaCounts
    due_subscriptions: int


def _to_clock(row: asyncpg.Record) -> StoredClock:
    return StoredClock(
        row["id"], row["tenant_id"], row["name"], row["frozen_time"], row["created_at"]
    )


async def insert_clock(conn: Connection, clock: StoredClock) -> None:
    await conn.execute(
        "INSERT INTO test_clocks (id, tenant_id, name, frozen_time, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        clock.id,
        clock.tenant_id,
        clock.name,
        clock.frozen_time,
        clock.created_at,
    )


async def get_clock(
    conn: Connection, tenant_id: str, clock_id: str, *, for_update: bool = False
) -> StoredClock | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        "SELECT id, tenant_id, name, frozen_time, created_at FROM test_clocks"
        f" WHERE tenant_id = $1 AND id = $2{lock}",
        tenant_id,
        clock_id,
    )
    return None if row is None else _to_clock(row)


async def set_frozen_time(
    conn: Connection, clock_id: str, frozen_time: datetime, now: datetime
) -> None:
    await conn.execute(
        "UPDATE test_clocks SET frozen_time = $2, updated_at = $3 WHERE id = $1",
        clock_id,
        frozen_time,
        now,
    )


async def list_clocks(
    conn: Connection, tenant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[StoredClock], bool]:
    """One page in id order (ids are time-ordered); also says whether more follow."""
    args: list[Any] = [tenant_id]
    after = ""
    if starting_after is not None:
        args.append(starting_after)
        after = " AND id > $2"
    args.append(limit + 1)
    rows = await conn.fetch(
        "SELECT id, tenant_id, name, frozen_time, created_at FROM test_clocks"
        f" WHERE tenant_id = $1{after} ORDER BY id LIMIT ${len(args)}",
        *args,
    )
    return [_to_clock(row) for row in rows[:limit]], len(rows) > limit


_DUE = (
    "((s.status = ANY($3::TEXT[]) AND s.current_period_end <= {time})"
    " OR (s.status = $4 AND s.trial_end <= {time})"
    " OR (s.status = 'canceled' AND s.current_period_start IS NOT NULL"
    "   AND NOT EXISTS (SELECT 1 FROM sagas g WHERE g.subscription_id = s.subscription_id"
    "     AND g.period_start = s.current_period_start)))"
)


async def clock_progress(conn: Connection, clock: StoredClock) -> ClockProgress:
    row = await conn.fetchrow(
        "SELECT"
        " (SELECT count(*) FROM test_clock_customers WHERE test_clock_id = $1) AS customers,"
        " (SELECT count(*) FROM sagas WHERE test_clock_id = $1 AND status = 'pending') AS pending,"
        " (SELECT count(*) FROM sagas WHERE test_clock_id = $1 AND status = 'done') AS done,"
        " (SELECT count(*) FROM sagas WHERE test_clock_id = $1 AND status = 'failed') AS failed,"
        " (SELECT count(*) FROM subscriptions s JOIN test_clock_customers c"
        "   ON c.tenant_id = s.tenant_id AND c.customer_id = s.customer_id"
        f"  WHERE c.test_clock_id = $1 AND {_DUE.format(time='$2')}) AS due",
        clock.id,
        clock.frozen_time,
        sorted(CLOSING_STATUSES),
        TRIALING,
    )
    assert row is not None
    return ClockProgress(
        customer_count=row["customers"],
        sagas=SagaCounts(pending=row["pending"], done=row["done"], failed=row["failed"]),
        due_subscriptions=row["due"],
    )


# -- customers and their clocks ---------------------------------------------------------------


async def insert_customer(conn: Connection, tenant_id: str, customer_id: str) -> None:
    await conn.execute(
        "INSERT INTO customers (tenant_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id,
        customer_id,
    )


async def customer_exists(conn: Connection, tenant_id: str, customer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $2)",
        tenant_id,
        customer_id,
    )
    return found


async def clock_of_customer(conn: Connection, tenant_id: str, customer_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT test_clock_id FROM test_clock_customers WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id,
        customer_id,
    )
    return found


async def has_subscriptions(conn: Connection, tenant_id: str, customer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant_id = $1 AND customer_id = $2)",
        tenant_id,
        customer_id,
    )
    return found


class CustomerAlreadyAttached(Exception):
    pass


async def attach_customer(
    conn: Connection, tenant_id: str, customer_id: str, clock_id: str, now: datetime
) -> None:
    try:
        await conn.execute(
            "INSERT INTO test_clock_customers (tenant_id, customer_id, test_clock_id, attached_at)"
            " VALUES ($1, $2, $3, $4)",
            tenant_id,
            customer_id,
            clock_id,
            now,
        )
    except asyncpg.UniqueViolationError as exc:
        raise CustomerAlreadyAttached(customer_id) from exc


# -- the subscription projection --------------------------------------------------------------


async def upsert_subscription(conn: Connection, sub: SubscriptionView) -> bool:
    """Keep `sub` unless a later (or the same) revision is known; return whether kept."""
    kept = await conn.fetchval(
        "INSERT INTO subscriptions (subscription_id, tenant_id, customer_id, revision, status,"
        " currency, plan_id, plan_version, current_period_start, current_period_end, trial_end)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (subscription_id) DO UPDATE SET"
        " customer_id = EXCLUDED.customer_id, revision = EXCLUDED.revision,"
        " status = EXCLUDED.status, currency = EXCLUDED.currency, plan_id = EXCLUDED.plan_id,"
        " plan_version = EXCLUDED.plan_version,"
        " current_period_start = EXCLUDED.current_period_start,"
        " current_period_end = EXCLUDED.current_period_end, trial_end = EXCLUDED.trial_end"
        " WHERE subscriptions.revision < EXCLUDED.revision"
        " RETURNING true",
        sub.subscription_id,
        sub.tenant_id,
        sub.customer_id,
        sub.revision,
        sub.status,
        sub.currency,
        sub.plan_id,
        sub.plan_version,
        sub.current_period_start,
        sub.current_period_end,
        sub.trial_end,
    )
    return bool(kept)


_SUBSCRIPTION_COLUMNS = (
    "s.subscription_id, s.tenant_id, s.customer_id, s.revision, s.status, s.currency,"
    " s.plan_id, s.plan_version, s.current_period_start, s.current_period_end, s.trial_end"
)


def _to_view(row: asyncpg.Record) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=row["subscription_id"],
        tenant_id=row["tenant_id"],
        customer_id=row["customer_id"],
        revision=row["revision"],
        status=row["status"],
        currency=row["currency"],
        plan_id=row["plan_id"],
        plan_version=row["plan_version"],
        current_period_start=row["current_period_start"],
        current_period_end=row["current_period_end"],
        trial_end=row["trial_end"],
    )


async def get_subscription(
    conn: Connection, subscription_id: str, *, for_update: bool = False
) -> SubscriptionView | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE subscription_id = $1{lock}",
        subscription_id,
    )
    return None if row is None else _to_view(row)


async def due_candidates(
    conn: Connection, now: datetime, *, limit: int
) -> tuple[list[SubscriptionView], dict[str, CustomerClock]]:
    """Subscriptions with a boundary at or before their customer's clock whose work is not
    started yet (at most `limit`, earliest boundary first), and the clocks of their
    customers on a test clock. The domain decides what exactly is due."""
    rows = await conn.fetch(
        f"SELECT {_SUBSCRIPTION_COLUMNS}, k.id AS test_clock_id, k.frozen_time"
        " FROM subscriptions s"
        " LEFT JOIN test_clock_customers c"
        "   ON c.tenant_id = s.tenant_id AND c.customer_id = s.customer_id"
        " LEFT JOIN test_clocks k ON k.id = c.test_clock_id"
        " WHERE (s.status = ANY($3::TEXT[])"
        "   AND s.current_period_end <= COALESCE(k.frozen_time, $1)"
        "   AND NOT EXISTS (SELECT 1 FROM sagas g WHERE g.subscription_id = s.subscription_id"
        "     AND g.period_start = s.current_period_start))"
        " OR (s.status = $4 AND s.trial_end <= COALESCE(k.frozen_time, $1)"
        "   AND NOT EXISTS (SELECT 1 FROM trial_ends t"
        "     WHERE t.subscription_id = s.subscription_id AND t.trial_end = s.trial_end))"
        # Canceled now: the period it was canceled in closes once, right away.
        " OR (s.status = 'canceled' AND s.current_period_start IS NOT NULL"
        "   AND NOT EXISTS (SELECT 1 FROM sagas g WHERE g.subscription_id = s.subscription_id"
        "     AND g.period_start = s.current_period_start))"
        " ORDER BY COALESCE(s.current_period_end, s.trial_end), s.subscription_id"
        " LIMIT $2",
        now,
        limit,
        sorted(CLOSING_STATUSES),
        TRIALING,
    )
    clocks = {
        row["customer_id"]: CustomerClock(row["test_clock_id"], row["frozen_time"])
        for row in rows
        if row["test_clock_id"] is not None
    }
    return [_to_view(row) for row in rows], clocks


# -- sagas and trial ends ---------------------------------------------------------------------


async def insert_saga(conn: Connection, work: DueWork, payload: str, now: datetime) -> bool:
    """Record the start of a period close; False if this period's close exists already."""
    sub = work.subscription
    inserted = await conn.fetchval(
        "INSERT INTO sagas (saga_id, tenant_id, subscription_id, customer_id, test_clock_id,"
        " period_start, period_end, status, attempts, payload, started_at, last_emitted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 1, $8, $9, $9)"
        " ON CONFLICT DO NOTHING RETURNING true",
        work.saga_id,
        sub.tenant_id,
        sub.subscription_id,
        sub.customer_id,
        work.test_clock_id,
        sub.current_period_start,
        sub.current_period_end,
        payload,
        now,
    )
    return bool(inserted)


async def insert_trial_end(conn: Connection, work: DueWork, now: datetime) -> bool:
    sub = work.subscription
    inserted = await conn.fetchval(
        "INSERT INTO trial_ends (subscription_id, trial_end, tenant_id, customer_id,"
        " test_clock_id, requested_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT DO NOTHING RETURNING true",
        sub.subscription_id,
        work.boundary,
        sub.tenant_id,
        sub.customer_id,
        work.test_clock_id,
        now,
    )
    return bool(inserted)


@dataclass(frozen=True, slots=True)
class PendingSaga:
    saga_id: uuid.UUID
    tenant_id: str
    customer_id: str
    attempts: int
    last_emitted_at: datetime
    payload: str


async def lock_overdue_sagas(
    conn: Connection, emitted_before: datetime, *, limit: int
) -> list[PendingSaga]:
    """Pending sagas last emitted before `emitted_before`, locked (others' locks skipped)."""
    rows = await conn.fetch(
        "SELECT saga_id, tenant_id, customer_id, attempts, last_emitted_at, payload FROM sagas"
        " WHERE status = 'pending' AND last_emitted_at <= $1"
        " ORDER BY last_emitted_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        emitted_before,
        limit,
    )
    return [
        PendingSaga(
            row["saga_id"],
            row["tenant_id"],
            row["customer_id"],
            row["attempts"],
            row["last_emitted_at"],
            row["payload"],
        )
        for row in rows
    ]


async def mark_reemitted(conn: Connection, saga_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE sagas SET attempts = attempts + 1, last_emitted_at = $2 WHERE saga_id = $1",
        saga_id,
        now,
    )


async def mark_failed(conn: Connection, saga_id: uuid.UUID) -> None:
    await conn.execute("UPDATE sagas SET status = 'failed' WHERE saga_id = $1", saga_id)


async def mark_done(conn: Connection, saga_id: uuid.UUID, invoice_id: str, now: datetime) -> bool:
    """Finish a saga (pending, or failed and finished late after all); False if unknown or
    already done."""
    done = await conn.fetchval(
        "UPDATE sagas SET status = 'done', completed_at = $3, invoice_id = $2"
        " WHERE saga_id = $1 AND status <> 'done' RETURNING true",
        saga_id,
        invoice_id,
        now,
    )
    return bool(done)


_RUN_COLUMNS = (
    "saga_id, subscription_id, customer_id, test_clock_id, period_start, period_end, status,"
    " attempts, started_at, last_emitted_at, completed_at, invoice_id"
)


def _to_run(row: asyncpg.Record) -> BillingRun:
    return BillingRun(**dict(row.items()))


async def get_run(conn: Connection, tenant_id: str, saga_id: uuid.UUID) -> BillingRun | None:
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM sagas WHERE tenant_id = $1 AND saga_id = $2",
        tenant_id,
        saga_id,
    )
    return None if row is None else _to_run(row)


async def list_runs(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: uuid.UUID | None,
    filters: dict[str, str | None],
) -> tuple[list[BillingRun], bool]:
    """One page by period end (then saga id); also says whether more follow."""
    clauses = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    for column, value in filters.items():
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if starting_after is not None:
        args.append(starting_after)
        clauses.append(
            f"(period_end, saga_id) > (SELECT period_end, saga_id FROM sagas"
            f" WHERE saga_id = ${len(args)})"
        )
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM sagas WHERE {' AND '.join(clauses)}"
        f" ORDER BY period_end, saga_id LIMIT ${len(args)}",
        *args,
    )
    return [_to_run(row) for row in rows[:limit]], len(rows) > limit
