"""All SQL of the rating schema: its projection of the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from billing_common.db import Connection
from billing_pricing.events import PlanPublished, PriceOverrideSet
from billing_pricing.schemas import WirePrice

_WIRE_PRICE: TypeAdapter[Any] = TypeAdapter(WirePrice)


def _changed(status: str) -> bool:
    """Whether an `INSERT ... ON CONFLICT` status (`INSERT 0 1`) wrote a row."""
    return status.split()[-1] == "1"


# -- plan versions -----------------------------------------------------------------------------


async def insert_plan_version(conn: Connection, tenant_id: str, plan: PlanPublished) -> bool:
    """Record a published plan version; one already known is kept (a version never changes).
    Returns whether it was new."""
    status: str = await conn.execute(
        "INSERT INTO plan_versions (tenant_id, plan_id, version, currency, body, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (tenant_id, plan_id, version) DO NOTHING",
        tenant_id,
        plan.plan_id,
        plan.version,
        plan.currency.code,
        plan.model_dump_json(),
        plan.published_at,
    )
    return _changed(status)


async def get_plan_version(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None = None
) -> PlanPublished | None:
    """One version of a plan as pricing published it; the highest known when `version` is
    None."""
    row = await conn.fetchrow(
        "SELECT body FROM plan_versions WHERE tenant_id = $1 AND plan_id = $2"
        " AND ($3::INT IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
        tenant_id,
        plan_id,
        version,
    )
    return None if row is None else PlanPublished.model_validate_json(row["body"])


async def plan_exists(conn: Connection, tenant_id: str, plan_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM plan_versions WHERE tenant_id = $1 AND plan_id = $2)",
        tenant_id,
        plan_id,
    )
    return found


# -- price overrides ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredOverride:
    charge_key: str
    meter_key: str
    price: Any
    """The described price (a `WirePrice` model)."""


async def upsert_override(conn: Connection, tenant_id: str, override: PriceOverrideSet) -> bool:
    """Set a customer's price for one charge of a plan, unless one set later is already
    known (an override set earlier and delivered late changes nothing). Returns whether it
    changed anything."""
    status: str = await conn.execute(
        "INSERT INTO price_overrides (tenant_id, plan_id, customer_id, charge_key, override_id,"
        " meter_key, currency, price, set_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (tenant_id, plan_id, customer_id, charge_key) DO UPDATE SET"
        " override_id = EXCLUDED.override_id, meter_key = EXCLUDED.meter_key,"
        " currency = EXCLUDED.currency, price = EXCLUDED.price, set_at = EXCLUDED.set_at"
        " WHERE price_overrides.set_at <= EXCLUDED.set_at",
        tenant_id,
        override.plan_id,
        override.customer_id,
        override.charge_key,
        override.override_id,
        override.meter_key,
        override.currency.code,
        _WIRE_PRICE.dump_json(override.price).decode(),
        override.set_at,
    )
    return _changed(status)


def _to_override(row: asyncpg.Record) -> StoredOverride:
    return StoredOverride(
        charge_key=row["charge_key"],
        meter_key=row["meter_key"],
        price=_WIRE_PRICE.validate_json(row["price"]),
    )


async def overrides_of(
    conn: Connection, tenant_id: str, plan_id: str, customer_id: str
) -> dict[str, StoredOverride]:
    """The customer's overrides of the plan's charges, by charge key."""
    rows = await conn.fetch(
        "SELECT charge_key, meter_key, price FROM price_overrides"
        " WHERE tenant_id = $1 AND plan_id = $2 AND customer_id = $3 ORDER BY charge_key",
        tenant_id,
        plan_id,
        customer_id,
    )
    return {row["charge_key"]: _to_override(row) for row in rows}
