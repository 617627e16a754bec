"""All SQL of the metering schema: meters, the customer and plan projections, parked
events and consumer offsets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing_common.db import Connection
from billing_metering.meters import MeterDefinition


class DuplicateMeterKey(Exception):
    pass


@dataclass(frozen=True)
class StoredMeter:
    definition: MeterDefinition
    version: int
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _meter(row: asyncpg.Record) -> StoredMeter:
    return StoredMeter(
        definition=MeterDefinition.model_validate_json(row["definition"]),
        version=row["version"],
        archived_at=row["archived_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_meter(
    conn: Connection, tenant_id: str, definition: MeterDefinition, now: datetime
) -> None:
    try:
        await conn.execute(
            "INSERT INTO meters (tenant_id, key, definition, version, created_at, updated_at) "
            "VALUES ($1, $2, $3, 1, $4, $4)",
            tenant_id,
            definition.key,
            definition.model_dump_json(),
            now,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateMeterKey(definition.key) from exc


async def get_meter(
    conn: Connection, tenant_id: str, key: str, *, for_update: bool = False
) -> StoredMeter | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT * FROM meters WHERE tenant_id = $1 AND key = $2{lock}", tenant_id, key
    )
    return None if row is None else _meter(row)


async def list_meters(
    conn: Connection, tenant_id: str, *, include_archived: bool
) -> list[StoredMeter]:
    archived = "" if include_archived else " AND archived_at IS NULL"
    rows = await conn.fetch(
        f"SELECT * FROM meters WHERE tenant_id = $1{archived} ORDER BY key", tenant_id
    )
    return [_meter(row) for row in rows]


async def update_meter(
    conn: Connection,
    tenant_id: str,
    definition: MeterDefinition,
    *,
    version: int,
    archived_at: datetime | None,
    now: datetime,
) -> None:
    await conn.execute(
        "UPDATE meters SET definition = $3, version = $4, archived_at = $5, updated_at = $6, "
        "revision = nextval('meter_revisions') WHERE tenant_id = $1 AND key = $2",
        tenant_id,
        definition.key,
        definition.model_dump_json(),
        version,
        archived_at,
        now,
    )


async def meters_revision(conn: Connection) -> int:
    """The newest revision of any meter (0 with none): changes whenever a meter changes."""
    value: int = await conn.fetchval("SELECT coalesce(max(revision), 0) FROM meters")
    return value


async def active_meters(conn: Connection) -> dict[str, list[MeterDefinition]]:
    """Every tenant's meters that count new events."""
    rows = await conn.fetch(
        "SELECT tenant_id, definition FROM meters WHERE archived_at IS NULL ORDER BY key"
    )
    by_tenant: dict[str, list[MeterDefinition]] = {}
    for row in rows:
        by_tenant.setdefault(row["tenant_id"], []).append(
            MeterDefinition.model_validate_json(row["definition"])
        )
    return by_tenant


# -- plans that charge on meters ------------------------------------------------------------


async def add_plan_references(
    conn: Connection,
    tenant_id: str,
    plan_id: str,
    meter_keys: Iterable[str],
    per_transaction: Iterable[str] = (),
) -> None:
    """Record that a version of `plan_id` charges on `meter_keys` (those in
    `per_transaction` transaction by transaction). References are never removed:
    subscriptions may stay on any published version."""
    by_transaction = set(per_transaction)
    await conn.executemany(
        "INSERT INTO meter_references (tenant_id, meter_key, plan_id, per_transaction)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, meter_key, plan_id)"
        " DO UPDATE SET per_transaction = meter_references.per_transaction"
        " OR excluded.per_transaction",
        [(tenant_id, key, plan_id, key in by_transaction) for key in sorted(set(meter_keys))],
    )


async def per_transaction_meters(conn: Connection, tenant_id: str) -> set[str]:
    """The tenant's meters some plan prices transaction by transaction."""
    rows = await conn.fetch(
        "SELECT DISTINCT meter_key FROM meter_references WHERE tenant_id = $1 AND per_transaction",
        tenant_id,
    )
    return {row["meter_key"] for row in rows}


async def plans_using(conn: Connection, tenant_id: str, meter_key: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT plan_id FROM meter_references WHERE tenant_id = $1 AND meter_key = $2 "
        "ORDER BY plan_id",
        tenant_id,
        meter_key,
    )
    return [row["plan_id"] for row in rows]


async def plans_by_meter(conn: Connection, tenant_id: str) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT meter_key, plan_id FROM meter_references WHERE tenant_id = $1 "
        "ORDER BY meter_key, plan_id",
        tenant_id,
    )
    plans: dict[str, list[str]] = {}
    for row in rows:
        plans.setdefault(row["meter_key"], []).append(row["plan_id"])
    return plans


# -- customers ------------------------------------------------------------------------------


async def upsert_customer(
    conn: Connection, tenant_id: str, customer_id: str, external_id: str
) -> None:
    await conn.execute(
        "INSERT INTO customers (tenant_id, customer_id, external_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET external_id = excluded.external_id",
        tenant_id,
        customer_id,
        external_id,
    )


async def resolve_customers(
    conn: Connection, tenant_id: str, references: Sequence[str]
) -> dict[str, str]:
    """Our customer id of each reference that names a known customer, by id or external id."""
    rows = await conn.fetch(
        "SELECT customer_id, external_id FROM customers WHERE tenant_id = $1 "
        "AND (customer_id = ANY($2::text[]) OR external_id = ANY($2::text[]))",
        tenant_id,
        list(references),
    )
    wanted = set(references)
    resolved: dict[str, str] = {}
    for row in rows:
        if row["customer_id"] in wanted:
            resolved[row["customer_id"]] = row["customer_id"]
        if row["external_id"] in wanted:
            resolved.setdefault(row["external_id"], row["customer_id"])
    return resolved


# -- parked events --------------------------------------------------------------------------


async def park_events(
    conn: Connection, rows: Sequence[tuple[str, str, str, bytes]], now: datetime
) -> None:
    """Keep (tenant, customer reference, event id, exact JSON) until the customer is known;
    an event parked twice is kept once."""
    await conn.executemany(
        "INSERT INTO parked_events (tenant_id, customer_ref, event_id, event, parked_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(tenant, ref, event_id, body.decode(), now) for tenant, ref, event_id, body in rows],
    )


@dataclass(frozen=True)
class ParkedCustomer:
    tenant_id: str
    customer_ref: str
    customer_id: str


async def parked_customers_now_known(conn: Connection, limit: int) -> list[ParkedCustomer]:
    """References with parked events whose customer exists by now."""
    rows = await conn.fetch(
        "SELECT DISTINCT p.tenant_id, p.customer_ref, c.customer_id FROM parked_events p "
        "JOIN customers c ON c.tenant_id = p.tenant_id "
        "AND (c.customer_id = p.customer_ref OR c.external_id = p.customer_ref) "
        "ORDER BY p.tenant_id, p.customer_ref LIMIT $1",
        limit,
    )
    return [ParkedCustomer(r["tenant_id"], r["customer_ref"], r["customer_id"]) for r in rows]


async def take_parked_events(
    conn: Connection, tenant_id: str, customer_ref: str, limit: int
) -> list[bytes]:
    """Remove and return up to `limit` parked events of one reference (oldest first)."""
    rows = await conn.fetch(
        "WITH taken AS ("
        " DELETE FROM parked_events WHERE (tenant_id, customer_ref, event_id) IN ("
        "  SELECT tenant_id, customer_ref, event_id FROM parked_events"
        "  WHERE tenant_id = $1 AND customer_ref = $2 ORDER BY parked_at, event_id LIMIT $3"
        "  FOR UPDATE SKIP LOCKED"
        " ) RETURNING parked_at, event_id, event"
        ") SELECT event FROM taken ORDER BY parked_at, event_id",
        tenant_id,
        customer_ref,
        limit,
    )
    return [row["event"].encode() for row in rows]


async def count_parked(conn: Connection, tenant_id: str) -> int:
    value: int = await conn.fetchval(
        "SELECT count(*) FROM parked_events WHERE tenant_id = $1", tenant_id
    )
    return value


# -- consumer offsets -----------------------------------------------------------------------


async def applied_offsets(
    conn: Connection, consumer: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The highest applied offset of each (topic, partition), locked for this transaction."""
    wanted = sorted(set(partitions))
    rows = await conn.fetch(
        "SELECT topic, kafka_partition, last_offset FROM consumer_offsets "
        "WHERE consumer = $1 AND (topic, kafka_partition) IN "
        "(SELECT * FROM unnest($2::text[], $3::int[])) FOR UPDATE",
        consumer,
        [topic for topic, _ in wanted],
        [partition for _, partition in wanted],
    )
    return {(r["topic"], r["kafka_partition"]): r["last_offset"] for r in rows}


async def mark_applied(
    conn: Connection, consumer: str, offsets: Mapping[tuple[str, int], int]
) -> None:
    await conn.executemany(
        "INSERT INTO consumer_offsets (consumer, topic, kafka_partition, last_offset) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, topic, kafka_partition) "
        "DO UPDATE SET last_offset = greatest(consumer_offsets.last_offset, excluded.last_offset)",
        [(consumer, topic, partition, offset) for (topic, partition), offset in offsets.items()],
    )
