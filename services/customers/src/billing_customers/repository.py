"""All SQL of the customers schema."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from billing_common.db import Connection
from billing_common.ids import CustomerId
from billing_customers.schemas import Customer


class DuplicateExternalId(Exception):
    pass


def _to_customer(row: asyncpg.Record) -> Customer:
    return Customer(
        id=CustomerId(row["id"]),
        external_id=row["external_id"],
        name=row["name"],
        email=row["email"],
        currency=row["currency"],
        timezone=row["timezone"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
    )


async def insert(conn: Connection, tenant_id: str, customer: Customer) -> None:
    try:
        await conn.execute(
            "INSERT INTO customers (id, tenant_id, external_id, name, email, currency, timezone,"
            " metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            customer.id,
            tenant_id,
            customer.external_id,
            customer.name,
            customer.email,
            customer.currency.code,
            customer.timezone,
            json.dumps(customer.metadata),
            customer.created_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateExternalId(customer.external_id) from exc


async def get(conn: Connection, tenant_id: str, customer_id: str) -> Customer | None:
    row = await conn.fetchrow(
        "SELECT * FROM customers WHERE tenant_id = $1 AND id = $2", tenant_id, customer_id
    )
    return None if row is None else _to_customer(row)


async def list_page(
    conn: Connection,
    tenant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    external_id: str | None,
) -> tuple[list[Customer], bool]:
    """One page in id order (ids are time-ordered); also says whether more follow."""
    clauses = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    if starting_after is not None:
        args.append(starting_after)
        clauses.append(f"id > ${len(args)}")
    if external_id is not None:
        args.append(external_id)
        clauses.append(f"external_id = ${len(args)}")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT * FROM customers WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ${len(args)}",
        *args,
    )
    customers = [_to_customer(row) for row in rows[:limit]]
    return customers, len(rows) > limit
