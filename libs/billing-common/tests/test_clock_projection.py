"""The test-clock projection shared by subscriptions and invoicing, on a real PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources

import pytest

from billing_common import clock_projection
from billing_common.db import Pool, create_pool

pytestmark = pytest.mark.service

APRIL = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
async def clock_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, fresh_schema)
    try:
        await pool.execute(f"CREATE SCHEMA IF NOT EXISTS {fresh_schema}")
        await pool.execute(clock_projection.CLOCK_TABLES)
        yield pool
    finally:
        await pool.close()


async def test_a_customer_follows_the_latest_time_of_its_clock(clock_pool: Pool) -> None:
    async with clock_pool.acquire() as conn:
        assert await clock_projection.customer_clock_time(conn, "ten_1", "cus_1") is None
        await clock_projection.attach_to_test_clock(conn, "ten_1", "cus_1", "clock_1", APRIL)
        await clock_projection.attach_to_test_clock(conn, "ten_1", "cus_1", "clock_2", MAY)
        assert await clock_projection.advance_test_clock(conn, "ten_1", "clock_1", MAY) == MAY
        # An earlier time arriving late (events of one clock may come in any order).
        assert await clock_projection.advance_test_clock(conn, "ten_1", "clock_1", APRIL) == MAY
        assert await clock_projection.customer_clock_time(conn, "ten_1", "cus_1") == MAY
        assert await clock_projection.customer_clock_time(conn, "ten_2", "cus_1") is None


def _tables(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    statements = [" ".join(s.split()) for s in without_comments.split(";")]
    return sorted(s for s in statements if s.startswith("CREATE TABLE test_clock"))


@pytest.mark.parametrize("package", ["billing_subscriptions", "billing_invoicing"])
def test_the_services_create_the_tables_this_module_reads(package: str) -> None:
    migration = resources.files(package).joinpath("migrations/0002_test_clocks.sql")
    assert _tables(migration.read_text()) == _tables(clock_projection.CLOCK_TABLES)
