"""All SQL of the pricing schema."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from billing_common.currency import Currency
from billing_common.db import Connection, fetch_page
from billing_common.ids import CustomerId, PlanId, ProductId
from billing_common.money import MoneyWire
from billing_metering.meters import MeterDefinition
from billing_pricing.domain import MeterState
from billing_pricing.events import CouponCreated
from billing_pricing.schemas import (
    PlanBody,
    PlanMigration,
    PlanMigrationId,
    PriceOverrideId,
    Product,
    WirePrice,
)

_WIRE_PRICE: TypeAdapter[Any] = TypeAdapter(WirePrice)
_WIRE_PLAN = PlanBody[MoneyWire]


class DuplicateCode(Exception):
    """A plan or coupon code already used by the tenant."""


# -- products ----------------------------------------------------------------------------------


def _to_product(row: asyncpg.Record) -> Product:
    return Product(
        id=ProductId(row["id"]),
        name=row["name"],
        description=row["description"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
    )


async def insert_product(conn: Connection, tenant_id: str, product: Product) -> None:
    await conn.execute(
        "INSERT INTO products (id, tenant_id, name, description, metadata, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        product.id,
        tenant_id,
        product.name,
        product.description,
        json.dumps(product.metadata),
        product.created_at,
    )


async def get_product(conn: Connection, tenant_id: str, product_id: str) -> Product | None:
    row = await conn.fetchrow(
        "SELECT * FROM products WHERE tenant_id = $1 AND id = $2", tenant_id, product_id
    )
    return None if row is None else _to_product(row)


async def list_products(
    conn: Connection, tenant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[Product], bool]:
    rows, has_more = await _page(conn, "products", tenant_id, limit, starting_after, {})
    return [_to_product(row) for row in rows], has_more


async def _page(
    conn: Connection,
    table: str,
    tenant_id: str,
    limit: int,
    starting_after: str | None,
    equal: dict[str, Any],
) -> tuple[list[asyncpg.Record], bool]:
    """One page of `table` in id order (ids are time-ordered), and whether more follow."""
    return await fetch_page(
        conn,
        table=table,
        columns="*",
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal=equal,
    )


# -- plans and their versions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPlanVersion:
    plan_id: PlanId
    code: str
    version: int
    latest_version: int
    body: PlanBody[MoneyWire]
    created_at: datetime
    published_at: datetime


_PLAN_VERSION_COLUMNS = (
    "SELECT p.id, p.code, p.latest_version, p.created_at, v.version, v.body, v.published_at"
    " FROM plans p JOIN plan_versions v ON v.plan_id = p.id"
)


def _to_plan_version(row: asyncpg.Record) -> StoredPlanVersion:
    return StoredPlanVersion(
        plan_id=PlanId(row["id"]),
        code=row["code"],
        version=row["version"],
        latest_version=row["latest_version"],
        body=_WIRE_PLAN.model_validate_json(row["body"]),
        created_at=row["created_at"],
        published_at=row["published_at"],
    )


async def insert_plan(
    conn: Connection, tenant_id: str, plan_id: PlanId, code: str, created_at: datetime
) -> None:
    """A new plan at version 1 (its version row is `insert_plan_version`'s)."""
    try:
        await conn.execute(
            "INSERT INTO plans (id, tenant_id, code, latest_version, created_at)"
            " VALUES ($1, $2, $3, 1, $4)",
            plan_id,
            tenant_id,
            code,
            created_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateCode(code) from exc


async def claim_next_version(conn: Connection, tenant_id: str, plan_id: str) -> int | None:
    """Increment the plan's latest version and return it (None: no such plan). The row stays
    locked until the transaction ends, so concurrent publishers get successive numbers."""
    version: int | None = await conn.fetchval(
        "UPDATE plans SET latest_version = latest_version + 1"
        " WHERE tenant_id = $1 AND id = $2 RETURNING latest_version",
        tenant_id,
        plan_id,
    )
    return version


async def insert_plan_version(
    conn: Connection,
    tenant_id: str,
    plan_id: PlanId,
    version: int,
    body: PlanBody[MoneyWire],
    published_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO plan_versions (plan_id, version, tenant_id, body, published_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        plan_id,
        version,
        tenant_id,
        body.model_dump_json(),
        published_at,
    )


async def get_plan_version(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None = None
) -> StoredPlanVersion | None:
    """One version of a plan; the latest when `version` is None."""
    row = await conn.fetchrow(
        _PLAN_VERSION_COLUMNS + " WHERE p.tenant_id = $1 AND p.id = $2"
        " AND v.version = COALESCE($3, p.latest_version)",
        tenant_id,
        plan_id,
        version,
    )
    return None if row is None else _to_plan_version(row)


async def list_plans(
    conn: Connection, tenant_id: str, *, limit: int, starting_after: str | None, code: str | None
) -> tuple[list[StoredPlanVersion], bool]:
    """Plans at their latest version, in id order."""
    clauses = ["p.tenant_id = $1", "v.version = p.latest_version"]
    args: list[Any] = [tenant_id]
    if starting_after is not None:
        args.append(starting_after)
        clauses.append(f"p.id > ${len(args)}")
    if code is not None:
        args.append(code)
        clauses.append(f"p.code = ${len(args)}")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"{_PLAN_VERSION_COLUMNS} WHERE {' AND '.join(clauses)} ORDER BY p.id LIMIT ${len(args)}",
        *args,
    )
    return [_to_plan_version(row) for row in rows[:limit]], len(rows) > limit


async def existing_plan_currencies(
    conn: Connection, tenant_id: str, plan_ids: Iterable[str]
) -> dict[str, Currency]:
    """The currency of each of `plan_ids` that exists (at its latest version)."""
    rows = await conn.fetch(
        _PLAN_VERSION_COLUMNS + " WHERE p.tenant_id = $1 AND p.id = ANY($2::TEXT[])"
        " AND v.version = p.latest_version",
        tenant_id,
        list(plan_ids),
    )
    return {row["id"]: _to_plan_version(row).body.currency for row in rows}


# -- migrations --------------------------------------------------------------------------------


def _to_migration(row: asyncpg.Record) -> PlanMigration:
    return PlanMigration(
        id=PlanMigrationId(row["id"]),
        plan_id=PlanId(row["plan_id"]),
        from_version=row["from_version"],
        to_version=row["to_version"],
        effective_at=row["effective_at"],
        created_at=row["created_at"],
    )


async def insert_migration(conn: Connection, tenant_id: str, migration: PlanMigration) -> None:
    await conn.execute(
        "INSERT INTO plan_migrations (id, tenant_id, plan_id, from_version, to_version,"
        " effective_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        migration.id,
        tenant_id,
        migration.plan_id,
        migration.from_version,
        migration.to_version,
        migration.effective_at,
        migration.created_at,
    )


async def list_migrations(conn: Connection, tenant_id: str, plan_id: str) -> list[PlanMigration]:
    rows = await conn.fetch(
        "SELECT * FROM plan_migrations WHERE tenant_id = $1 AND plan_id = $2 ORDER BY id",
        tenant_id,
        plan_id,
    )
    return [_to_migration(row) for row in rows]


# -- price overrides ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredOverride:
    id: PriceOverrideId
    plan_id: PlanId
    customer_id: CustomerId
    charge_key: str
    meter_key: str
    currency: Currency
    price: Any  # a WirePrice
    created_at: datetime
    updated_at: datetime


def _to_override(row: asyncpg.Record) -> StoredOverride:
    return StoredOverride(
        id=PriceOverrideId(row["id"]),
        plan_id=PlanId(row["plan_id"]),
        customer_id=CustomerId(row["customer_id"]),
        charge_key=row["charge_key"],
        meter_key=row["meter_key"],
        currency=Currency.of(row["currency"]),
        price=_WIRE_PRICE.validate_json(row["price"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def upsert_override(
    conn: Connection,
    tenant_id: str,
    *,
    new_id: PriceOverrideId,
    plan_id: str,
    customer_id: str,
    charge_key: str,
    meter_key: str,
    currency: Currency,
    price: Any,
    now: datetime,
) -> StoredOverride:
    """Set the customer's price for the charge: a new row, or the existing one replaced
    (keeping its id and creation time)."""
    row = await conn.fetchrow(
        "INSERT INTO price_overrides (id, tenant_id, plan_id, customer_id, charge_key,"
        " meter_key, currency, price, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        " ON CONFLICT (tenant_id, plan_id, customer_id, charge_key) DO UPDATE SET"
        " meter_key = EXCLUDED.meter_key, currency = EXCLUDED.currency,"
        " price = EXCLUDED.price, updated_at = EXCLUDED.updated_at"
        " RETURNING *",
        new_id,
        tenant_id,
        plan_id,
        customer_id,
        charge_key,
        meter_key,
        currency.code,
        _WIRE_PRICE.dump_json(price).decode(),
        now,
    )
    assert row is not None
    return _to_override(row)


async def list_overrides(
    conn: Connection,
    tenant_id: str,
    plan_id: str,
    *,
    limit: int,
    starting_after: str | None,
    customer_id: str | None,
) -> tuple[list[StoredOverride], bool]:
    rows, has_more = await _page(
        conn,
        "price_overrides",
        tenant_id,
        limit,
        starting_after,
        {"plan_id": plan_id, "customer_id": customer_id},
    )
    return [_to_override(row) for row in rows], has_more


# -- coupons -----------------------------------------------------------------------------------
# A coupon is stored as the data of its `coupon_created` event: the whole coupon, wire form.


async def insert_coupon(conn: Connection, tenant_id: str, coupon: CouponCreated) -> None:
    try:
        await conn.execute(
            "INSERT INTO coupons (id, tenant_id, code, body, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            coupon.coupon_id,
            tenant_id,
            coupon.code,
            coupon.model_dump_json(),
            coupon.created_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateCode(coupon.code) from exc


async def get_coupon(conn: Connection, tenant_id: str, coupon_id: str) -> CouponCreated | None:
    body = await conn.fetchval(
        "SELECT body FROM coupons WHERE tenant_id = $1 AND id = $2", tenant_id, coupon_id
    )
    return None if body is None else CouponCreated.model_validate_json(body)


async def list_coupons(
    conn: Connection, tenant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[CouponCreated], bool]:
    rows, has_more = await _page(conn, "coupons", tenant_id, limit, starting_after, {})
    coupons = [CouponCreated.model_validate_json(row["body"]) for row in rows]
    return coupons, has_more


# -- the meter projection ----------------------------------------------------------------------


async def upsert_meter(
    conn: Connection,
    tenant_id: str,
    definition: MeterDefinition,
    *,
    version: int,
    archived: bool,
    changed_at: datetime,
) -> bool:
    """Record a meter at `version`, unless a later (or the same) version is already known.
    Returns whether anything changed."""
    result: str = await conn.execute(
        "INSERT INTO meters (tenant_id, meter_key, version, archived, definition, changed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (tenant_id, meter_key) DO UPDATE SET version = EXCLUDED.version,"
        " archived = EXCLUDED.archived, definition = EXCLUDED.definition,"
        " changed_at = EXCLUDED.changed_at WHERE meters.version < EXCLUDED.version",
        tenant_id,
        definition.key,
        version,
        archived,
        definition.model_dump_json(),
        changed_at,
    )
    return result.split()[-1] == "1"


async def meters_by_key(
    conn: Connection, tenant_id: str, keys: Iterable[str]
) -> dict[str, MeterState]:
    """The known meters among `keys` (archived ones too, marked so)."""
    rows = await conn.fetch(
        "SELECT meter_key, archived, definition FROM meters"
        " WHERE tenant_id = $1 AND meter_key = ANY($2::TEXT[])",
        tenant_id,
        sorted(set(keys)),
    )
    return {
        row["meter_key"]: MeterState(
            MeterDefinition.model_validate_json(row["definition"]), archived=row["archived"]
        )
        for row in rows
    }
