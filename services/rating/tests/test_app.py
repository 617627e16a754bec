from __future__ import annotations

import pytest
from faststream.kafka import KafkaBroker

from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.db import Pool
from billing_common.ids import CustomerId, PlanId
from billing_pricing.events import PLAN_PUBLISHED, PRICE_OVERRIDE_SET
from billing_rating import events
from billing_rating.app import definition

from .conftest import (
    CALLS,
    DatabaseOnlyRuntime,
    override_event,
    override_set,
    per_unit,
    plan_event,
    plan_published,
)

pytestmark = pytest.mark.service


def test_the_service_declares_its_topics_and_migrations() -> None:
    assert definition.has_migrations
    assert [topic.name for topic in definition.produces] == ["billing.rating.period_rated"]
    assert [topic.name for topic in events.CONSUMES] == [
        "billing.pricing.plan_published",
        "billing.pricing.price_override_set",
        "billing.metering.period_usage_computed",
    ]


async def test_setup_projects_the_catalog_through_the_inbox_once(rating_pool: Pool) -> None:
    runtime = DatabaseOnlyRuntime(rating_pool)
    consumer = InboxConsumer(
        group=definition.consumer_group,
        pool=rating_pool,
        broker=KafkaBroker(),
        policy=ConsumerPolicy(max_attempts=1),
    )
    runtime._consumer = consumer
    await definition.setup(runtime)
    assert consumer.topics == [topic.name for topic in events.CONSUMES]

    plan_id, customer = PlanId.new(), CustomerId.new()
    published = plan_event(plan_published(plan_id, 1, CALLS))
    override = override_event(override_set(plan_id, customer, "calls", per_unit("0.01")))
    for offset in (0, 1):  # each delivered twice
        await consumer.process(PLAN_PUBLISHED.name, 0, offset, b"k", published.to_bytes())
        await consumer.process(PRICE_OVERRIDE_SET.name, 0, offset, b"k", override.to_bytes())
    assert consumer.halted_reason is None
    versions = await rating_pool.fetch("SELECT plan_id, version FROM plan_versions")
    assert [tuple(row) for row in versions] == [(plan_id, 1)]
    overrides = await rating_pool.fetch("SELECT customer_id, charge_key FROM price_overrides")
    assert [tuple(row) for row in overrides] == [(customer, "calls")]
    assert await rating_pool.fetchval("SELECT count(*) FROM inbox") == 2
