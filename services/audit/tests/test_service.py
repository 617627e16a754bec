from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from billing_audit import service
from billing_audit.schemas import AuditEventQuery
from billing_common.currency import Currency
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.ids import CustomerId, uuid7
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated

pytestmark = pytest.mark.service

NOW = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def audit_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_audit"))
        yield pool
    finally:
        await pool.close()


def customer_created(customer_id: str, tenant: str = "ten_1") -> CloudEvent[CustomerCreated]:
    data = CustomerCreated(
        customer_id=CustomerId(customer_id),
        external_id="x",
        name="X",
        email=None,
        currency=Currency.of("USD"),
        timezone="UTC",
        metadata={},
        created_at=NOW,
    )
    return new_event(
        CUSTOMER_CREATED,
        data,
        event_id=uuid7(),
        source="customers",
        subject=customer_id,
        tenant_id=tenant,
        time=NOW,
    )


async def test_entries_are_recorded_and_filtered_by_subject_and_tenant(audit_pool: Pool) -> None:
    a, b = CustomerId.new(), CustomerId.new()
    async with transaction(audit_pool) as conn:
        for event in (customer_created(a), customer_created(b), customer_created(a, "ten_2")):
            await service.record(conn, event, now=NOW)
        page = await service.list_entries(conn, "ten_1", AuditEventQuery(subject=a))
    assert [(e.subject, e.type) for e in page.data] == [(a, CUSTOMER_CREATED.name)]
    assert page.data[0].data["customer_id"] == a
    assert page.data[0].occurred_at == NOW


async def test_the_same_event_cannot_be_recorded_twice(audit_pool: Pool) -> None:
    event = customer_created(CustomerId.new())
    async with transaction(audit_pool) as conn:
        await service.record(conn, event, now=NOW)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with transaction(audit_pool) as conn:
            await service.record(conn, event, now=NOW)
