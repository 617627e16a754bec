from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_common.currency import Currency
from billing_common.db import Pool, transaction
from billing_common.errors import BillingError
from billing_common.events import CloudEvent
from billing_common.ids import CustomerId
from billing_common.outbox import OutboxWriter
from billing_customers import domain, service
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_customers.schemas import (
    BillingAddress,
    Customer,
    CustomerChildrenQuery,
    CustomerCreate,
    CustomerListQuery,
    CustomerUpdate,
    TaxId,
)

pytestmark = pytest.mark.service

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
OUTBOX = OutboxWriter(source="customers", clock=lambda: NOW)


def request(external_id: str, **fields: Any) -> CustomerCreate:
    return CustomerCreate.model_validate(
        {"external_id": external_id, "name": f"Customer {external_id}", "currency": "USD", **fields}
    )


async def create(pool: Pool, external_id: str, tenant: str = "ten_1", **fields: Any) -> Customer:
    async with transaction(pool) as conn:
        return await service.create_customer(
            conn, OUTBOX, tenant, request(external_id, **fields), now=NOW
        )


async def update(pool: Pool, customer_id: str, tenant: str = "ten_1", **fields: Any) -> Customer:
    async with transaction(pool) as conn:
        return await service.update_customer(
            conn, OUTBOX, tenant, customer_id, CustomerUpdate.model_validate(fields), now=LATER
        )


async def outbox_rows(pool: Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT topic, key FROM outbox ORDER BY seq")
    return [(row["topic"], row["key"]) for row in rows]


async def last_updated_event(pool: Pool) -> CloudEvent[Any]:
    payload = await pool.fetchval(
        "SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq DESC LIMIT 1",
        CUSTOMER_UPDATED.name,
    )
    return CUSTOMER_UPDATED.parse(bytes(payload))


async def counts(pool: Pool) -> tuple[int, int]:
    customers = await pool.fetchval("SELECT count(*) FROM customers")
    events = await pool.fetchval("SELECT count(*) FROM outbox")
    return customers, events


FULL: dict[str, Any] = {
    "email": "billing@acme.test",
    "timezone": "Europe/Paris",
    "billing_address": {
        "line1": "1 Rue de Rivoli",
        "line2": "Bât. B",
        "city": "Paris",
        "state": "Île-de-France",
        "postal_code": "75001",
        "country": "fr",
    },
    "tax_ids": [{"type": "eu_vat", "value": "FR 12345678901"}],
    "invoice_grace_period_days": 7,
    "metadata": {"plan": "gold"},
}


class TestCreateCustomer:
    async def test_stores_the_customer_and_its_event_together(self, customers_pool: Pool) -> None:
        async with transaction(customers_pool) as conn:
            customer = await service.create_customer(conn, OUTBOX, "ten_1", request("a"), now=NOW)
        assert customer.id.startswith("cus_")
        assert customer.created_at == NOW
        assert customer.updated_at == NOW
        rows = await customers_pool.fetch("SELECT topic, key, payload FROM outbox")
        assert [(r["topic"], r["key"]) for r in rows] == [(CUSTOMER_CREATED.name, customer.id)]
        event = CUSTOMER_CREATED.parse(bytes(rows[0]["payload"]))
        assert event.data.customer_id == customer.id
        assert event.data.currency.code == "USD"
        assert event.tenantid == "ten_1"

    async def test_every_field_is_stored_and_carried_by_the_event(
        self, customers_pool: Pool
    ) -> None:
        customer = await create(customers_pool, "a", **FULL)
        assert customer.billing_address == BillingAddress(
            line1="1 Rue de Rivoli",
            line2="Bât. B",
            city="Paris",
            state="Île-de-France",
            postal_code="75001",
            country="FR",
        )
        assert customer.tax_ids == [TaxId(type="eu_vat", value="FR12345678901")]
        assert customer.invoice_grace_period_days == 7
        async with transaction(customers_pool) as conn:
            assert await service.get_customer(conn, "ten_1", customer.id) == customer
        payload = await customers_pool.fetchval("SELECT payload FROM outbox")
        event = CUSTOMER_CREATED.parse(bytes(payload))
        # The audit log compares the event's data with the API's customer field by field.
        expected = customer.model_dump(mode="json", exclude={"object", "id"})
        assert event.data.model_dump(mode="json") == {**expected, "customer_id": customer.id}

    async def test_a_taken_external_id_is_a_conflict_and_changes_nothing(
        self, customers_pool: Pool
    ) -> None:
        await create(customers_pool, "a")
        with pytest.raises(service.ExternalIdTaken, match="'a' is already used"):
            await create(customers_pool, "a")
        assert await counts(customers_pool) == (1, 1)

    async def test_external_ids_are_unique_per_tenant_only(self, customers_pool: Pool) -> None:
        await create(customers_pool, "a", tenant="ten_1")
        await create(customers_pool, "a", tenant="ten_2")
        assert await customers_pool.fetchval("SELECT count(*) FROM customers") == 2

    async def test_a_child_billed_to_its_parent(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "parent")
        child = await create(customers_pool, "child", parent_id=parent.id, bill_to_parent=True)
        assert child.parent_id == parent.id
        assert child.bill_to_parent
        payload = await customers_pool.fetchval(
            "SELECT payload FROM outbox WHERE key = $1", child.id
        )
        event = CUSTOMER_CREATED.parse(bytes(payload))
        assert event.data.parent_id == parent.id
        assert event.data.bill_to_parent is True


class TestCreateRefusals:
    async def refused(
        self, pool: Pool, error: type[BillingError], tenant: str = "ten_1", **fields: Any
    ) -> None:
        before = await counts(pool)
        with pytest.raises(error):
            await create(pool, "refused", tenant=tenant, **fields)
        assert await counts(pool) == before

    async def test_unknown_parent(self, customers_pool: Pool) -> None:
        await self.refused(customers_pool, domain.ParentNotFound, parent_id=CustomerId.new())

    async def test_parent_of_another_tenant_does_not_exist(self, customers_pool: Pool) -> None:
        other = await create(customers_pool, "other", tenant="ten_2")
        await self.refused(customers_pool, domain.ParentNotFound, parent_id=other.id)

    async def test_parent_in_another_currency(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "eur", currency="EUR")
        await self.refused(customers_pool, domain.ParentCurrencyMismatch, parent_id=parent.id)

    async def test_parent_that_is_a_child(self, customers_pool: Pool) -> None:
        root = await create(customers_pool, "root")
        child = await create(customers_pool, "child", parent_id=root.id)
        await self.refused(customers_pool, domain.ParentIsChild, parent_id=child.id)

    async def test_bill_to_parent_without_parent(self, customers_pool: Pool) -> None:
        await self.refused(customers_pool, domain.BillToParentWithoutParent, bill_to_parent=True)


class TestUpdateCustomer:
    async def test_changes_the_named_fields_and_publishes_the_whole_customer(
        self, customers_pool: Pool
    ) -> None:
        created = await create(customers_pool, "a", email="old@acme.test")
        updated = await update(
            customers_pool,
            created.id,
            name="Acme Inc",
            email=None,
            billing_address=FULL["billing_address"],
            tax_ids=[{"type": "us_ein", "value": "12-3456789"}],
            invoice_grace_period_days=3,
            timezone="America/New_York",
            metadata={"k": "v"},
        )
        assert updated.name == "Acme Inc"
        assert updated.email is None
        assert updated.billing_address is not None
        assert updated.billing_address.country == "FR"
        assert updated.tax_ids == [TaxId(type="us_ein", value="12-3456789")]
        assert updated.invoice_grace_period_days == 3
        assert updated.timezone == "America/New_York"
        assert updated.metadata == {"k": "v"}
        assert updated.created_at == NOW
        assert updated.updated_at == LATER
        assert (updated.external_id, updated.currency) == (created.external_id, created.currency)
        async with transaction(customers_pool) as conn:
            assert await service.get_customer(conn, "ten_1", created.id) == updated

        assert await outbox_rows(customers_pool) == [
            (CUSTOMER_CREATED.name, created.id),
            (CUSTOMER_UPDATED.name, created.id),
        ]
        event = await last_updated_event(customers_pool)
        assert event.subject == created.id
        assert event.tenantid == "ten_1"
        assert event.data.changed_fields == [
            "billing_address",
            "email",
            "invoice_grace_period_days",
            "metadata",
            "name",
            "tax_ids",
            "timezone",
        ]
        whole = {**updated.model_dump(mode="json", exclude={"object", "id"})}
        assert event.data.model_dump(mode="json") == {
            **whole,
            "customer_id": created.id,
            "changed_fields": event.data.changed_fields,
        }

    async def test_a_change_to_the_same_values_writes_nothing(self, customers_pool: Pool) -> None:
        created = await create(customers_pool, "a", **FULL)
        same = await update(
            customers_pool,
            created.id,
            name=created.name,
            tax_ids=[{"type": "eu_vat", "value": "fr12345678901"}],  # normalizes to the same
        )
        assert same == created
        assert same.updated_at == NOW
        assert await outbox_rows(customers_pool) == [(CUSTOMER_CREATED.name, created.id)]

    async def test_only_changed_fields_are_listed(self, customers_pool: Pool) -> None:
        created = await create(customers_pool, "a")
        await update(customers_pool, created.id, name="B", timezone="UTC")  # timezone unchanged
        assert (await last_updated_event(customers_pool)).data.changed_fields == ["name"]

    async def test_external_id_may_change_to_a_free_one(self, customers_pool: Pool) -> None:
        created = await create(customers_pool, "a")
        updated = await update(customers_pool, created.id, external_id="b")
        assert updated.external_id == "b"
        async with transaction(customers_pool) as conn:
            page = await service.list_customers(conn, "ten_1", CustomerListQuery(external_id="b"))
        assert [c.id for c in page.data] == [created.id]
        assert (await last_updated_event(customers_pool)).data.changed_fields == ["external_id"]

    async def test_external_id_taken_is_a_conflict_and_changes_nothing(
        self, customers_pool: Pool
    ) -> None:
        a = await create(customers_pool, "a")
        await create(customers_pool, "b")
        with pytest.raises(service.ExternalIdTaken, match="'b' is already used"):
            await update(customers_pool, a.id, external_id="b", name="renamed")
        async with transaction(customers_pool) as conn:
            assert await service.get_customer(conn, "ten_1", a.id) == a
        assert await counts(customers_pool) == (2, 2)

    async def test_an_unknown_or_foreign_customer_is_not_found(self, customers_pool: Pool) -> None:
        other = await create(customers_pool, "a", tenant="ten_2")
        for customer_id in (CustomerId.new(), other.id):
            with pytest.raises(service.CustomerNotFound):
                await update(customers_pool, customer_id, name="x")
        assert await counts(customers_pool) == (1, 1)


class TestUpdateHierarchy:
    async def test_attach_bill_to_parent_then_detach(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "parent")
        child = await create(customers_pool, "child")
        attached = await update(customers_pool, child.id, parent_id=parent.id, bill_to_parent=True)
        assert (attached.parent_id, attached.bill_to_parent) == (parent.id, True)
        assert (await last_updated_event(customers_pool)).data.changed_fields == [
            "bill_to_parent",
            "parent_id",
        ]
        billed_alone = await update(customers_pool, child.id, bill_to_parent=False)
        assert (billed_alone.parent_id, billed_alone.bill_to_parent) == (parent.id, False)
        again = await update(customers_pool, child.id, bill_to_parent=True)
        assert again.bill_to_parent
        detached = await update(customers_pool, child.id, parent_id=None, bill_to_parent=False)
        assert (detached.parent_id, detached.bill_to_parent) == (None, False)
        event = await last_updated_event(customers_pool)
        assert event.data.parent_id is None
        assert event.data.changed_fields == ["bill_to_parent", "parent_id"]

    async def refused(
        self, pool: Pool, customer_id: str, error: type[BillingError], **fields: Any
    ) -> None:
        async with transaction(pool) as conn:
            before = await service.get_customer(conn, "ten_1", customer_id)
        events = await counts(pool)
        with pytest.raises(error):
            await update(pool, customer_id, **fields)
        async with transaction(pool) as conn:
            assert await service.get_customer(conn, "ten_1", customer_id) == before
        assert await counts(pool) == events

    async def test_own_parent_is_a_cycle(self, customers_pool: Pool) -> None:
        a = await create(customers_pool, "a")
        await self.refused(customers_pool, a.id, domain.HierarchyCycle, parent_id=a.id)

    async def test_a_parent_under_its_own_child_is_a_cycle(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "parent")
        child = await create(customers_pool, "child", parent_id=parent.id)
        await self.refused(customers_pool, parent.id, domain.HierarchyCycle, parent_id=child.id)

    async def test_a_customer_with_children_cannot_become_a_child(
        self, customers_pool: Pool
    ) -> None:
        parent = await create(customers_pool, "parent")
        await create(customers_pool, "child", parent_id=parent.id)
        other = await create(customers_pool, "other")
        await self.refused(
            customers_pool, parent.id, domain.CustomerHasChildren, parent_id=other.id
        )

    async def test_a_child_cannot_be_a_parent(self, customers_pool: Pool) -> None:
        root = await create(customers_pool, "root")
        child = await create(customers_pool, "child", parent_id=root.id)
        other = await create(customers_pool, "other")
        await self.refused(customers_pool, other.id, domain.ParentIsChild, parent_id=child.id)

    async def test_unknown_parent(self, customers_pool: Pool) -> None:
        a = await create(customers_pool, "a")
        await self.refused(customers_pool, a.id, domain.ParentNotFound, parent_id=CustomerId.new())

    async def test_parent_in_another_currency(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "eur", currency="EUR")
        a = await create(customers_pool, "a")
        await self.refused(customers_pool, a.id, domain.ParentCurrencyMismatch, parent_id=parent.id)

    async def test_bill_to_parent_without_parent(self, customers_pool: Pool) -> None:
        a = await create(customers_pool, "a")
        await self.refused(
            customers_pool, a.id, domain.BillToParentWithoutParent, bill_to_parent=True
        )

    async def test_detaching_a_child_billed_to_its_parent_must_say_so(
        self, customers_pool: Pool
    ) -> None:
        parent = await create(customers_pool, "parent")
        child = await create(customers_pool, "child", parent_id=parent.id, bill_to_parent=True)
        await self.refused(
            customers_pool, child.id, domain.BillToParentWithoutParent, parent_id=None
        )


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

    async def test_children_by_filter_and_by_route(self, customers_pool: Pool) -> None:
        parent = await create(customers_pool, "parent")
        other = await create(customers_pool, "other")
        children = [
            await create(customers_pool, f"child-{i}", parent_id=parent.id) for i in range(3)
        ]
        await create(customers_pool, "nephew", parent_id=other.id)
        async with transaction(customers_pool) as conn:
            filtered = await service.list_customers(
                conn, "ten_1", CustomerListQuery(parent_id=parent.id)
            )
            assert [c.id for c in filtered.data] == [c.id for c in children]
            first = await service.list_children(
                conn, "ten_1", parent.id, CustomerChildrenQuery(limit=2)
            )
            assert [c.id for c in first.data] == [c.id for c in children[:2]]
            assert first.has_more
            rest = await service.list_children(
                conn,
                "ten_1",
                parent.id,
                CustomerChildrenQuery(starting_after=first.next_cursor),
            )
            assert [c.id for c in rest.data] == [children[2].id]
            assert not rest.has_more
            childless = await service.list_children(
                conn, "ten_1", children[0].id, CustomerChildrenQuery()
            )
            assert childless.data == []
            with pytest.raises(service.CustomerNotFound):
                await service.list_children(conn, "ten_2", parent.id, CustomerChildrenQuery())

    async def test_rows_from_before_the_migration_read_with_defaults(
        self, customers_pool: Pool
    ) -> None:
        """A row as 0001 wrote it: no updated_at; the new columns take their defaults."""
        customer_id = CustomerId.new()
        await customers_pool.execute(
            "INSERT INTO customers (id, tenant_id, external_id, name, email, currency, timezone,"
            " metadata, created_at) VALUES ($1, 'ten_1', 'old', 'Old', NULL, 'USD', 'UTC',"
            " '{}', $2)",
            customer_id,
            NOW,
        )
        async with transaction(customers_pool) as conn:
            old = await service.get_customer(conn, "ten_1", customer_id)
        assert old.updated_at == NOW
        assert (old.billing_address, old.tax_ids, old.parent_id) == (None, [], None)
        assert (old.invoice_grace_period_days, old.bill_to_parent) == (0, False)
        assert old.currency == Currency.of("USD")


class TestConcurrentHierarchyChanges:
    async def test_two_changes_cannot_together_build_two_levels(self, customers_pool: Pool) -> None:
        """B joins A while A joins C: whichever commits second sees the first and is refused."""
        a = await create(customers_pool, "a")
        b = await create(customers_pool, "b")
        c = await create(customers_pool, "c")
        async with transaction(customers_pool) as conn:
            await service.update_customer(
                conn, OUTBOX, "ten_1", b.id, CustomerUpdate(parent_id=a.id), now=LATER
            )
            second = asyncio.create_task(update(customers_pool, a.id, parent_id=c.id))
            await asyncio.sleep(0.3)
            assert not second.done(), "the second change must wait for the first's locks"
        with pytest.raises(domain.CustomerHasChildren):
            await second
        async with transaction(customers_pool) as conn:
            assert (await service.get_customer(conn, "ten_1", a.id)).parent_id is None
            assert (await service.get_customer(conn, "ten_1", b.id)).parent_id == a.id
