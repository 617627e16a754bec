from __future__ import annotations

import asyncpg
import pytest

from billing_common.db import create_pool
from billing_common.ids import TenantId
from billing_gateway import repository
from billing_gateway.__main__ import main as module_main
from billing_gateway.auth import ApiKeyRecord, generate_api_key, hash_api_key, is_api_key
from billing_gateway.cli import (
    DEV_TENANT_ID,
    KeyTakenError,
    build_parser,
    create_api_key,
    main,
)


class TestParser:
    def test_the_dev_tenant_is_a_valid_tenant_id(self) -> None:
        assert TenantId.parse(DEV_TENANT_ID) == DEV_TENANT_ID

    def test_defaults_to_the_dev_tenant_and_a_generated_key(self) -> None:
        args = build_parser().parse_args(["create-api-key"])
        assert args.tenant == DEV_TENANT_ID
        assert args.key is None
        assert args.live is False

    @pytest.mark.parametrize(
        "argv",
        [
            ["create-api-key", "--tenant", "cus_01M8ARBC0TE1AAMP4XN1DBV6A6"],
            ["create-api-key", "--tenant", "ten_nope"],
            ["create-api-key", "--key", "sk_test_short"],
            ["create-api-key", "--key", "pk_test_" + "a" * 43],
            ["rotate-everything"],
            [],
        ],
    )
    def test_bad_arguments_exit_2(self, argv: list[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(argv)
        assert exited.value.code == 2

    def test_the_module_dispatches_commands_to_the_cli(self) -> None:
        with pytest.raises(SystemExit) as exited:
            module_main(["--help"])
        assert exited.value.code == 0


async def _find(database_url: str, schema: str, key: str) -> ApiKeyRecord | None:
    pool: asyncpg.Pool = await create_pool(database_url, schema)
    try:
        return await repository.find_by_hash(pool, hash_api_key(key))
    finally:
        await pool.close()


@pytest.mark.service
class TestCreateApiKey:
    async def test_stores_only_the_hash_of_a_new_key(
        self, database_url: str, fresh_schema: str
    ) -> None:
        key, tenant = generate_api_key(), TenantId.new()
        await create_api_key(
            database_url, key=key, tenant_id=tenant, name="ci", schema=fresh_schema
        )
        record = await _find(database_url, fresh_schema, key)
        assert record is not None
        assert (record.tenant_id, record.name, record.key_prefix) == (tenant, "ci", key[:12])
        pool: asyncpg.Pool = await create_pool(database_url, fresh_schema)
        try:
            rows = await pool.fetch("SELECT * FROM api_keys")
        finally:
            await pool.close()
        assert all(key not in str(value) for row in rows for value in row.values())

    async def test_registering_a_key_again_for_its_tenant_is_a_no_op(
        self, database_url: str, fresh_schema: str
    ) -> None:
        key, tenant = generate_api_key(), TenantId.new()
        for _ in range(2):
            await create_api_key(
                database_url, key=key, tenant_id=tenant, name="dev", schema=fresh_schema
            )
        with pytest.raises(KeyTakenError):
            await create_api_key(
                database_url, key=key, tenant_id=TenantId.new(), name="dev", schema=fresh_schema
            )

    def test_main_prints_only_the_key(
        self,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", database_url)
        key = generate_api_key()
        assert main(["create-api-key", "--name", "dev", "--key", key]) == 0
        assert capsys.readouterr().out == key + "\n"
        assert main(["create-api-key", "--live"]) == 0
        printed = capsys.readouterr().out.strip()
        assert printed.startswith("sk_live_")
        assert is_api_key(printed)
