from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billing_common.db import Pool, apply_migrations, create_pool, load_migrations


@pytest.fixture
async def customers_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_customers"))
        yield pool
    finally:
        await pool.close()
