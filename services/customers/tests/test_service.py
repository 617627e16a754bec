from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_common.currency import Currency
from billing_common.db import Pool, transaction
from billing_common.outbox import OutboxWriter
from billing_customers import service
from billing_customers.events import CUSTOMER_CREATED
from billing_customers.schemas import CustomerCreate, CustomerListQuery

pytestmark = pytest.mark.service

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
OUTBOX = OutboxWriter(source="customers", clock=lambda: NOW)


def request(external_id: str) -> CustomerCreate:
    return CustomerCreate(
        external_id=external_id, name=f"Customer {external_id}", currency=Currency.of("USD")
    )


class TestCreateCustomer:
    async def test_stores_the_customer_and_its_event_together(self, customers_pool: Pool) -> None:
        async with transaction(customers_pool) as conn:
            customer = await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
        assert customer.id.startswith("cus_")
        assert customer.created_at == NOW
        rows = await customers_pool.fetch("SELECT topic, key, payload FROM outbox")
        assert [(r["topic"], r["key"]) for r in rows] == [(CUSTOMER_CREATED.name, customer.id)]
        event = CUSTOMER_CREATED.parse(bytes(rows[0]["payload"]))
        assert event.data.customer_id == customer.id
        assert event.data.currency.code == "USD"
        assert event.tenantid == "ten_1"

    async def test_a_taken_external_id_is_a_conflict_and_changes_nothing(
        self, customers_pool: Pool
    ) -> None:
        async with transaction(customers_pool) as conn:
            await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
        with pytest.raises(service.ExternalIdTaken, match="'a' is already used"):
            async with transaction(customers_pool) as conn:
                await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
        assert await customers_pool.fetchval("SELECT count(*) FROM customers") == 1
        assert await customers_pool.fetchval("SELECT count(*) FROM outbox") == 1

    async def test_external_ids_are_unique_per_tenant_only(self, customers_pool: Pool) -> None:
        async with transaction(customers_pool) as conn:
            await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
            await service.create_customer(conn, OUTBOX, "ten_2", request("a"), now=NOW)
        assert await customers_pool.fetchval("SELECT count(*) FROM customers") == 2


class TestReadCustomers:
    async def test_get_is_scoped_to_the_tenant(self, customers_pool: Pool) -> None:
        async with transaction(customers_pool) as conn:
            created = await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
            assert await service.get_customer(conn, "ten_1", created.id) == created
            with pytest.raises(service.CustomerNotFound):
                await service.get_customer(conn, "ten_2", created.id)

    async def test_pages_follow_creation_order(self, customers_pool: Pool) -> None:
        async with transaction(customers_pool) as conn:
            created = [
                await service.create_customer(conn, OUTBOX, "ten_1", request(str(i)), now=NOW)
                for i in range(5)
            ]
            first = await service.list_customers(conn, "ten_1", CustomerListQuery(limit=2))
            assert [c.id for c in first.data] == [c.id for c in created[:2]]
            assert first.has_more
            assert first.next_cursor == created[1].id
            rest = await service.list_customers(
                conn, "ten_1", CustomerListQuery(limit=10, starting_after=first.next_cursor)
            )
            assert [c.id for c in rest.data] == [c.id for c in created[2:]]
            assert not rest.has_more
            assert rest.next_cursor is None
            by_external = await service.list_customers(
                conn, "ten_1", CustomerListQuery(external_id="3")
            )
            assert [c.id for c in by_external.data] == [created[3].id]
