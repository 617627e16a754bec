"""The test clocks a service follows, as a projection of the engine's events.

A customer attached to a test clock lives on the clock's time: subscriptions acts, and
invoicing makes and finalizes drafts, at the clock's frozen time. Both keep the same two
tables (`CLOCK_TABLES`, created by each service's own migration) from
`test_clock_customer_attached` and `test_clock_advanced`; this module is their SQL.

An advance is keyed by the clock and an attachment by the customer, so they may arrive
in either order: the latest frozen time known wins.
"""

from __future__ import annotations

from datetime import datetime

from billing_common.db import Connection

CLOCK_TABLES = """
CREATE TABLE test_clocks (
    tenant_id     TEXT NOT NULL,
    test_clock_id TEXT NOT NULL,
    frozen_time   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, test_clock_id)
);

CREATE TABLE test_clock_customers (
    tenant_id     TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    test_clock_id TEXT NOT NULL,
    attached_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
"""
"""The tables, as the services' migrations create them (a test checks they agree)."""


async def advance_test_clock(
    conn: Connection, tenant_id: str, test_clock_id: str, frozen_time: datetime
) -> datetime:
    """Learn a clock's frozen time (an earlier time than the one known is ignored); return
    the clock's time now known."""
    known: datetime = await conn.fetchval(
        "INSERT INTO test_clocks (tenant_id, test_clock_id, frozen_time) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, test_clock_id) DO UPDATE"
        " SET frozen_time = GREATEST(test_clocks.frozen_time, excluded.frozen_time)"
        " RETURNING frozen_time",
        tenant_id,
        test_clock_id,
        frozen_time,
    )
    return known


async def attach_to_test_clock(
    conn: Connection, tenant_id: str, customer_id: str, test_clock_id: str, attached_at: datetime
) -> None:
    """The customer follows the clock for good (a repeated attachment changes nothing)."""
    await conn.execute(
        "INSERT INTO test_clock_customers (tenant_id, customer_id, test_clock_id, attached_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, customer_id) DO NOTHING",
        tenant_id,
        customer_id,
        test_clock_id,
        attached_at,
    )


async def customer_clock_time(
    conn: Connection, tenant_id: str, customer_id: str
) -> datetime | None:
    """The frozen time of the test clock the customer follows; None when it follows none."""
    frozen: datetime | None = await conn.fetchval(
        "SELECT k.frozen_time FROM test_clock_customers c JOIN test_clocks k"
        " ON k.tenant_id = c.tenant_id AND k.test_clock_id = c.test_clock_id"
        " WHERE c.tenant_id = $1 AND c.customer_id = $2",
        tenant_id,
        customer_id,
    )
    return frozen
