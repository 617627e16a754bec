"""The engine on a real PostgreSQL: the billing clock's passes, sagas, projections, clocks."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest

from billing_common.cycle import PERIOD_CLOSING, PeriodClosing, saga_id
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent
from billing_engine import repository, service
from billing_engine.clock import BillingClock
from billing_engine.domain import (
    ClockStatus,
    CustomerAlreadyOnTestClock,
    InvalidTestClockAdvance,
    due_work,
)
from billing_engine.events import TEST_CLOCK_ADVANCED, TEST_CLOCK_CUSTOMER_ATTACHED
from billing_engine.schemas import TestClock, TestClockCreate
from billing_subscriptions.events import TRIAL_END_REQUESTED

from .conftest import (
    NOW,
    SETTINGS,
    TENANT,
    Clock,
    DatabaseOnlyRuntime,
    Feed,
    invoice_finalized,
    new_customer,
    new_subscription,
    outbox_at,
    utc,
)

pytestmark = pytest.mark.service


async def outbox(pool: Pool, topic: Any = PERIOD_CLOSING) -> list[CloudEvent[Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic.name)
    return [topic.parse(bytes(row["payload"])) for row in rows]


async def sagas(pool: Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT saga_id, subscription_id, test_clock_id, period_start, period_end, status,"
        " attempts, invoice_id FROM sagas ORDER BY period_start"
    )
    return [dict(row.items()) for row in rows]


async def new_clock(pool: Pool, frozen: Any = None, tenant: str = TENANT) -> TestClock:
    async with transaction(pool) as conn:
        return await service.create_clock(
            conn, tenant, TestClockCreate(frozen_time=frozen or utc(2026, 1)), now=NOW
        )


async def clock_on(pool: Pool, feed: Feed, frozen: Any = None) -> tuple[TestClock, str]:
    """A test clock and a customer attached to it."""
    clock = await new_clock(pool, frozen)
    customer = new_customer()
    await feed.customer(customer)
    async with transaction(pool) as conn:
        await service.attach_customer(conn, outbox_at(), TENANT, clock.id, customer, now=NOW)
    return clock, customer


async def advance(pool: Pool, clock: TestClock, to: Any) -> TestClock:
    async with transaction(pool) as conn:
        return await service.advance_clock(conn, outbox_at(), TENANT, clock.id, to, now=NOW)


async def status_of(pool: Pool, clock: TestClock) -> TestClock:
    async with pool.acquire() as conn:
        return await service.get_clock(conn, TENANT, clock.id)


class TestStartingAPeriodClose:
    async def test_the_saga_row_and_its_event_are_written_together(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer, revision=3, period=(utc(2026, 3), utc(2026, 4)))
        tick = await billing_clock.tick(runtime)
        assert [w.subscription.subscription_id for w in tick.started] == [sub]

        expected = saga_id(sub, utc(2026, 3))
        (event,) = await outbox(engine_pool)
        assert event.subject == customer
        assert event.tenantid == TENANT
        data: PeriodClosing = event.data
        assert data.saga_id == expected
        assert (data.period_start, data.period_end) == (utc(2026, 3), utc(2026, 4))
        assert (data.subscription_revision, data.plan_version, data.currency.code) == (3, 1, "USD")
        assert (data.closed_at, data.test_clock_id) == (NOW, None)  # the real clock
        assert await sagas(engine_pool) == [
            {
                "saga_id": expected,
                "subscription_id": sub,
                "test_clock_id": None,
                "period_start": utc(2026, 3),
                "period_end": utc(2026, 4),
                "status": "pending",
                "attempts": 1,
                "invoice_id": None,
            }
        ]

    async def test_nothing_is_written_when_the_transaction_rolls_back(
        self, engine_pool: Pool, feed: Feed
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer)
        async with engine_pool.acquire() as conn:
            candidates, clocks = await repository.due_candidates(conn, NOW, limit=10)
        (work,) = due_work(candidates, clocks, now=NOW)

        async def crash_before_commit() -> None:
            async with transaction(engine_pool) as conn:
                assert await service.start_work(conn, outbox_at(), work, now=NOW)
                raise RuntimeError("crash before commit")

        with pytest.raises(RuntimeError, match="crash"):
            await crash_before_commit()
        assert await sagas(engine_pool) == []
        assert await outbox(engine_pool) == []

    async def test_repeated_and_concurrent_scans_start_a_period_once(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        await feed.subscription(new_subscription(), new_customer())
        first = await billing_clock.tick(runtime)
        second = await billing_clock.tick(runtime)
        assert (len(first.started), len(second.started)) == (1, 0)

        await feed.subscription(new_subscription(), new_customer())
        other = BillingClock(SETTINGS)  # another replica
        ticks = await asyncio.gather(billing_clock.tick(runtime), other.tick(runtime))
        assert sum(len(t.started) for t in ticks) == 1
        assert len(await sagas(engine_pool)) == 2
        assert len(await outbox(engine_pool)) == 2

    async def test_a_subscription_that_changed_since_the_scan_is_left_for_the_next(
        self, engine_pool: Pool, feed: Feed
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer)
        async with engine_pool.acquire() as conn:
            candidates, clocks = await repository.due_candidates(conn, NOW, limit=10)
        (work,) = due_work(candidates, clocks, now=NOW)
        await feed.subscription(sub, customer, revision=2, status="canceled")
        async with transaction(engine_pool) as conn:
            assert await service.start_work(conn, outbox_at(), work, now=NOW) is False
        assert await sagas(engine_pool) == []

    async def test_periods_not_over_and_subscriptions_that_do_not_bill_start_nothing(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        await feed.subscription(
            new_subscription(), new_customer(), period=(utc(2026, 4), utc(2026, 5))
        )
        canceled = new_subscription()
        await feed.subscription(canceled, new_customer(), status="canceled")
        await feed.subscription(new_subscription(), new_customer(), status="ended")
        paused = new_subscription()
        await feed.subscription(paused, new_customer(), status="paused")
        tick = await billing_clock.tick(runtime)
        # A paused subscription's period closes; a canceled one's closes once (the final
        # invoice); an ended one has nothing left.
        assert sorted(w.subscription.subscription_id for w in tick.started) == sorted(
            [paused, canceled]
        )
        again = await billing_clock.tick(runtime)
        assert [w.subscription.subscription_id for w in again.started] == []


class TestTrialEnds:
    async def test_a_trial_end_is_requested_once_then_the_first_period_closes(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        trial_end = utc(2026, 3, 15)
        await feed.subscription(sub, customer, status="trialing", period=None, trial_end=trial_end)
        await billing_clock.tick(runtime)
        await billing_clock.tick(runtime)
        (request,) = await outbox(engine_pool, TRIAL_END_REQUESTED)
        assert (request.data.subscription_id, request.data.trial_end) == (sub, trial_end)
        assert await sagas(engine_pool) == []

        # subscriptions ended the trial: the first period runs from the trial's end
        await feed.subscription(
            sub, customer, revision=2, period=(trial_end, utc(2026, 4)), trial_end=trial_end
        )
        tick = await billing_clock.tick(runtime)
        assert [w.subscription.subscription_id for w in tick.started] == [sub]
        assert [s["period_start"] for s in await sagas(engine_pool)] == [trial_end]


class TestProjection:
    async def test_keeps_the_latest_revision(self, engine_pool: Pool, feed: Feed) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer, revision=1)
        await feed.subscription(sub, customer, revision=3, period=(utc(2026, 3), utc(2026, 4)))
        await feed.subscription(sub, customer, revision=2, period=(utc(2026, 2), utc(2026, 3)))
        await feed.subscription(sub, customer, revision=3, status="canceled")  # same revision
        async with engine_pool.acquire() as conn:
            view = await repository.get_subscription(conn, sub)
        assert view is not None
        assert (view.revision, view.status, view.current_period_start) == (
            3,
            "active",
            utc(2026, 3),
        )


class TestRetriesAndCompletion:
    async def test_an_unfinished_saga_is_reemitted_with_the_same_id_then_fails(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        clock: Clock,
        feed: Feed,
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer)
        await billing_clock.tick(runtime)
        clock.now = NOW + timedelta(seconds=29)
        assert (await billing_clock.tick(runtime)).reemitted == 0
        clock.now = NOW + timedelta(seconds=30)
        assert (await billing_clock.tick(runtime)).reemitted == 1
        assert (await billing_clock.tick(runtime)).reemitted == 0  # the timeout restarts
        clock.now += timedelta(seconds=30)
        assert (await billing_clock.tick(runtime)).reemitted == 1  # attempt 3 of 3

        events = await outbox(engine_pool)
        assert len(events) == 3
        assert {e.data for e in events} == {events[0].data}  # the same close, thrice
        assert len({e.id for e in events}) == 3  # as three events
        (saga,) = await sagas(engine_pool)
        assert (saga["status"], saga["attempts"]) == ("pending", 3)

        clock.now += timedelta(seconds=30)
        assert (await billing_clock.tick(runtime)).failed == 1
        (saga,) = await sagas(engine_pool)
        assert (saga["status"], saga["attempts"]) == ("failed", 3)
        assert (await billing_clock.tick(runtime)).failed == 0
        assert len(await outbox(engine_pool)) == 3

        # its invoice arriving late still finishes it
        await feed.invoice(saga["saga_id"], customer)
        (saga,) = await sagas(engine_pool)
        assert (saga["status"], saga["invoice_id"]) == ("done", "inv_1")

    async def test_invoice_finalized_finishes_its_saga_once(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        clock: Clock,
        feed: Feed,
    ) -> None:
        customer, sub = new_customer(), new_subscription()
        await feed.subscription(sub, customer)
        await billing_clock.tick(runtime)
        expected = saga_id(sub, utc(2026, 1))
        await feed.invoice(None, customer)  # a one-off invoice: no saga
        await feed.invoice(expected, customer)
        async with transaction(engine_pool) as conn:
            again = invoice_finalized(expected, customer, invoice_id="inv_2")
            assert await service.invoice_finalized(conn, again, now=NOW) is False
        (saga,) = await sagas(engine_pool)
        assert (saga["status"], saga["invoice_id"]) == ("done", "inv_1")
        clock.now = NOW + timedelta(hours=1)
        assert (await billing_clock.tick(runtime)).reemitted == 0  # done: never retried

    async def test_a_consolidated_invoice_finishes_every_saga_it_bills(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        customer = new_customer()
        first, second = new_subscription(), new_subscription()
        await feed.subscription(first, customer)
        await feed.subscription(second, customer)
        await billing_clock.tick(runtime)
        ids = [saga_id(first, utc(2026, 1)), saga_id(second, utc(2026, 1))]
        parent = invoice_finalized(ids[0], customer)
        consolidated = parent.model_copy(
            update={"data": parent.data.model_copy(update={"saga_ids": ids})}
        )
        async with transaction(engine_pool) as conn:
            assert await service.invoice_finalized(conn, consolidated, now=NOW) is True
        assert sorted((s["status"], s["invoice_id"]) for s in await sagas(engine_pool)) == [
            ("done", "inv_1"),
            ("done", "inv_1"),
        ]


class TestTestClocks:
    async def test_advancing_closes_every_passed_period_in_order_then_is_ready(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        clock, customer = await clock_on(engine_pool, feed, utc(2026, 1, 15))
        sub = new_subscription()
        await feed.subscription(sub, customer, period=(utc(2026, 1), utc(2026, 2)))
        assert (await billing_clock.tick(runtime)).started == []  # frozen before Feb 1
        assert (await status_of(engine_pool, clock)).status is ClockStatus.READY

        advanced = await advance(engine_pool, clock, utc(2026, 4, 10))
        assert advanced.frozen_time == utc(2026, 4, 10)
        assert advanced.status is ClockStatus.ADVANCING
        (moved,) = await outbox(engine_pool, TEST_CLOCK_ADVANCED)
        assert (moved.data.previous_time, moved.data.frozen_time) == (
            utc(2026, 1, 15),
            utc(2026, 4, 10),
        )

        starts = [utc(2026, 1), utc(2026, 2), utc(2026, 3), utc(2026, 4), utc(2026, 5)]
        periods = list(itertools.pairwise(starts))
        for index, (start, end) in enumerate(periods[:3]):
            tick = await billing_clock.tick(runtime)
            assert [w.boundary for w in tick.started] == [end]
            assert (await billing_clock.tick(runtime)).started == []  # one period at a time
            status = await status_of(engine_pool, clock)
            assert (status.status, status.sagas.pending) == (ClockStatus.ADVANCING, 1)
            await feed.invoice(saga_id(sub, start), customer)
            # invoiced but not yet renewed: still advancing
            assert (await status_of(engine_pool, clock)).status is ClockStatus.ADVANCING
            await feed.subscription(sub, customer, revision=index + 2, period=periods[index + 1])
        assert (await billing_clock.tick(runtime)).started == []  # April ends after Apr 10

        closes = await outbox(engine_pool)
        assert [e.data.period_start for e in closes] == starts[:3]
        assert {(e.data.test_clock_id, e.data.closed_at) for e in closes} == {
            (clock.id, utc(2026, 4, 10))
        }
        done = await status_of(engine_pool, clock)
        assert done.status is ClockStatus.READY
        assert (done.sagas.pending, done.sagas.done, done.sagas.failed) == (0, 3, 0)
        assert done.customer_count == 1

    async def test_a_failed_close_shows_on_the_clock(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        clock: Clock,
        feed: Feed,
    ) -> None:
        test_clock, customer = await clock_on(engine_pool, feed)
        await feed.subscription(new_subscription(), customer, period=(utc(2026, 1), utc(2026, 2)))
        await advance(engine_pool, test_clock, utc(2026, 2))
        await billing_clock.tick(runtime)
        for _ in range(SETTINGS.saga_max_attempts):
            clock.now += timedelta(seconds=SETTINGS.saga_timeout_seconds)
            await billing_clock.tick(runtime)
        shown = await status_of(engine_pool, test_clock)
        assert shown.status is ClockStatus.INTERNAL_FAILURE
        assert (shown.sagas.pending, shown.sagas.failed) == (0, 1)

    async def test_attaching_announces_the_customer_and_the_clocks_time(
        self, engine_pool: Pool, feed: Feed
    ) -> None:
        clock, customer = await clock_on(engine_pool, feed, utc(2026, 1, 15))
        (attached,) = await outbox(engine_pool, TEST_CLOCK_CUSTOMER_ATTACHED)
        assert (attached.subject, attached.tenantid) == (customer, TENANT)
        assert attached.data.model_dump() == {
            "test_clock_id": clock.id,
            "customer_id": customer,
            "frozen_time": utc(2026, 1, 15),
            "attached_at": NOW,
        }
        # a refused attachment announces nothing
        async with transaction(engine_pool) as conn:
            with pytest.raises(CustomerAlreadyOnTestClock):
                await service.attach_customer(
                    conn, outbox_at(), TENANT, clock.id, customer, now=NOW
                )
        assert len(await outbox(engine_pool, TEST_CLOCK_CUSTOMER_ATTACHED)) == 1

    async def test_advancing_backwards_or_in_place_is_refused(self, engine_pool: Pool) -> None:
        clock = await new_clock(engine_pool, utc(2026, 3))
        for to in (utc(2026, 3), utc(2026, 2)):
            with pytest.raises(InvalidTestClockAdvance):
                await advance(engine_pool, clock, to)
        assert (await status_of(engine_pool, clock)).frozen_time == utc(2026, 3)
        assert await outbox(engine_pool, TEST_CLOCK_ADVANCED) == []

    async def test_customers_on_other_clocks_or_none_are_not_moved(
        self,
        engine_pool: Pool,
        runtime: DatabaseOnlyRuntime,
        billing_clock: BillingClock,
        feed: Feed,
    ) -> None:
        fast, on_fast = await clock_on(engine_pool, feed, utc(2026, 1, 2))
        _slow, on_slow = await clock_on(engine_pool, feed, utc(2026, 1, 2))
        real = new_customer()
        far = (utc(2027, 1), utc(2027, 2))  # ends long after the real NOW
        for customer in (on_fast, on_slow, real):
            await feed.subscription(new_subscription(), customer, period=far)
        await advance(engine_pool, fast, utc(2027, 3))
        tick = await billing_clock.tick(runtime)
        assert [w.subscription.customer_id for w in tick.started] == [on_fast]
