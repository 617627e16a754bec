from __future__ import annotations

import doctest
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from billing_common.cycle import saga_id
from billing_engine import domain
from billing_engine.domain import (
    ClockStatus,
    CustomerClock,
    InvalidTestClockAdvance,
    RetryPolicy,
    SagaStep,
    SubscriptionView,
    WorkKind,
    check_advance,
    clock_status,
    due_work,
    next_saga_step,
)


def utc(month: int, day: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


NOW = utc(4, 11)


def sub(
    subscription_id: str,
    customer_id: str = "cus_a",
    *,
    status: str = "active",
    period: tuple[datetime, datetime] | None = (utc(1), utc(2)),
    trial_end: datetime | None = None,
) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=subscription_id,
        tenant_id="ten_1",
        customer_id=customer_id,
        revision=1,
        status=status,
        currency="USD",
        plan_id="plan_1",
        plan_version=1,
        current_period_start=None if period is None else period[0],
        current_period_end=None if period is None else period[1],
        trial_end=trial_end,
    )


def test_doctests() -> None:
    assert doctest.testmod(domain).failed == 0


class TestDueWork:
    def test_real_clock_closes_periods_that_ended_at_or_before_now(self) -> None:
        ended = sub("sub_1", period=(utc(3), utc(4)))
        ends_now = sub("sub_2", period=(utc(3, 11), NOW))
        running = sub("sub_3", period=(utc(4), utc(5)))
        work = due_work([running, ends_now, ended], {}, now=NOW)
        assert [(w.kind, w.subscription.subscription_id) for w in work] == [
            (WorkKind.CLOSE_PERIOD, "sub_1"),
            (WorkKind.CLOSE_PERIOD, "sub_2"),
        ]
        assert [w.boundary for w in work] == [utc(4), NOW]
        assert all(w.clock_time == NOW and w.test_clock_id is None for w in work)
        assert work[0].saga_id == saga_id("sub_1", utc(3))

    def test_a_subscription_canceled_now_closes_its_period_at_once(self) -> None:
        canceled = sub("sub_1", status="canceled", period=(utc(4), utc(5)))
        never_billed = sub("sub_2", status="canceled", period=None)  # canceled in its trial
        [work] = due_work([canceled, never_billed], {}, now=NOW)
        assert (work.kind, work.boundary, work.clock_time) == (WorkKind.CLOSE_PERIOD, NOW, NOW)
        assert work.saga_id == saga_id("sub_1", utc(4))

    def test_a_test_clock_customer_follows_its_frozen_time_not_the_real_clock(self) -> None:
        on_clock = sub("sub_1", "cus_clock", period=(utc(1), utc(2)))
        real = sub("sub_2", "cus_real", period=(utc(1), utc(2)))
        clocks = {"cus_clock": CustomerClock("clock_1", utc(1, 20))}
        assert [
            w.subscription.subscription_id for w in due_work([on_clock, real], clocks, now=NOW)
        ] == ["sub_2"]
        later = {"cus_clock": CustomerClock("clock_1", utc(2, 1))}
        (work,) = due_work([on_clock], later, now=utc(1, 2))  # the real clock is behind
        assert (work.clock_time, work.test_clock_id) == (utc(2, 1), "clock_1")

    def test_work_is_ordered_by_boundary_then_subscription(self) -> None:
        subs = [
            sub("sub_c", period=(utc(2), utc(3))),
            sub("sub_b", period=(utc(1), utc(2))),
            sub("sub_a", period=(utc(2), utc(3))),
            sub("sub_t", status="trialing", period=None, trial_end=utc(2, 15)),
        ]
        assert [w.subscription.subscription_id for w in due_work(subs, {}, now=NOW)] == [
            "sub_b",
            "sub_t",
            "sub_a",
            "sub_c",
        ]

    @pytest.mark.parametrize(
        ("status", "closes"),
        [
            ("active", True),
            ("past_due", True),
            ("paused", True),
            ("canceled", True),  # canceled now: its period closes once, for the final invoice
            ("ended", False),
        ],
    )
    def test_which_statuses_close_their_periods(self, status: str, closes: bool) -> None:
        work = due_work([sub("sub_1", status=status)], {}, now=NOW)
        assert [w.kind for w in work] == ([WorkKind.CLOSE_PERIOD] if closes else [])

    def test_a_trial_ends_when_its_end_passes(self) -> None:
        trialing = sub("sub_1", status="trialing", period=None, trial_end=utc(4, 18))
        assert due_work([trialing], {}, now=NOW) == []
        (work,) = due_work([trialing], {}, now=utc(4, 18))
        assert (work.kind, work.boundary) == (WorkKind.END_TRIAL, utc(4, 18))
        with pytest.raises(ValueError, match="only a period close"):
            _ = work.saga_id

    def test_an_active_subscription_after_its_trial_closes_its_period(self) -> None:
        active = sub("sub_1", period=(utc(4, 18), utc(5)), trial_end=utc(4, 18))
        (work,) = due_work([active], {}, now=utc(5))
        assert work.kind is WorkKind.CLOSE_PERIOD

    def test_no_period_no_work(self) -> None:
        assert due_work([sub("sub_1", period=None)], {}, now=NOW) == []
        assert due_work([sub("sub_1", status="trialing", period=None)], {}, now=NOW) == []


class TestCheckAdvance:
    def test_forward_only(self) -> None:
        check_advance(utc(1), utc(1) + timedelta(microseconds=1))
        for to in (utc(1), utc(1) - timedelta(days=1)):
            with pytest.raises(InvalidTestClockAdvance) as raised:
                check_advance(utc(1), to)
            assert raised.value.status == 422
            assert raised.value.extensions["errors"][0]["field"] == "to"


class TestRetries:
    POLICY = RetryPolicy(timedelta(seconds=30), max_attempts=3)

    @pytest.mark.parametrize(
        ("attempts", "seconds", "step"),
        [
            (1, 0, SagaStep.WAIT),
            (1, 29, SagaStep.WAIT),
            (1, 30, SagaStep.REEMIT),
            (2, 300, SagaStep.REEMIT),
            (3, 29, SagaStep.WAIT),
            (3, 30, SagaStep.FAIL),
        ],
    )
    def test_next_step(self, attempts: int, seconds: int, step: SagaStep) -> None:
        emitted = utc(1)
        now = emitted + timedelta(seconds=seconds)
        assert next_saga_step(attempts, emitted, now, self.POLICY) is step

    def test_a_policy_needs_time_and_attempts(self) -> None:
        with pytest.raises(ValueError, match="retry policy"):
            RetryPolicy(timedelta(0), 3)
        with pytest.raises(ValueError, match="retry policy"):
            replace(self.POLICY, max_attempts=0)


class TestClockStatus:
    def test_ready_only_when_nothing_is_pending_or_due(self) -> None:
        assert (
            clock_status(pending_sagas=0, failed_sagas=0, due_subscriptions=0) is ClockStatus.READY
        )
        assert clock_status(pending_sagas=1, failed_sagas=0, due_subscriptions=0) is (
            ClockStatus.ADVANCING
        )
        assert clock_status(pending_sagas=0, failed_sagas=0, due_subscriptions=2) is (
            ClockStatus.ADVANCING
        )
        assert clock_status(pending_sagas=1, failed_sagas=1, due_subscriptions=0) is (
            ClockStatus.INTERNAL_FAILURE
        )
