from __future__ import annotations

import asyncpg
import pytest

from billing_common.db import (
    Migration,
    apply_migrations,
    create_pool,
    fetch_page,
    load_migrations,
    transaction,
    validate_schema_name,
)

FIRST = Migration(1, "create_things", "CREATE TABLE things (id INT PRIMARY KEY, name TEXT)")
SECOND = Migration(2, "add_colour", "ALTER TABLE things ADD COLUMN colour TEXT")


class TestLoadMigrations:
    def test_the_common_migrations_are_numbered_from_one(self) -> None:
        migrations = load_migrations("billing_common")
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert migrations[0].name == "outbox_inbox"

    def test_schema_names_are_validated(self) -> None:
        assert validate_schema_name("spend_alerts") == "spend_alerts"
        for bad in ("Spend", "1abc", "a;drop", "spend-alerts", ""):
            with pytest.raises(ValueError, match="schema name"):
                validate_schema_name(bad)


@pytest.mark.service
class TestApplyMigrations:
    async def test_applies_in_order_once(self, database_url: str, fresh_schema: str) -> None:
        pool = await create_pool(database_url, fresh_schema)
        try:
            assert await apply_migrations(pool, fresh_schema, [FIRST]) == [FIRST]
            assert await apply_migrations(pool, fresh_schema, [FIRST, SECOND]) == [SECOND]
            assert await apply_migrations(pool, fresh_schema, [FIRST, SECOND]) == []
            async with transaction(pool) as conn:
                await conn.execute("INSERT INTO things VALUES (1, 'a', 'red')")
                # search_path puts the service's schema first: unqualified names resolve there.
                assert await conn.fetchval(f"SELECT colour FROM {fresh_schema}.things") == "red"
        finally:
            await pool.close()

    async def test_a_changed_migration_is_refused(
        self, database_url: str, fresh_schema: str
    ) -> None:
        pool = await create_pool(database_url, fresh_schema)
        try:
            await apply_migrations(pool, fresh_schema, [FIRST])
            edited = Migration(1, "create_things", FIRST.sql + " -- edited")
            with pytest.raises(RuntimeError, match="changed after it was applied"):
                await apply_migrations(pool, fresh_schema, [edited])
        finally:
            await pool.close()

    async def test_a_failing_migration_applies_nothing(
        self, database_url: str, fresh_schema: str
    ) -> None:
        pool = await create_pool(database_url, fresh_schema)
        broken = Migration(2, "broken", "ALTER TABLE no_such_table ADD COLUMN x INT")
        try:
            with pytest.raises(asyncpg.UndefinedTableError):
                await apply_migrations(pool, fresh_schema, [FIRST, broken])
            assert await apply_migrations(pool, fresh_schema, [FIRST]) == [FIRST]
        finally:
            await pool.close()

    async def test_histories_are_separate(self, database_url: str, fresh_schema: str) -> None:
        pool = await create_pool(database_url, fresh_schema)
        try:
            common = load_migrations("billing_common")
            applied = await apply_migrations(
                pool, fresh_schema, common, history_table="common_migrations"
            )
            assert applied == common
            assert await apply_migrations(pool, fresh_schema, [FIRST]) == [FIRST]
        finally:
            await pool.close()


@pytest.mark.service
async def test_fetch_page_walks_a_tenants_rows_in_id_order(
    database_url: str, fresh_schema: str
) -> None:
    pool = await create_pool(database_url, fresh_schema)
    try:
        await apply_migrations(
            pool,
            fresh_schema,
            [
                Migration(
                    1, "rows", "CREATE TABLE rows (id TEXT PRIMARY KEY, tenant_id TEXT, kind TEXT)"
                )
            ],
        )
        await pool.executemany(
            "INSERT INTO rows VALUES ($1, $2, $3)",
            [(f"r{n}", "ten_1", "odd" if n % 2 else "even") for n in range(5)]
            + [("r9", "ten_2", "odd")],
        )
        async with pool.acquire() as conn:

            async def page(after: str | None, kind: str | None) -> tuple[list[str], bool]:
                rows, more = await fetch_page(
                    conn,
                    table="rows",
                    columns="id",
                    tenant_id="ten_1",
                    limit=2,
                    starting_after=after,
                    equal={"kind": kind},
                )
                return [row["id"] for row in rows], more

            assert await page(None, None) == (["r0", "r1"], True)
            assert await page("r1", None) == (["r2", "r3"], True)
            assert await page("r3", None) == (["r4"], False)
            assert await page(None, "odd") == (["r1", "r3"], False)  # never ten_2's r9
    finally:
        await pool.close()
