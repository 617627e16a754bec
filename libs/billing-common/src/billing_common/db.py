"""PostgreSQL (CockroachDB in production) access: one schema per service, migrations.

Each service owns one schema, named after it, and every connection of its pool
has `search_path` set to it, so repositories write unqualified table names.
Migrations are forward-only numbered SQL files (`0001_init.sql`) applied at
start, in order, each in its own transaction, under an advisory lock so that
replicas starting together apply each file once.

CockroachDB note: `pg_advisory_xact_lock` is accepted by CockroachDB but is a
no-op there; replicas of one service must then be rolled out one at a time (the
migration table's primary key still makes a concurrent double-apply fail loudly
instead of applying twice).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TypeAlias

import asyncpg

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

Pool: TypeAlias = asyncpg.Pool
Connection: TypeAlias = asyncpg.Connection


@dataclass(frozen=True, order=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def validate_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"{schema!r} is not a valid schema name")
    return schema


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """The numbered SQL files of `package/folder`, in order; gaps and duplicates raise."""
    root: Traversable = resources.files(package).joinpath(folder)
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} must be named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort()
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migrations of {package} must be numbered 1..n without gaps; "
                f"found {migration.version:04d} where {expected:04d} was expected"
            )
    return found


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"billing-migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def apply_migrations(
    pool: Pool,
    schema: str,
    migrations: Sequence[Migration],
    *,
    history_table: str = "schema_migrations",
) -> list[Migration]:
    """Apply what is missing from `migrations` to `schema`; return what was applied.

    A migration already applied whose file changed raises: migrations are
    forward-only, so a fix is a new file.
    """
    validate_schema_name(schema)
    validate_schema_name(history_table)
    history = f"{schema}.{history_table}"
    applied_now: list[Migration] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(history))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {history} (
                    version INT PRIMARY KEY,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )"""
        )
        rows = await conn.fetch(f"SELECT version, checksum FROM {history}")
        done = {row["version"]: row["checksum"] for row in rows}
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version:04d}_{migration.name} of schema "
                        f"{schema} changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {history} (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration)
    return applied_now


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 5) -> Pool:
    """A pool whose connections all use `schema` (and `public` for extensions)."""
    validate_schema_name(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{schema},public", "timezone": "UTC"},
        command_timeout=30,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Connection]:
    """One connection in one transaction: the unit of work a use case runs in."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


async def fetch_page(
    conn: Connection,
    *,
    table: str,
    columns: str,
    tenant_id: str,
    limit: int,
    starting_after: object | None,
    equal: Mapping[str, object | None],
) -> tuple[list[asyncpg.Record], bool]:
    """One page of a tenant's `table` for cursor pagination: up to `limit` rows in id order
    (ids are time-ordered) after the id `starting_after`, each column of `equal` whose value
    is not None matching it; and whether more rows follow.

    `table`, `columns` and the keys of `equal` are SQL written by the caller, never input.
    """
    clauses = ["tenant_id = $1"]
    args: list[object] = [tenant_id]
    if starting_after is not None:
        args.append(starting_after)
        clauses.append(f"id > ${len(args)}")
    for column, value in equal.items():
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)}"
        f" ORDER BY id LIMIT ${len(args)}",
        *args,
    )
    return list(rows[:limit]), len(rows) > limit
