"""The usage consumer on real servers (PostgreSQL, chdb, Valkey): exact totals through
repeats, redeliveries, crashes between its steps, unknown customers and bad events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from billing_common.consumer import ConsumedEvent
from billing_common.currency import Currency
from billing_common.cycle import PERIOD_CLOSING, PeriodClosing, saga_id
from billing_common.events import CloudEvent, Topic, new_event
from billing_common.ids import CustomerId, uuid7
from billing_common.runtime import ServiceContext
from billing_common.usage_events import (
    USAGE_EVENTS_RECEIVED,
    UsageEvent,
    UsageEventsReceived,
    encode_usage_events,
)
from billing_customers.events import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CustomerCreated,
    CustomerUpdated,
)
from billing_metering import cycle, projections, repository
from billing_metering.accumulators import UsageAccumulators
from billing_metering.events import (
    PARKED_EVENTS_RELEASED,
    PERIOD_USAGE_COMPUTED,
    PLAN_PUBLISHED_METERS,
    USAGE_RECORDED,
    PlanMeters,
)
from billing_metering.meters import MeterDefinition
from billing_metering.store import UsageStore
from billing_metering.usage import UsageConsumer

pytestmark = pytest.mark.service

GROUP = "billing-metering-usage"
NEW_CUSTOMER = str(CustomerId.new())
KNOWN_ID = str(CustomerId.new())
# In a future month: the accumulators keep a period until 70 days after it ends (real time).
T0 = datetime(2030, 3, 2, 9, 0, tzinfo=UTC)
MARCH = (datetime(2030, 3, 1, tzinfo=UTC), datetime(2030, 4, 1, tzinfo=UTC))

CALLS = MeterDefinition(
    key="calls", name="Calls", event_types=("api",), aggregation="count", group_by=("region",)
)
BYTES = MeterDefinition(
    key="bytes", name="Bytes", event_types=("api",), aggregation="sum", value_property="bytes"
)


def event(event_id: str, customer: str, minutes: int = 0, **properties: Any) -> UsageEvent:
    return UsageEvent(
        id=event_id,
        customer=customer,
        type="api",
        timestamp=T0 + timedelta(minutes=minutes),
        properties={"region": "eu", "bytes": Decimal("1.5"), **properties},
    )


class Feed:
    """Kafka messages as the batch consumer hands them over, with growing offsets."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.offsets: dict[tuple[str, int], int] = {}

    def message(
        self,
        events: Sequence[UsageEvent],
        *,
        partition: int = 0,
        topic: Topic[UsageEventsReceived] = USAGE_EVENTS_RECEIVED,
    ) -> ConsumedEvent[UsageEventsReceived]:
        offset = self.offsets.get((topic.name, partition), -1) + 1
        self.offsets[(topic.name, partition)] = offset
        payload = encode_usage_events(
            topic,
            events,
            event_id=uuid7(),
            source="gateway",
            subject=events[0].customer,
            tenant_id=self.tenant,
            time=T0,
            received_at=T0,
        )
        return ConsumedEvent(topic.name, partition, offset, None, payload, topic.parse(payload))


@pytest.fixture
def tenant() -> str:
    return f"ten_{uuid7().hex[-12:]}"


@pytest.fixture
async def consumer(
    context: ServiceContext, chdb_store: UsageStore, redis: Redis, key_prefix: str, tenant: str
) -> UsageConsumer:
    accumulators = UsageAccumulators(redis, consumer=GROUP, key_prefix=key_prefix)
    async with context.unit_of_work() as conn:
        for meter in (CALLS, BYTES):
            await repository.insert_meter(conn, tenant, meter, T0)
        await repository.upsert_customer(conn, tenant, KNOWN_ID, "acme")
    return UsageConsumer(context, chdb_store, accumulators, group=GROUP)


def totals(store: UsageStore, tenant: str, customer: str = KNOWN_ID) -> dict[str, Decimal]:
    aggregates = store.period_aggregates(tenant, customer, [CALLS, BYTES], *MARCH)
    result: dict[str, Decimal] = {}
    for (meter, _), value in aggregates.items():
        result[meter] = result.get(meter, Decimal(0)) + value
    return result


async def accumulated(consumer: UsageConsumer, tenant: str, meter: MeterDefinition) -> Decimal:
    groups = await consumer.accumulators.read(tenant, meter, KNOWN_ID, MARCH[0])
    assert groups is not None
    return sum((value for _, value in groups), Decimal(0))


async def usage_recorded(context: ServiceContext) -> list[CloudEvent[Any]]:
    rows = await context.pool.fetch(
        "SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", USAGE_RECORDED.name
    )
    return [USAGE_RECORDED.parse(bytes(row["payload"])) for row in rows]


class TestUsageConsumer:
    async def test_a_batch_lands_in_the_store_the_accumulators_and_usage_recorded(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        batch = [
            feed.message([event("e1", "acme"), event("e2", "acme", 1)]),
            feed.message([event("e3", KNOWN_ID, 2, bytes="0.000000000001")], partition=1),
        ]
        assert await consumer.handle(batch) == []
        expected = {"calls": Decimal(3), "bytes": Decimal("3.000000000001")}
        assert totals(consumer.store, tenant) == expected
        assert await accumulated(consumer, tenant, CALLS) == 3
        assert await accumulated(consumer, tenant, BYTES) == Decimal("3.000000000001")
        [recorded] = await usage_recorded(context)
        assert recorded.subject == KNOWN_ID
        by_meter = {usage.meter_key: usage for usage in recorded.data.usage}
        assert by_meter["calls"].events == 3
        assert by_meter["calls"].value_delta == 3
        assert by_meter["calls"].period_value == 3
        assert by_meter["bytes"].value_delta == Decimal("3.000000000001")
        assert by_meter["bytes"].first_event_at == T0
        assert by_meter["bytes"].last_event_at == T0 + timedelta(minutes=2)

    async def test_a_redelivered_batch_changes_nothing(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        batch = [feed.message([event("e1", "acme"), event("e2", "acme", 1)])]
        await consumer.handle(batch)
        await consumer.handle(batch)
        assert totals(consumer.store, tenant) == {"calls": 2, "bytes": 3}
        assert await accumulated(consumer, tenant, CALLS) == 2
        assert len(await usage_recorded(context)) == 1

    async def test_a_crash_after_the_store_insert_finishes_the_other_effects_on_redelivery(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        batch = [feed.message([event("e1", "acme"), event("e2", "acme", 1)])]
        # The first attempt wrote the store and died before Redis and PostgreSQL.
        real_apply = consumer.accumulators.apply

        async def die(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("killed")

        consumer.accumulators.apply = die  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await consumer.handle(batch)
        consumer.accumulators.apply = real_apply  # type: ignore[method-assign]
        assert totals(consumer.store, tenant) == {"calls": 2, "bytes": 3}
        assert await usage_recorded(context) == []
        await consumer.handle(batch)
        assert totals(consumer.store, tenant) == {"calls": 2, "bytes": 3}
        assert await accumulated(consumer, tenant, CALLS) == 2
        [recorded] = await usage_recorded(context)
        assert {u.meter_key: u.events for u in recorded.data.usage} == {"calls": 2, "bytes": 2}

    async def test_a_client_resend_in_a_later_message_counts_once(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        await consumer.handle([feed.message([event("e1", "acme")])])
        await consumer.handle([feed.message([event("e1", KNOWN_ID), event("e2", "acme")])])
        assert totals(consumer.store, tenant) == {"calls": 2, "bytes": 3}
        assert await accumulated(consumer, tenant, CALLS) == 2
        second = (await usage_recorded(context))[1]
        assert {u.meter_key: u.events for u in second.data.usage} == {"calls": 1, "bytes": 1}

    async def test_an_event_no_meter_can_read_is_dead_lettered_alone(
        self, consumer: UsageConsumer, tenant: str
    ) -> None:
        feed = Feed(tenant)
        message = feed.message([event("good", "acme"), event("bad", "acme", 1, bytes="many")])
        [dead] = await consumer.handle([message])
        assert dead.source is message
        assert dead.reason.startswith("invalid_event_value: property 'bytes' is 'many'")
        narrowed = USAGE_EVENTS_RECEIVED.parse(dead.payload)
        assert [e.id for e in narrowed.data.events] == ["bad"]
        assert narrowed.data.events[0].properties["bytes"] == "many"
        assert totals(consumer.store, tenant) == {"calls": 1, "bytes": Decimal("1.5")}

    async def test_a_meter_created_after_start_counts_the_next_batch(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        await consumer.handle([feed.message([event("e1", "acme")])])
        peak = MeterDefinition(
            key="peak", name="Peak", event_types=("api",), aggregation="max", value_property="bytes"
        )
        async with context.unit_of_work() as conn:
            await repository.insert_meter(conn, tenant, peak, T0)
        await consumer.handle([feed.message([event("e2", "acme", bytes=7)])])
        aggregates = consumer.store.period_aggregates(tenant, KNOWN_ID, [peak], *MARCH)
        assert aggregates == {("peak", ()): Decimal(7)}


class TestUnknownCustomers:
    async def test_events_wait_for_their_customer_and_are_then_counted_once(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        early = feed.message([event("n1", "newco"), event("n2", "newco", 1)])
        await consumer.handle([early])
        await consumer.handle([early])  # redelivered: parked once
        async with context.pool.acquire() as conn:
            assert await repository.count_parked(conn, tenant) == 2
        assert totals(consumer.store, tenant, "cus_new") == {}

        created = new_event(
            CUSTOMER_CREATED,
            CustomerCreated.model_validate(
                {
                    "customer_id": NEW_CUSTOMER,
                    "external_id": "newco",
                    "name": "NewCo",
                    "email": None,
                    "currency": "USD",
                    "timezone": "UTC",
                    "metadata": {},
                    "created_at": T0,
                }
            ),
            event_id=uuid7(),
            source="customers",
            subject=NEW_CUSTOMER,
            tenant_id=tenant,
            time=T0,
        )
        async with context.unit_of_work() as conn:
            await projections.customer_known(context, conn, created)
        async with context.pool.acquire() as conn:
            assert await repository.count_parked(conn, tenant) == 0
        [row] = await context.pool.fetch(
            "SELECT key, payload FROM outbox WHERE topic = $1", PARKED_EVENTS_RELEASED.name
        )
        customer_id = str(created.data.customer_id)
        assert row["key"] == customer_id
        released = PARKED_EVENTS_RELEASED.parse(bytes(row["payload"]))
        assert [(e.id, e.customer) for e in released.data.events] == [
            ("n1", customer_id),
            ("n2", customer_id),
        ]
        assert released.data.events[0].properties["bytes"] == Decimal("1.5")
        again = ConsumedEvent(
            PARKED_EVENTS_RELEASED.name, 0, 0, None, bytes(row["payload"]), released
        )
        await consumer.handle([again])
        assert totals(consumer.store, tenant, customer_id) == {"calls": 2, "bytes": 3}

    async def test_the_sweep_releases_events_parked_after_their_customer_arrived(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        async with context.unit_of_work() as conn:
            await repository.park_events(
                conn,
                [
                    (
                        tenant,
                        "acme",
                        "late",
                        b'{"id":"late","customer":"acme","type":"api",'
                        b'"timestamp":"2030-03-02T09:00:00+00:00","properties":{"bytes":2.50}}',
                    )
                ],
                T0,
            )
        assert await projections.release_known_customers(context) == 1
        [row] = await context.pool.fetch(
            "SELECT payload FROM outbox WHERE topic = $1", PARKED_EVENTS_RELEASED.name
        )
        released = PARKED_EVENTS_RELEASED.parse(bytes(row["payload"]))
        assert released.data.events[0].customer == KNOWN_ID
        assert str(released.data.events[0].properties["bytes"]) == "2.50"
        assert await projections.release_known_customers(context) == 0

    async def test_a_new_external_id_releases_the_events_sent_under_it(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        await consumer.handle([feed.message([event("r1", "acme-renamed")])])
        renamed = new_event(
            CUSTOMER_UPDATED,
            CustomerUpdated.model_validate(
                {
                    "customer_id": KNOWN_ID,
                    "external_id": "acme-renamed",
                    "name": "Acme",
                    "email": None,
                    "currency": "USD",
                    "timezone": "UTC",
                    "billing_address": None,
                    "tax_ids": [],
                    "invoice_grace_period_days": 0,
                    "parent_id": None,
                    "bill_to_parent": False,
                    "metadata": {},
                    "created_at": T0,
                    "updated_at": T0,
                    "changed_fields": ["external_id"],
                }
            ),
            event_id=uuid7(),
            source="customers",
            subject=KNOWN_ID,
            tenant_id=tenant,
            time=T0,
        )
        async with context.unit_of_work() as conn:
            await projections.customer_known(context, conn, renamed)
            resolved = await repository.resolve_customers(conn, tenant, ["acme-renamed"])
        assert resolved == {"acme-renamed": KNOWN_ID}
        [row] = await context.pool.fetch(
            "SELECT payload FROM outbox WHERE topic = $1", PARKED_EVENTS_RELEASED.name
        )
        released = PARKED_EVENTS_RELEASED.parse(bytes(row["payload"]))
        assert [(e.id, e.customer) for e in released.data.events] == [("r1", KNOWN_ID)]


class TestPeriodClosing:
    async def test_the_closing_period_usage_is_published_per_meter_and_group(
        self, consumer: UsageConsumer, context: ServiceContext, tenant: str
    ) -> None:
        feed = Feed(tenant)
        await consumer.handle(
            [
                feed.message(
                    [
                        event("p1", "acme"),
                        event("p2", "acme", 1, region="us"),
                        event("p3", "acme", 2, bytes="0.25"),
                        event("late", "acme", 60 * 24 * 40),  # after the period
                    ]
                )
            ]
        )
        closing = new_event(
            PERIOD_CLOSING,
            PeriodClosing(
                saga_id=saga_id("sub_x", MARCH[0]),
                subscription_id="sub_x",
                customer_id=KNOWN_ID,
                plan_id="plan_x",
                plan_version=3,
                period_start=MARCH[0],
                period_end=MARCH[1],
                subscription_revision=2,
                currency=Currency.of("USD"),
                closed_at=MARCH[1],
            ),
            event_id=uuid7(),
            source="engine",
            subject=KNOWN_ID,
            tenant_id=tenant,
            time=MARCH[1],
        )
        # A plan prices `bytes` by percentage: its usage carries each event's value.
        plan = PLAN_PUBLISHED_METERS.parse(
            new_event(
                PLAN_PUBLISHED_METERS,
                PlanMeters.model_validate(
                    {
                        "plan_id": "plan_x",
                        "meter_keys": ["bytes", "calls"],
                        "charges": [
                            {"meter_key": "bytes", "price": {"model": "percentage", "rate": "1"}},
                            {"meter_key": "calls", "price": {"model": "per_unit"}},
                        ],
                    }
                ),
                event_id=uuid7(),
                source="pricing",
                subject="plan_x",
                tenant_id=tenant,
                time=MARCH[0],
            ).to_bytes()
        )
        async with context.unit_of_work() as conn:
            await projections.plan_published(conn, plan)
            await cycle.period_closing(context, consumer.store, conn, closing)
        [row] = await context.pool.fetch(
            "SELECT payload FROM outbox WHERE topic = $1", PERIOD_USAGE_COMPUTED.name
        )
        computed = PERIOD_USAGE_COMPUTED.parse(bytes(row["payload"])).data
        assert (computed.saga_id, computed.plan_version) == (closing.data.saga_id, 3)
        assert [(u.meter_key, u.group, u.quantity, u.transactions) for u in computed.usage] == [
            ("bytes", {}, Decimal("3.25"), [Decimal("1.5"), Decimal("1.5"), Decimal("0.25")]),
            ("calls", {"region": "eu"}, Decimal(2), []),
            ("calls", {"region": "us"}, Decimal(1), []),
        ]
