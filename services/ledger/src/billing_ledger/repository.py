"""All SQL of the ledger schema: the account directory, the journal, the invoices posted.

u128 ids and amounts go in and out as `NUMERIC(39,0)` through `Decimal`, exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from billing_common.currency import Currency
from billing_common.db import Connection
from billing_common.ids import CustomerId
from billing_common.money import Money
from billing_ledger.accounts import AccountKind
from billing_ledger.domain import CreditedLine, PostedLine
from billing_ledger.ledger import Account, AccountFlags, Transfer, TransferFlags
from billing_ledger.postings import RevenueTreatment


def _num(value: int) -> Decimal:
    return Decimal(value)


def _int(value: Decimal) -> int:
    as_int = int(value)
    if as_int != value:  # NUMERIC(39,0) never has a fraction; refuse to round one away
        raise ValueError(f"{value} is not an integer")
    return as_int


# -- the account directory ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """One account of the directory: whose it is, and what the ledger knows it by."""

    id: int
    tenant_id: str
    currency: Currency
    kind: AccountKind
    customer_id: CustomerId | None
    account: Account
    """The account as created (balances zero): what a rebuild creates again."""


def _entry(row: asyncpg.Record) -> AccountEntry:
    account = Account(
        id=_int(row["id"]),
        ledger=row["ledger"],
        code=row["code"],
        flags=AccountFlags(row["flags"]),
        user_data_128=_int(row["user_data_128"]),
    )
    customer = row["customer_id"]
    return AccountEntry(
        id=account.id,
        tenant_id=row["tenant_id"],
        currency=Currency.of(row["currency"]),
        kind=AccountKind(row["kind"]),
        customer_id=None if customer is None else CustomerId(customer),
        account=account,
    )


_ACCOUNT_COLUMNS = "id, tenant_id, currency, kind, customer_id, ledger, code, flags, user_data_128"


async def register_accounts(
    conn: Connection,
    tenant_id: str,
    currency: Currency,
    accounts: Sequence[tuple[AccountKind, CustomerId | None, Account]],
) -> None:
    """Add the accounts the directory does not have yet (the others stay as they are)."""
    await conn.executemany(
        f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (id) DO NOTHING",
        [
            (
                _num(account.id),
                tenant_id,
                currency.code,
                kind.value,
                customer,
                account.ledger,
                account.code,
                int(account.flags),
                _num(account.user_data_128),
            )
            for kind, customer, account in accounts
        ],
    )


async def get_account(conn: Connection, tenant_id: str, account_id: int) -> AccountEntry | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        _num(account_id),
    )
    return None if row is None else _entry(row)


async def list_accounts(
    conn: Connection,
    tenant_id: str,
    *,
    customer_id: str | None = None,
    currency: str | None = None,
    starting_after: int | None = None,
    limit: int | None = None,
) -> list[AccountEntry]:
    """The tenant's accounts in id order, filtered; `limit` None: all of them."""
    clauses = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    if customer_id is not None:
        args.append(customer_id)
        clauses.append(f"customer_id = ${len(args)}")
    if currency is not None:
        args.append(currency)
        clauses.append(f"currency = ${len(args)}")
    if starting_after is not None:
        args.append(_num(starting_after))
        clauses.append(f"id > ${len(args)}")
    limit_clause = ""
    if limit is not None:
        args.append(limit)
        limit_clause = f" LIMIT ${len(args)}"
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {' AND '.join(clauses)}"
        f" ORDER BY id{limit_clause}",
        *args,
    )
    return [_entry(row) for row in rows]


async def all_accounts(conn: Connection) -> list[Account]:
    """Every account of every tenant, as created: what a rebuild starts from."""
    rows = await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY id")
    return [_entry(row).account for row in rows]


# -- the journal of the in-process ledger ---------------------------------------------------

_TRANSFER_FIELDS = (
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "timeout",
    "ledger",
    "code",
)
_NUMERIC_FIELDS = frozenset(
    {"debit_account_id", "credit_account_id", "amount", "pending_id", "user_data_128"}
)
_UINT64_FIELDS = frozenset({"user_data_64"})


async def lock_journal_head(conn: Connection) -> int:
    """The seq of the journal's last chain, locked until the transaction ends."""
    seq: int = await conn.fetchval("SELECT seq FROM journal_head FOR UPDATE")
    return seq


async def journal_head(conn: Connection) -> int:
    seq: int = await conn.fetchval("SELECT seq FROM journal_head")
    return seq


async def append_chain(conn: Connection, seq: int, chain: Sequence[Transfer]) -> None:
    """Write `chain` as journal chain `seq` and move the head to it.

    A transfer the journal has already keeps its row (its id is its identity)."""
    columns = ", ".join(("id", "seq", "position", *_TRANSFER_FIELDS, "flags"))
    placeholders = ", ".join(f"${i}" for i in range(1, len(_TRANSFER_FIELDS) + 5))
    await conn.executemany(
        f"INSERT INTO journal ({columns}) VALUES ({placeholders}) ON CONFLICT (id) DO NOTHING",
        [
            (
                _num(t.id),
                seq,
                position,
                *(
                    _num(getattr(t, name))
                    if name in _NUMERIC_FIELDS or name in _UINT64_FIELDS
                    else getattr(t, name)
                    for name in _TRANSFER_FIELDS
                ),
                int(t.flags),
            )
            for position, t in enumerate(chain)
        ],
    )
    await conn.execute("UPDATE journal_head SET seq = $1", seq)


async def journal(conn: Connection) -> list[Transfer]:
    """Every transfer of the journal, as submitted, in the order the ledger applied them."""
    columns = ", ".join(("id", *_TRANSFER_FIELDS, "flags"))
    rows = await conn.fetch(f"SELECT {columns} FROM journal ORDER BY seq, position")
    return [
        Transfer(
            id=_int(row["id"]),
            **{
                name: _int(row[name])
                if name in _NUMERIC_FIELDS or name in _UINT64_FIELDS
                else row[name]
                for name in _TRANSFER_FIELDS
            },
            flags=TransferFlags(row["flags"]),
        )
        for row in rows
    ]


# -- invoices as posted ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostedInvoice:
    invoice_id: str
    customer_id: str
    currency: Currency
    total: Money
    voided_at: datetime | None
    lines: list[PostedLine]


async def save_invoice(
    conn: Connection,
    tenant_id: str,
    *,
    invoice_id: str,
    customer_id: str,
    currency: Currency,
    total: Money,
    finalized_at: datetime,
    lines: Sequence[PostedLine],
) -> None:
    """Remember what an invoice posted (a second save of the same invoice changes nothing)."""
    await conn.execute(
        "INSERT INTO invoices (tenant_id, invoice_id, customer_id, currency, total,"
        " finalized_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        tenant_id,
        invoice_id,
        customer_id,
        currency.code,
        _num(total.amount),
        finalized_at,
    )
    await conn.executemany(
        "INSERT INTO invoice_lines (tenant_id, invoice_id, line_id, position, treatment,"
        " amount, tax) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        [
            (
                tenant_id,
                invoice_id,
                line.line_id,
                position,
                line.treatment.value,
                _num(line.amount.amount),
                _num(line.tax.amount),
            )
            for position, line in enumerate(lines)
        ],
    )


async def get_invoice(conn: Connection, tenant_id: str, invoice_id: str) -> PostedInvoice | None:
    row = await conn.fetchrow(
        "SELECT invoice_id, customer_id, currency, total, voided_at FROM invoices"
        " WHERE tenant_id = $1 AND invoice_id = $2",
        tenant_id,
        invoice_id,
    )
    if row is None:
        return None
    currency = Currency.of(row["currency"])
    line_rows = await conn.fetch(
        "SELECT line_id, treatment, amount, tax FROM invoice_lines"
        " WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY position",
        tenant_id,
        invoice_id,
    )
    return PostedInvoice(
        invoice_id=row["invoice_id"],
        customer_id=row["customer_id"],
        currency=currency,
        total=Money(_int(row["total"]), currency),
        voided_at=row["voided_at"],
        lines=[
            PostedLine(
                r["line_id"],
                RevenueTreatment(r["treatment"]),
                Money(_int(r["amount"]), currency),
                Money(_int(r["tax"]), currency),
            )
            for r in line_rows
        ],
    )


async def mark_voided(conn: Connection, tenant_id: str, invoice_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE invoices SET voided_at = $3 WHERE tenant_id = $1 AND invoice_id = $2"
        " AND voided_at IS NULL",
        tenant_id,
        invoice_id,
        at,
    )


async def save_credited_lines(
    conn: Connection,
    tenant_id: str,
    *,
    credit_note_id: str,
    invoice_id: str,
    lines: Sequence[CreditedLine],
) -> None:
    await conn.executemany(
        "INSERT INTO credited_lines (tenant_id, credit_note_id, invoice_id, line_id, amount,"
        " tax) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [
            (
                tenant_id,
                credit_note_id,
                invoice_id,
                line.line_id,
                _num(line.amount.amount),
                _num(line.tax.amount),
            )
            for line in lines
        ],
    )


async def credited(
    conn: Connection, tenant_id: str, invoice_id: str, currency: Currency
) -> list[CreditedLine]:
    """Every line every credit note of the invoice took back."""
    rows = await conn.fetch(
        "SELECT line_id, amount, tax FROM credited_lines WHERE tenant_id = $1 AND invoice_id = $2"
        " ORDER BY credit_note_id, line_id",
        tenant_id,
        invoice_id,
    )
    return [
        CreditedLine(
            row["line_id"],
            Money(_int(row["amount"]), currency),
            Money(_int(row["tax"]), currency),
        )
        for row in rows
    ]
