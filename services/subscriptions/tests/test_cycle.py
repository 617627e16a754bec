"""The billing clock's steps as subscriptions acts on them: renew on `period_closing`,
end the trial on `trial_end_requested`, each once, at the instant the engine names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_common.currency import Currency
from billing_common.cycle import PERIOD_CLOSING, PeriodClosing, saga_id
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.ids import CustomerId
from billing_subscriptions import cycle, service
from billing_subscriptions.domain import SubscriptionStatus
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    CONSUMES,
    SUBSCRIPTION_UPDATED,
    TRIAL_END_REQUESTED,
    TrialEndRequested,
)
from billing_subscriptions.schemas import Subscription, SubscriptionCancel, SubscriptionCreate

from .conftest import NOW, TENANT, Catalog, outbox_at

pytestmark = pytest.mark.service

S = SubscriptionStatus
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
JUNE_1 = datetime(2026, 6, 1, tzinfo=UTC)
TEST_CLOCK = "clock_01JD3Q0000000000000000000"


def closing(sub: Subscription, start: datetime, end: datetime) -> CloudEvent[PeriodClosing]:
    data = PeriodClosing(
        saga_id=saga_id(sub.id, start),
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        plan_id=sub.plan_id,
        plan_version=sub.plan_version,
        period_start=start,
        period_end=end,
        subscription_revision=1,
        currency=Currency.of("USD"),
        closed_at=end,
        test_clock_id=TEST_CLOCK,
    )
    event: CloudEvent[PeriodClosing] = _envelope(PERIOD_CLOSING, data, sub.customer_id)
    return event


def trial_ending(sub: Subscription, trial_end: datetime) -> CloudEvent[TrialEndRequested]:
    data = TrialEndRequested(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        trial_end=trial_end,
        subscription_revision=1,
        requested_at=trial_end,
    )
    event: CloudEvent[TrialEndRequested] = _envelope(TRIAL_END_REQUESTED, data, sub.customer_id)
    return event


def _envelope(topic: Any, data: Any, subject: str) -> Any:
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


async def subscribe(
    pool: Pool, customer: CustomerId, catalog: Catalog, **fields: Any
) -> Subscription:
    request = SubscriptionCreate(customer_id=customer, plan_id=catalog.basic, **fields)
    async with transaction(pool) as conn:
        return await service.create_subscription(conn, outbox_at(), TENANT, request, now=NOW)


async def current(pool: Pool, subscription_id: str) -> Subscription:
    async with transaction(pool) as conn:
        return await service.get_subscription(conn, TENANT, subscription_id)


async def topics(pool: Pool) -> list[str]:
    return [row["topic"] for row in await pool.fetch("SELECT topic FROM outbox ORDER BY seq")]


def test_the_clock_steps_are_consumed() -> None:
    assert PERIOD_CLOSING in CONSUMES
    assert TRIAL_END_REQUESTED in CONSUMES
    assert TRIAL_END_REQUESTED.kind == "command"


class TestPeriodClosing:
    async def test_renews_at_the_period_end_once(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog, plan_version=1)
        assert (sub.current_period_start, sub.current_period_end) == (NOW, MAY_1)
        event = closing(sub, NOW, MAY_1)
        async with transaction(subscriptions_pool) as conn:
            assert await cycle.period_closing(conn, outbox_at(), event) is True
        renewed = await current(subscriptions_pool, sub.id)
        assert (renewed.current_period_start, renewed.current_period_end) == (MAY_1, JUNE_1)
        assert renewed.updated_at == MAY_1  # the engine's instant, not the service's clock
        updated = [
            SUBSCRIPTION_UPDATED.parse(bytes(row["payload"]))
            for row in await subscriptions_pool.fetch(
                "SELECT payload FROM outbox WHERE topic = $1", SUBSCRIPTION_UPDATED.name
            )
        ]
        assert [(u.data.transition.action, u.data.revision) for u in updated] == [("renew", 2)]
        assert (await topics(subscriptions_pool)).count(BILLING_EFFECTS_RECORDED.name) == 2

        # a redelivery, or the engine's retry with the same saga: nothing more
        async with transaction(subscriptions_pool) as conn:
            assert await cycle.period_closing(conn, outbox_at(), event) is False
            assert await cycle.period_closing(conn, outbox_at(), closing(sub, NOW, MAY_1)) is False
        assert await current(subscriptions_pool, sub.id) == renewed
        assert (await topics(subscriptions_pool)).count(SUBSCRIPTION_UPDATED.name) == 1

    async def test_the_next_period_closes_after_the_first(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog, plan_version=1)
        async with transaction(subscriptions_pool) as conn:
            # out of order: the second period is not current yet, so nothing happens
            assert (
                await cycle.period_closing(conn, outbox_at(), closing(sub, MAY_1, JUNE_1)) is False
            )
            assert await cycle.period_closing(conn, outbox_at(), closing(sub, NOW, MAY_1)) is True
            assert (
                await cycle.period_closing(conn, outbox_at(), closing(sub, MAY_1, JUNE_1)) is True
            )
        renewed = await current(subscriptions_pool, sub.id)
        assert renewed.current_period_start == JUNE_1

    async def test_a_canceled_subscription_is_left_alone(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog, plan_version=1)
        async with transaction(subscriptions_pool) as conn:
            await service.cancel_subscription(
                conn, outbox_at(), TENANT, sub.id, SubscriptionCancel(), now=NOW
            )
        async with transaction(subscriptions_pool) as conn:
            assert await cycle.period_closing(conn, outbox_at(), closing(sub, NOW, MAY_1)) is False
        assert (await current(subscriptions_pool, sub.id)).status is S.CANCELED

    async def test_cancel_at_period_end_cancels_at_the_close(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog, plan_version=1)
        async with transaction(subscriptions_pool) as conn:
            await service.cancel_subscription(
                conn,
                outbox_at(),
                TENANT,
                sub.id,
                SubscriptionCancel.model_validate({"at": "period_end"}),
                now=NOW,
            )
            assert await cycle.period_closing(conn, outbox_at(), closing(sub, NOW, MAY_1)) is True
        after = await current(subscriptions_pool, sub.id)
        assert (after.status, after.canceled_at) == (S.CANCELED, MAY_1)

    async def test_an_unknown_subscription_is_ignored(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog, plan_version=1)
        other = sub.model_copy(update={"id": "sub_01JD3Q0000000000000000000"})
        async with transaction(subscriptions_pool) as conn:
            assert (
                await cycle.period_closing(conn, outbox_at(), closing(other, NOW, MAY_1)) is False
            )


class TestTrialEndRequested:
    async def test_ends_the_trial_at_its_end_once(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog)  # v2: 7 trial days
        assert sub.status is S.TRIALING
        assert sub.trial_end is not None
        event = trial_ending(sub, sub.trial_end)
        async with transaction(subscriptions_pool) as conn:
            assert await cycle.trial_end_requested(conn, outbox_at(), event) is True
            assert await cycle.trial_end_requested(conn, outbox_at(), event) is False
        active = await current(subscriptions_pool, sub.id)
        assert (active.status, active.current_period_start) == (S.ACTIVE, sub.trial_end)
        assert active.current_period_end == MAY_1
        assert (await topics(subscriptions_pool)).count(SUBSCRIPTION_UPDATED.name) == 1

    async def test_a_stale_trial_end_does_nothing(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog)
        async with transaction(subscriptions_pool) as conn:
            assert (
                await cycle.trial_end_requested(conn, outbox_at(), trial_ending(sub, NOW)) is False
            )
        assert (await current(subscriptions_pool, sub.id)).status is S.TRIALING
