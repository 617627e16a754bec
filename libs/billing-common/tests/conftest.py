"""Fixtures of the plumbing tests: a schema with the outbox and inbox, and a test topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billing_common.db import Pool, apply_migrations, create_pool, load_migrations
from billing_common.events import EventData, Topic


class Widget(EventData):
    widget_id: str
    size: int


WIDGET_MADE = Topic("widgets", "widget_made", Widget, "a widget was made (tests only)")


@pytest.fixture
def widget_topic() -> Topic[Widget]:
    return WIDGET_MADE


@pytest.fixture
async def plumbed_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A pool on a fresh schema with the common migrations and a `widgets` table."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        await apply_migrations(
            pool, fresh_schema, load_migrations("billing_common"), history_table="common_migrations"
        )
        await pool.execute("CREATE TABLE widgets (id TEXT PRIMARY KEY, size INT NOT NULL)")
        yield pool
    finally:
        await pool.close()
