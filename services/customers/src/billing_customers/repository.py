"""All SQL of the customers schema."""

from __future__ import annotations

import json
from collections.abc import Collection

import asyncpg

from billing_common.db import Connection, fetch_page
from billing_common.ids import CustomerId
from billing_customers.schemas import BillingAddress, Customer, TaxId


class DuplicateExternalId(Exception):
    pass


_COLUMNS = (
    "id, external_id, name, email, currency, timezone, billing_address, tax_ids,"
    " invoice_grace_period_days, parent_id, bill_to_parent, metadata, created_at,"
    " COALESCE(updated_at, created_at) AS updated_at"
)


def _to_customer(row: asyncpg.Record) -> Customer:
    address = row["billing_address"]
    return Customer(
        id=CustomerId(row["id"]),
        external_id=row["external_id"],
        name=row["name"],
        email=row["email"],
        currency=row["currency"],
        timezone=row["timezone"],
        billing_address=None if address is None else BillingAddress.model_validate_json(address),
        tax_ids=[TaxId.model_validate(item) for item in json.loads(row["tax_ids"])],
        invoice_grace_period_days=row["invoice_grace_period_days"],
        parent_id=None if row["parent_id"] is None else CustomerId(row["parent_id"]),
        bill_to_parent=row["bill_to_parent"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _address_json(customer: Customer) -> str | None:
    address = customer.billing_address
    return None if address is None else address.model_dump_json()


def _tax_ids_json(customer: Customer) -> str:
    return json.dumps([tax_id.model_dump() for tax_id in customer.tax_ids])


async def insert(conn: Connection, tenant_id: str, customer: Customer) -> None:
    try:
        await conn.execute(
            "INSERT INTO customers (id, tenant_id, external_id, name, email, currency, timezone,"
            " billing_address, tax_ids, invoice_grace_period_days, parent_id, bill_to_parent,"
            " metadata, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            customer.id,
            tenant_id,
            customer.external_id,
            customer.name,
            customer.email,
            customer.currency.code,
            customer.timezone,
            _address_json(customer),
            _tax_ids_json(customer),
            customer.invoice_grace_period_days,
            customer.parent_id,
            customer.bill_to_parent,
            json.dumps(customer.metadata),
            customer.created_at,
            customer.updated_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateExternalId(customer.external_id) from exc


async def update(conn: Connection, tenant_id: str, customer: Customer) -> None:
    """Write every mutable field of `customer` (currency and created_at never change)."""
    try:
        await conn.execute(
            "UPDATE customers SET external_id = $3, name = $4, email = $5, timezone = $6,"
            " billing_address = $7, tax_ids = $8, invoice_grace_period_days = $9,"
            " parent_id = $10, bill_to_parent = $11, metadata = $12, updated_at = $13"
            " WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            customer.id,
            customer.external_id,
            customer.name,
            customer.email,
            customer.timezone,
            _address_json(customer),
            _tax_ids_json(customer),
            customer.invoice_grace_period_days,
            customer.parent_id,
            customer.bill_to_parent,
            json.dumps(customer.metadata),
            customer.updated_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateExternalId(customer.external_id) from exc


async def get(conn: Connection, tenant_id: str, customer_id: str) -> Customer | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM customers WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        customer_id,
    )
    return None if row is None else _to_customer(row)


async def lock(
    conn: Connection, tenant_id: str, customer_ids: Collection[str]
) -> dict[str, Customer]:
    """The customers among `customer_ids` that exist, each row locked until the transaction
    ends. Rows are locked in id order, so two transactions locking overlapping sets wait
    for each other instead of deadlocking."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM customers WHERE tenant_id = $1 AND id = ANY($2::TEXT[])"
        " ORDER BY id FOR UPDATE",
        tenant_id,
        sorted(set(customer_ids)),
    )
    return {row["id"]: _to_customer(row) for row in rows}


async def has_children(conn: Connection, tenant_id: str, customer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND parent_id = $2)",
        tenant_id,
        customer_id,
    )
    return found


async def list_page(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    external_id: str | None,
    parent_id: str | None = None,
) -> tuple[list[Customer], bool]:
    """One page in id order (ids are time-ordered); also says whether more follow."""
    rows, has_more = await fetch_page(
        conn,
        table="customers",
        columns=_COLUMNS,
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal={"external_id": external_id, "parent_id": parent_id},
    )
    return [_to_customer(row) for row in rows], has_more
