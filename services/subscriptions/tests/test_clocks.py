"""Customers on a test clock live on its time: the projections of the engine's clock events
and the commands that then happen at the clock's frozen time, not the real time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing_common.currency import Currency
from billing_common.cycle import (
    PERIOD_CLOSING,
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    PeriodClosing,
    TestClockAdvanced,
    TestClockCustomerAttached,
    saga_id,
)
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent, Topic, new_event
from billing_common.ids import CustomerId, PlanId, SubscriptionId, TestClockId
from billing_common.money import Money
from billing_subscriptions import cycle, projections, service
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BillingEffectsRecorded,
)
from billing_subscriptions.schemas import SubscriptionCreate

from .conftest import NOW, TENANT, Catalog, outbox_at

pytestmark = pytest.mark.service

#: The test clock's start: April 1st (30 days), while the real clock reads April 11, 10:00.
APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)
APRIL_16 = datetime(2026, 4, 16, tzinfo=UTC)
APRIL_21 = datetime(2026, 4, 21, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)


def _parsed(topic: Topic[Any], data: Any, subject: str) -> Any:
    event = new_event(
        topic,
        data,
        event_id=uuid.uuid4(),
        source="engine",
        subject=subject,
        tenant_id=TENANT,
        time=NOW,
    )
    return topic.parse(event.to_bytes())


def attached(
    clock_id: TestClockId, customer_id: CustomerId, frozen_time: datetime
) -> CloudEvent[TestClockCustomerAttached]:
    data = TestClockCustomerAttached(
        test_clock_id=clock_id, customer_id=customer_id, frozen_time=frozen_time, attached_at=NOW
    )
    event: CloudEvent[TestClockCustomerAttached] = _parsed(
        TEST_CLOCK_CUSTOMER_ATTACHED, data, customer_id
    )
    return event


def advanced(
    clock_id: TestClockId, previous: datetime, to: datetime
) -> CloudEvent[TestClockAdvanced]:
    data = TestClockAdvanced(
        test_clock_id=clock_id, previous_time=previous, frozen_time=to, advanced_at=NOW
    )
    event: CloudEvent[TestClockAdvanced] = _parsed(TEST_CLOCK_ADVANCED, data, clock_id)
    return event


async def attach(pool: Pool, clock_id: TestClockId, customer_id: CustomerId, at: datetime) -> None:
    async with transaction(pool) as conn:
        await projections.test_clock_customer_attached(conn, attached(clock_id, customer_id, at))


async def advance(pool: Pool, clock_id: TestClockId, previous: datetime, to: datetime) -> None:
    async with transaction(pool) as conn:
        await projections.test_clock_advanced(conn, advanced(clock_id, previous, to))


async def now_of(pool: Pool, customer_id: CustomerId) -> datetime:
    async with pool.acquire() as conn:
        return await service.customer_now(conn, TENANT, customer_id, now=NOW)


async def outbox(pool: Pool, topic: Topic[Any]) -> list[CloudEvent[Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic.name)
    return [topic.parse(bytes(row["payload"])) for row in rows]


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def effects(event: CloudEvent[BillingEffectsRecorded]) -> list[tuple[str, PlanId, Money]]:
    return [(e.reason.value, e.plan_id, e.amount.to_money()) for e in event.data.effects]


class TestClockProjections:
    async def test_an_attached_customer_lives_on_its_clocks_time_others_on_the_real_one(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        clock = TestClockId.new()
        await attach(subscriptions_pool, clock, catalog.alice, APRIL_1)
        assert await now_of(subscriptions_pool, catalog.alice) == APRIL_1
        assert await now_of(subscriptions_pool, catalog.bruno) == NOW

        await advance(subscriptions_pool, clock, APRIL_1, APRIL_16)
        assert await now_of(subscriptions_pool, catalog.alice) == APRIL_16
        # a redelivered or late earlier advance does not move the clock back
        await advance(subscriptions_pool, clock, APRIL_1, APRIL_16 - timedelta(days=1))
        assert await now_of(subscriptions_pool, catalog.alice) == APRIL_16

    async def test_an_advance_arriving_before_the_attachment_is_kept(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        """The advance is keyed by the clock, the attachment by the customer: either may
        come first; the latest frozen time wins."""
        clock = TestClockId.new()
        await advance(subscriptions_pool, clock, APRIL_1, APRIL_21)
        await attach(subscriptions_pool, clock, catalog.alice, APRIL_1)
        assert await now_of(subscriptions_pool, catalog.alice) == APRIL_21
        # a second attachment (a replay) changes nothing; the clock's other customers follow
        await attach(subscriptions_pool, TestClockId.new(), catalog.alice, APRIL_1)
        await attach(subscriptions_pool, clock, catalog.bruno, APRIL_1)
        assert await now_of(subscriptions_pool, catalog.alice) == APRIL_21
        assert await now_of(subscriptions_pool, catalog.bruno) == APRIL_21

    async def test_a_close_on_the_clock_carries_its_time(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        """A period close for the clock's new time may arrive before the advance itself: it
        moves the clock to the time it was found at, and renews at the period's end."""
        clock = TestClockId.new()
        await attach(subscriptions_pool, clock, catalog.alice, APRIL_1)
        async with transaction(subscriptions_pool) as conn:
            sub = await service.create_subscription(
                conn,
                outbox_at(),
                TENANT,
                SubscriptionCreate(
                    customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1
                ),
                now=await service.customer_now(conn, TENANT, catalog.alice, now=NOW),
            )
        closing = PeriodClosing(
            saga_id=saga_id(sub.id, APRIL_1),
            subscription_id=sub.id,
            customer_id=catalog.alice,
            plan_id=catalog.basic,
            plan_version=1,
            period_start=APRIL_1,
            period_end=MAY_1,
            subscription_revision=1,
            currency=Currency.of("USD"),
            closed_at=MAY_1 + timedelta(days=3),
            test_clock_id=clock,
        )
        async with transaction(subscriptions_pool) as conn:
            renewed = await cycle.period_closing(
                conn, outbox_at(), _parsed(PERIOD_CLOSING, closing, catalog.alice)
            )
        assert renewed
        assert await now_of(subscriptions_pool, catalog.alice) == MAY_1 + timedelta(days=3)
        (update,) = await outbox(subscriptions_pool, SUBSCRIPTION_UPDATED)
        assert (update.data.transition.action, update.data.transition.at) == ("renew", MAY_1)


class TestCommandsOnTheClock:
    """Through the routes, as the gateway calls them: the real clock reads April 11, 10:00;
    alice follows a test clock frozen at April 1st."""

    @pytest.fixture
    async def on_clock(self, subscriptions_pool: Pool, catalog: Catalog) -> TestClockId:
        clock = TestClockId.new()
        await attach(subscriptions_pool, clock, catalog.alice, APRIL_1)
        return clock

    async def created(self, client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
        response = await client.post("/v1/subscriptions", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def post(self, client: httpx.AsyncClient, path: str, **body: Any) -> dict[str, Any]:
        response = await client.post(path, json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def test_a_start_now_starts_at_the_clocks_time(
        self,
        client: httpx.AsyncClient,
        subscriptions_pool: Pool,
        catalog: Catalog,
        on_clock: TestClockId,
    ) -> None:
        sub = await self.created(
            client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1
        )
        assert sub["billing_starts_at"] == "2026-04-01T00:00:00Z"
        assert (sub["current_period_start"], sub["current_period_end"]) == (
            "2026-04-01T00:00:00Z",
            "2026-05-01T00:00:00Z",
        )
        assert sub["current_period_fee"] == {"amount": "30", "currency": "USD"}  # all of April
        assert sub["created_at"] == "2026-04-01T00:00:00Z"
        (created,) = await outbox(subscriptions_pool, SUBSCRIPTION_CREATED)
        assert (created.data.created_at, created.data.billing_starts_at) == (APRIL_1, APRIL_1)
        # a customer on no clock still starts on the real clock
        other = await self.created(client, customer_id=catalog.bruno, plan_id=catalog.pro)
        assert other["billing_starts_at"] == "2026-04-11T10:00:00Z"

    async def test_a_start_date_is_still_midnight_in_the_customers_timezone(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        await attach(subscriptions_pool, TestClockId.new(), catalog.bruno, APRIL_1)
        sub = await self.created(
            client, customer_id=catalog.bruno, plan_id=catalog.pro, start="2026-04-10"
        )
        assert sub["billing_starts_at"] == "2026-04-09T22:00:00Z"  # Europe/Paris
        assert sub["created_at"] == "2026-04-01T00:00:00Z"

    async def test_cancel_now_after_an_advance_prorates_at_the_clocks_time(
        self,
        client: httpx.AsyncClient,
        subscriptions_pool: Pool,
        catalog: Catalog,
        on_clock: TestClockId,
    ) -> None:
        sub = await self.created(
            client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1
        )
        await advance(subscriptions_pool, on_clock, APRIL_1, APRIL_16)
        canceled = await self.post(client, f"/v1/subscriptions/{sub['id']}/cancel")
        assert (canceled["status"], canceled["canceled_at"]) == ("canceled", "2026-04-16T00:00:00Z")
        (update,) = await outbox(subscriptions_pool, SUBSCRIPTION_UPDATED)
        assert (update.data.transition.action, update.data.transition.at) == (
            "cancel_now",
            APRIL_16,
        )
        billed = await outbox(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        # 15 of April's 30 days unused: half the fee back (the real clock would credit less)
        assert effects(billed[-1]) == [("unused_time", catalog.basic, usd("-15"))]
        assert (billed[-1].data.at, billed[-1].data.effects[0].service_start) == (
            APRIL_16,
            APRIL_16,
        )

    async def test_an_upgrade_after_an_advance_is_prorated_at_the_clocks_time(
        self,
        client: httpx.AsyncClient,
        subscriptions_pool: Pool,
        catalog: Catalog,
        on_clock: TestClockId,
    ) -> None:
        sub = await self.created(
            client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1
        )
        await advance(subscriptions_pool, on_clock, APRIL_1, APRIL_16)
        changed = await self.post(
            client, f"/v1/subscriptions/{sub['id']}/change_plan", plan_id=catalog.pro
        )
        assert changed["plan_id"] == catalog.pro
        assert changed["updated_at"] == "2026-04-16T00:00:00Z"
        billed = await outbox(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert effects(billed[-1]) == [
            ("unused_time", catalog.basic, usd("-15")),
            ("remaining_time", catalog.pro, usd("30")),
        ]
        assert billed[-1].data.at == APRIL_16

    async def test_pause_and_resume_happen_at_the_clocks_time(
        self,
        client: httpx.AsyncClient,
        subscriptions_pool: Pool,
        catalog: Catalog,
        on_clock: TestClockId,
    ) -> None:
        sub = await self.created(
            client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1
        )
        await advance(subscriptions_pool, on_clock, APRIL_1, APRIL_16)
        paused = await self.post(client, f"/v1/subscriptions/{sub['id']}/pause")
        assert paused["paused_at"] == "2026-04-16T00:00:00Z"
        await advance(subscriptions_pool, on_clock, APRIL_16, APRIL_21)
        resumed = await self.post(client, f"/v1/subscriptions/{sub['id']}/resume")
        assert resumed["status"] == "active"
        updates = await outbox(subscriptions_pool, SUBSCRIPTION_UPDATED)
        assert [(u.data.transition.action, u.data.transition.at) for u in updates] == [
            ("pause", APRIL_16),
            ("resume", APRIL_21),
        ]
        billed = await outbox(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert [effects(b) for b in billed[1:]] == [
            [("unused_time", catalog.basic, usd("-15"))],
            [("remaining_time", catalog.basic, usd("10"))],
        ]

    async def test_an_unknown_subscription_is_still_not_found(
        self, client: httpx.AsyncClient, on_clock: TestClockId
    ) -> None:
        response = await client.post(f"/v1/subscriptions/{SubscriptionId.new()}/pause")
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "subscription_not_found"
