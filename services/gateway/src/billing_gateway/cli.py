"""`python -m billing_gateway create-api-key`: make (or register) an API key.

Prints only the key on stdout, so that scripts can capture it:

    KEY=$(python -m billing_gateway create-api-key --tenant ten_... --name ci)

`--key sk_test_…` registers a given key instead of generating one (how `make dev`
gets a stable dev key); registering it again for the same tenant is a no-op.
Reads DATABASE_URL and applies the gateway's migrations first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from billing_common.config import ServiceSettings
from billing_common.db import apply_migrations, create_pool, load_migrations
from billing_common.errors import InvalidId
from billing_common.ids import TenantId
from billing_common.runtime import system_clock
from billing_gateway import repository
from billing_gateway.auth import api_key_record, generate_api_key, hash_api_key, is_api_key

SCHEMA = "gateway"
PACKAGE = "billing_gateway"

DEV_TENANT_ID = TenantId.parse("ten_01M8ARBC0TE1AAMP4XN1DBV6A6")
"""The tenant of local development (`make dev`, the demo data): one fixed id."""


class KeyTakenError(Exception):
    """The key given with --key belongs to another tenant or was revoked."""


async def create_api_key(
    database_url: str, *, key: str, tenant_id: str, name: str, schema: str = SCHEMA
) -> None:
    """Store `key` for `tenant_id` (idempotent for the same tenant); migrate first."""
    pool: asyncpg.Pool = await create_pool(database_url, schema, min_size=1, max_size=1)
    try:
        await apply_migrations(
            pool, schema, load_migrations("billing_common"), history_table="common_migrations"
        )
        await apply_migrations(pool, schema, load_migrations(PACKAGE))
        record = api_key_record(key, tenant_id=tenant_id, name=name, created_at=system_clock())
        if await repository.insert(pool, record):
            return
        existing = await repository.find_by_hash(pool, hash_api_key(key))
        if existing is None or existing.tenant_id != tenant_id or existing.revoked_at is not None:
            raise KeyTakenError("this key is registered for another tenant or was revoked")
    finally:
        await pool.close()


def _tenant(value: str) -> TenantId:
    try:
        return TenantId.parse(value)
    except InvalidId as exc:
        raise argparse.ArgumentTypeError(exc.detail) from exc


def _key(value: str) -> str:
    if not is_api_key(value):
        raise argparse.ArgumentTypeError(
            "a key is sk_test_ or sk_live_ followed by 43 base64url characters"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m billing_gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-api-key", help="create an API key and print it")
    create.add_argument(
        "--tenant", type=_tenant, default=DEV_TENANT_ID, help=f"default: {DEV_TENANT_ID}"
    )
    create.add_argument("--name", default="default", help="a label for people (default: default)")
    create.add_argument("--key", type=_key, help="register this key instead of generating one")
    create.add_argument("--live", action="store_true", help="generate an sk_live_ key")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    key: str = args.key or generate_api_key(live=args.live)
    database_url = ServiceSettings().database_url.get_secret_value()
    try:
        asyncio.run(create_api_key(database_url, key=key, tenant_id=args.tenant, name=args.name))
    except KeyTakenError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: cannot reach the database: {exc}\n")
        return 1
    sys.stdout.write(key + "\n")
    return 0
