from __future__ import annotations

import uuid

import pytest
from faststream.kafka import KafkaBroker

from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.db import Pool
from billing_common.events import new_event
from billing_metering.events import METER_ARCHIVED, METER_CREATED, METER_UPDATED, MeterChanged
from billing_metering.meters import MeterDefinition
from billing_pricing.app import definition

from .conftest import NOW, TENANT, DatabaseOnlyRuntime

pytestmark = pytest.mark.service

SEATS = MeterDefinition(
    key="seats", name="Seats", event_types=("seat",), aggregation="sum", value_property="n"
)


def test_the_service_declares_its_topics_and_migrations() -> None:
    assert definition.has_migrations
    assert [topic.name for topic in definition.produces] == [
        "billing.pricing.product_created",
        "billing.pricing.plan_published",
        "billing.pricing.plan_migration_scheduled",
        "billing.pricing.price_override_set",
        "billing.pricing.coupon_created",
    ]


async def test_setup_projects_meters_through_the_inbox_once(pricing_pool: Pool) -> None:
    runtime = DatabaseOnlyRuntime(pricing_pool)
    consumer = InboxConsumer(
        group=definition.consumer_group,
        pool=pricing_pool,
        broker=KafkaBroker(),
        policy=ConsumerPolicy(max_attempts=1),
    )
    runtime._consumer = consumer
    await definition.setup(runtime)
    assert consumer.topics == [METER_CREATED.name, METER_UPDATED.name, METER_ARCHIVED.name]

    event = new_event(
        METER_CREATED,
        MeterChanged(meter=SEATS, version=1, changed_at=NOW),
        event_id=uuid.uuid4(),
        source="metering",
        subject="seats",
        tenant_id=TENANT,
        time=NOW,
    )
    for offset in (0, 1):  # a redelivery of the same event
        await consumer.process(METER_CREATED.name, 0, offset, b"seats", event.to_bytes())
    rows = await pricing_pool.fetch(
        "SELECT meter_key, version, archived FROM meters WHERE meter_key = 'seats'"
    )
    assert [tuple(row) for row in rows] == [("seats", 1, False)]
    assert await pricing_pool.fetchval("SELECT count(*) FROM inbox") == 1
