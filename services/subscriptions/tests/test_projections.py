from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from faststream.kafka import KafkaBroker

from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.currency import Currency
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.ids import CustomerId, PlanId
from billing_common.money import Money
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED, CustomerUpdated
from billing_pricing.events import PLAN_PUBLISHED
from billing_pricing.schemas import Timing
from billing_subscriptions import projections, repository
from billing_subscriptions.app import definition
from billing_subscriptions.events import CONSUMES
from billing_subscriptions.periods import Interval

from .conftest import NOW, TENANT, Clock, DatabaseOnlyRuntime, customer_created, plan_published

pytestmark = pytest.mark.service


def customer_updated(
    customer_id: CustomerId, *, timezone: str, minutes_later: int
) -> CustomerUpdated:
    return CustomerUpdated(
        customer_id=customer_id,
        external_id="ext",
        name="Customer",
        email=None,
        currency=Currency.of("USD"),
        timezone=timezone,
        billing_address=None,
        tax_ids=[],
        invoice_grace_period_days=0,
        parent_id=None,
        bill_to_parent=False,
        metadata={},
        created_at=NOW,
        updated_at=NOW + timedelta(minutes=minutes_later),
        changed_fields=["timezone"],
    )


def updated_event(
    customer_id: CustomerId, timezone: str, *, minutes_later: int
) -> CloudEvent[CustomerUpdated]:
    event = new_event(
        CUSTOMER_UPDATED,
        customer_updated(customer_id, timezone=timezone, minutes_later=minutes_later),
        event_id=uuid.uuid4(),
        source="customers",
        subject=customer_id,
        tenant_id=TENANT,
        time=NOW,
    )
    return CUSTOMER_UPDATED.parse(event.to_bytes())


class TestPlanPublished:
    async def test_keeps_what_a_subscription_needs_of_the_version(
        self, subscriptions_pool: Pool
    ) -> None:
        plan_id = PlanId.new()
        charges = [
            {
                "key": "calls",
                "meter_key": "api_calls",
                "price": {"model": "per_unit", "unit_price": {"amount": "5000", "currency": "USD"}},
            },
            {
                "key": "storage",
                "meter_key": "gb",
                "price": {"model": "flat_fee", "fee": {"amount": "7", "currency": "USD"}},
            },
        ]
        event = plan_published(
            plan_id,
            3,
            base_fee=99,
            interval="quarter",
            trial_days=14,
            timing="in_arrears",
            charges=charges,
        )
        async with transaction(subscriptions_pool) as conn:
            await projections.plan_published(conn, event)
            stored = await repository.get_plan_version(conn, TENANT, plan_id, 3)
        assert stored is not None
        assert stored.version == 3
        assert stored.interval is Interval.QUARTER
        assert stored.base_fee == Money.parse("99", "USD")
        assert stored.base_fee_timing is Timing.IN_ARREARS
        assert stored.trial_days == 14
        assert dict(stored.usage_prices) == {"calls": Money(5000, Currency.of("USD"))}
        assert stored.published_at == NOW

    async def test_a_version_without_base_fee_costs_nothing_per_period(
        self, subscriptions_pool: Pool
    ) -> None:
        plan_id = PlanId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.plan_published(conn, plan_published(plan_id, base_fee=None))
            stored = await repository.get_plan_version(conn, TENANT, plan_id, None)
        assert stored is not None
        assert stored.base_fee == Money.zero("USD")

    async def test_a_late_older_version_never_replaces_a_newer(
        self, subscriptions_pool: Pool
    ) -> None:
        plan_id = PlanId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.plan_published(conn, plan_published(plan_id, 2, base_fee=45))
            await projections.plan_published(conn, plan_published(plan_id, 1, base_fee=30))
            latest = await repository.get_plan_version(conn, TENANT, plan_id, None)
            first = await repository.get_plan_version(conn, TENANT, plan_id, 1)
        assert latest is not None
        assert (latest.version, latest.base_fee) == (2, Money.parse("45", "USD"))
        assert first is not None
        assert first.base_fee == Money.parse("30", "USD")

    async def test_a_republished_version_changes_nothing(self, subscriptions_pool: Pool) -> None:
        plan_id = PlanId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.plan_published(conn, plan_published(plan_id, 1, base_fee=30))
            await projections.plan_published(conn, plan_published(plan_id, 1, base_fee=999))
            stored = await repository.get_plan_version(conn, TENANT, plan_id, 1)
        assert stored is not None
        assert stored.base_fee == Money.parse("30", "USD")
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM plan_versions") == 1

    async def test_versions_are_per_tenant(self, subscriptions_pool: Pool) -> None:
        plan_id = PlanId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.plan_published(conn, plan_published(plan_id, tenant_id="ten_2"))
            assert await repository.get_plan_version(conn, TENANT, plan_id, None) is None
            assert await repository.get_plan_version(conn, "ten_2", plan_id, None) is not None


class TestCustomers:
    async def test_created_then_updated_then_a_stale_update(self, subscriptions_pool: Pool) -> None:
        customer_id = CustomerId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.customer_created(
                conn, customer_created(customer_id, timezone="Asia/Tokyo")
            )
            known = await repository.get_customer(conn, TENANT, customer_id)
            assert known == repository.KnownCustomer(customer_id, Currency.of("USD"), "Asia/Tokyo")
            await projections.customer_updated(
                conn, updated_event(customer_id, "Europe/Paris", minutes_later=10)
            )
            await projections.customer_updated(  # older than the one applied: ignored
                conn, updated_event(customer_id, "America/New_York", minutes_later=5)
            )
            known = await repository.get_customer(conn, TENANT, customer_id)
        assert known is not None
        assert known.timezone == "Europe/Paris"

    async def test_customers_are_per_tenant(self, subscriptions_pool: Pool) -> None:
        customer_id = CustomerId.new()
        async with transaction(subscriptions_pool) as conn:
            await projections.customer_created(conn, customer_created(customer_id))
            assert await repository.get_customer(conn, "ten_2", customer_id) is None


class TestConsumerWiring:
    async def test_setup_consumes_every_declared_topic_through_the_inbox_once(
        self, subscriptions_pool: Pool
    ) -> None:
        runtime = DatabaseOnlyRuntime(subscriptions_pool, Clock())
        consumer = InboxConsumer(
            group=definition.consumer_group,
            pool=subscriptions_pool,
            broker=KafkaBroker(),
            policy=ConsumerPolicy(max_attempts=1),
        )
        runtime._consumer = consumer
        await definition.setup(runtime)
        assert consumer.topics == [topic.name for topic in CONSUMES]

        plan_id, customer_id = PlanId.new(), CustomerId.new()
        plan_event = plan_published(plan_id, base_fee=30)
        customer_event = customer_created(customer_id, timezone="Europe/Paris")
        for offset in (0, 1):  # each event delivered twice
            await consumer.process(
                PLAN_PUBLISHED.name, 0, offset, plan_id.encode(), plan_event.to_bytes()
            )
            await consumer.process(
                CUSTOMER_CREATED.name, 0, offset, customer_id.encode(), customer_event.to_bytes()
            )
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM plan_versions") == 1
        row = await subscriptions_pool.fetchrow("SELECT timezone, currency FROM customers")
        assert row is not None
        assert (row["timezone"], row["currency"]) == ("Europe/Paris", "USD")
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM inbox") == 2

    def test_the_service_declares_its_topics_and_migrations(self) -> None:
        assert definition.has_migrations
        assert [topic.name for topic in definition.produces] == [
            "billing.subscriptions.subscription_created",
            "billing.subscriptions.subscription_updated",
            "billing.subscriptions.billing_effects_recorded",
        ]
        assert [topic.name for topic in CONSUMES] == [
            "billing.pricing.plan_published",
            "billing.pricing.coupon_created",
            "billing.customers.customer_created",
            "billing.customers.customer_updated",
            "billing.engine.period_closing",
            "billing.subscriptions.trial_end_requested",
            "billing.engine.test_clock_customer_attached",
            "billing.engine.test_clock_advanced",
        ]
