from __future__ import annotations

import doctest
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.errors import CurrencyMismatch
from billing_common.ids import PlanId
from billing_common.money import Money
from billing_subscriptions import domain
from billing_subscriptions.domain import (
    TRANSITIONS,
    Action,
    BillingEffect,
    BillingPeriodNotOver,
    EffectReason,
    InstantOutsideCurrentPeriod,
    InvalidPlanChange,
    InvalidSubscriptionTransition,
    Plan,
    Subscription,
    SubscriptionStatus,
    Transition,
    cancel,
    change_plan,
    end_trial,
    is_upgrade,
    mark_past_due,
    pause,
    recover_payment,
    renew,
    resume,
    start_subscription,
)
from billing_subscriptions.periods import (
    Anchor,
    BillingPeriod,
    Interval,
    InvalidSubscriptionTerms,
    zone,
)
from billing_subscriptions.policy import (
    ChangeTiming,
    ProrationGranularity,
    SubscriptionPolicy,
    UpgradeRule,
)
from billing_subscriptions.proration import amount_between

FAST = settings(database=None, deadline=None, max_examples=100)
POLICY = SubscriptionPolicy()
S = SubscriptionStatus


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: str, year: int, month: int, day: int, hour: int = 0) -> datetime:
    """The UTC instant of a wall-clock time in `tz`."""
    return datetime(year, month, day, hour, tzinfo=zone(tz)).astimezone(UTC)


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def plan(name: str, fee: str, interval: Interval = Interval.MONTH, **usage: str) -> Plan:
    return Plan(PlanId(f"plan_{name}"), usd(fee), interval, {k: usd(v) for k, v in usage.items()})


BASIC = plan("basic", "30")
PRO = plan("pro", "60")
YEARLY = plan("yearly", "300", Interval.YEAR)  # 300 a year < 12 x 30: a downgrade from BASIC
YEARLY_PRO = plan("yearly_pro", "400", Interval.YEAR)  # 400 > 360: an upgrade from BASIC

APRIL = (utc(2024, 4, 1), utc(2024, 5, 1))  # 30 days: a day of BASIC is 1 USD
APRIL_PERIOD = BillingPeriod(*APRIL, *APRIL)


def effect(
    reason: EffectReason, p: Plan, amount: str, start: datetime, end: datetime
) -> BillingEffect:
    return BillingEffect(reason, p.plan_id, usd(amount), start, end)


def active(
    p: Plan = BASIC,
    anchor: Anchor = Anchor.CALENDAR,
    at: datetime = APRIL[0],
    *,
    trial_days: int = 0,
    ends_at: datetime | None = None,
) -> Subscription:
    """A subscription started at `at` in UTC (trialing if `trial_days`)."""
    started = start_subscription(
        p, anchor, "UTC", at, POLICY, trial_days=trial_days, ends_at=ends_at
    )
    return started.subscription


def test_doctests() -> None:
    assert doctest.testmod(domain, raise_on_error=False).failed == 0


class TestStart:
    def test_without_trial_the_first_period_is_charged(self) -> None:
        started = start_subscription(BASIC, Anchor.CALENDAR, "UTC", APRIL[0], POLICY)
        sub = started.subscription
        assert (started.action, started.previous_status, sub.status) == (None, None, S.ACTIVE)
        assert sub.current_period is not None
        assert (sub.current_period.start, sub.current_period.end) == APRIL
        assert started.effects == (effect(EffectReason.PERIOD_FEE, BASIC, "30", *APRIL),)

    def test_a_calendar_start_mid_month_is_prorated(self) -> None:
        started = start_subscription(BASIC, Anchor.CALENDAR, "UTC", utc(2024, 4, 11, 9), POLICY)
        assert started.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "20", utc(2024, 4, 11, 9), APRIL[1]),
        )

    def test_an_anniversary_start_mid_day_pays_a_full_period(self) -> None:
        started = start_subscription(BASIC, Anchor.ANNIVERSARY, "UTC", utc(2024, 4, 11, 9), POLICY)
        assert started.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "30", utc(2024, 4, 11, 9), utc(2024, 5, 11)),
        )

    def test_a_free_plan_bills_nothing(self) -> None:
        started = start_subscription(plan("free", "0"), Anchor.CALENDAR, "UTC", APRIL[0], POLICY)
        assert started.effects == ()
        assert started.net == usd("0")

    def test_with_trial_nothing_is_billed_until_it_ends(self) -> None:
        tz = "Europe/Paris"  # the trial spans the switch to summer time
        started = start_subscription(
            BASIC, Anchor.ANNIVERSARY, tz, local(tz, 2024, 3, 20, 10), POLICY, trial_days=14
        )
        sub = started.subscription
        assert sub.status is S.TRIALING
        assert started.effects == ()
        assert sub.current_period is None
        assert sub.trial_end == local(tz, 2024, 4, 3, 10) == utc(2024, 4, 3, 8)
        assert sub.terms.starts_at == sub.trial_end

    def test_negative_trial_is_refused(self) -> None:
        with pytest.raises(InvalidSubscriptionTerms):
            start_subscription(BASIC, Anchor.CALENDAR, "UTC", APRIL[0], POLICY, trial_days=-1)


class TestEndTrial:
    def test_the_first_period_starts_when_the_trial_ends(self) -> None:
        tz = "Europe/Paris"
        trialing = start_subscription(
            BASIC, Anchor.ANNIVERSARY, tz, local(tz, 2024, 3, 20, 10), POLICY, trial_days=14
        ).subscription
        ended = end_trial(trialing, utc(2024, 4, 3, 8), POLICY)
        assert (ended.action, ended.previous_status) == (Action.END_TRIAL, S.TRIALING)
        assert ended.subscription.status is S.ACTIVE
        assert ended.effects == (
            effect(
                EffectReason.PERIOD_FEE,
                BASIC,
                "30",
                utc(2024, 4, 3, 8),
                local(tz, 2024, 5, 3),
            ),
        )

    def test_a_calendar_first_period_after_a_trial_is_prorated(self) -> None:
        trialing = active(at=APRIL[0], trial_days=10)
        ended = end_trial(trialing, utc(2024, 4, 11), POLICY)
        assert ended.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "20", utc(2024, 4, 11), APRIL[1]),
        )

    def test_ended_early_billing_starts_then(self) -> None:
        trialing = active(anchor=Anchor.ANNIVERSARY, at=APRIL[0], trial_days=10)
        ended = end_trial(trialing, utc(2024, 4, 5, 15), POLICY)
        period = ended.subscription.current_period
        assert period is not None
        assert (period.start, period.end) == (utc(2024, 4, 5, 15), utc(2024, 5, 5))
        assert ended.net == usd("30")

    def test_ended_late_billing_still_starts_at_the_trial_end(self) -> None:
        trialing = active(anchor=Anchor.ANNIVERSARY, at=APRIL[0], trial_days=10)
        ended = end_trial(trialing, utc(2024, 4, 13), POLICY)
        period = ended.subscription.current_period
        assert period is not None
        assert (period.start, period.end) == (utc(2024, 4, 11), utc(2024, 5, 11))

    def test_a_trial_set_to_cancel_ends_canceled(self) -> None:
        trialing = active(trial_days=10)
        flagged = cancel(trialing, utc(2024, 4, 5), POLICY, ChangeTiming.PERIOD_END)
        assert flagged.subscription.status is S.TRIALING
        ended = end_trial(flagged.subscription, utc(2024, 4, 11), POLICY)
        assert ended.subscription.status is S.CANCELED
        assert ended.subscription.canceled_at == utc(2024, 4, 11)
        assert ended.effects == ()


class TestPastDue:
    def test_a_failed_payment_and_its_recovery_bill_nothing(self) -> None:
        overdue = mark_past_due(active(), utc(2024, 4, 3))
        assert (overdue.previous_status, overdue.subscription.status) == (S.ACTIVE, S.PAST_DUE)
        assert overdue.effects == ()
        recovered = recover_payment(overdue.subscription, utc(2024, 4, 9))
        assert recovered.subscription.status is S.ACTIVE
        assert recovered.effects == ()

    def test_a_past_due_subscription_keeps_being_billed(self) -> None:
        overdue = mark_past_due(active(), utc(2024, 4, 3)).subscription
        renewed = renew(overdue, APRIL[1], POLICY)
        assert renewed.subscription.status is S.PAST_DUE
        assert renewed.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "30", APRIL[1], utc(2024, 6, 1)),
        )


class TestPauseResume:
    def test_paused_days_are_credited(self) -> None:
        paused = pause(active(), utc(2024, 4, 11, 8), POLICY)
        assert paused.subscription.status is S.PAUSED
        assert paused.effects == (
            effect(EffectReason.UNUSED_TIME, BASIC, "-20", utc(2024, 4, 11, 8), APRIL[1]),
        )
        resumed = resume(paused.subscription, utc(2024, 4, 21, 13), POLICY)
        assert resumed.subscription.status is S.ACTIVE
        assert resumed.effects == (
            effect(EffectReason.REMAINING_TIME, BASIC, "10", utc(2024, 4, 21, 13), APRIL[1]),
        )
        # 30 charged in advance - 20 + 10: the ten paused days are not billed
        assert usd("30") + paused.net + resumed.net == usd("20")

    def test_periods_keep_their_dates_and_are_not_billed_while_paused(self) -> None:
        paused = pause(active(), utc(2024, 4, 11), POLICY).subscription
        renewed = renew(paused, APRIL[1], POLICY)
        assert renewed.subscription.status is S.PAUSED
        assert renewed.effects == ()
        may = renewed.subscription.current_period
        assert may is not None
        assert (may.start, may.end) == (APRIL[1], utc(2024, 6, 1))
        resumed = resume(renewed.subscription, utc(2024, 5, 16, 20), POLICY)
        # 16 of May's 31 days remain: 30 * 16/31, to the pico-unit
        assert resumed.effects == (
            effect(
                EffectReason.REMAINING_TIME, BASIC, "15.483870967742", utc(2024, 5, 16, 20), may.end
            ),
        )

    def test_by_the_second(self) -> None:
        policy = SubscriptionPolicy(proration_granularity=ProrationGranularity.SECONDS)
        paused = pause(active(), utc(2024, 4, 11, 12), policy)
        assert paused.net == usd("-19.5")

    def test_a_half_pico_tie_bills_the_used_half_once(self) -> None:
        three_picos = Plan(PlanId("plan_tiny"), Money(3, usd("0").currency), Interval.MONTH)
        sub = active(three_picos)
        paused = pause(sub, utc(2024, 4, 16), POLICY)  # exactly half of April: 1.5 picos used
        assert paused.net.amount == -1  # 3 - R(1.5) = 3 - 2
        assert (
            3 + paused.net.amount
            == amount_between(
                three_picos.base_fee, APRIL_PERIOD, APRIL[0], utc(2024, 4, 16), "UTC"
            ).amount
        )

    def test_pause_outside_the_current_period_is_refused(self) -> None:
        with pytest.raises(InstantOutsideCurrentPeriod) as caught:
            pause(active(), APRIL[1], POLICY)
        assert caught.value.status == 409
        assert caught.value.code == "instant_outside_current_period"

    def test_resume_before_the_pause_is_refused(self) -> None:
        paused = pause(active(), utc(2024, 4, 11), POLICY).subscription
        with pytest.raises(InstantOutsideCurrentPeriod, match="before the pause"):
            resume(paused, utc(2024, 4, 10), POLICY)


class TestCancel:
    def test_now_credits_the_unused_rest(self) -> None:
        canceled = cancel(active(), utc(2024, 4, 11, 16), POLICY)
        sub = canceled.subscription
        assert (canceled.action, sub.status) == (Action.CANCEL_NOW, S.CANCELED)
        assert sub.canceled_at == utc(2024, 4, 11, 16)
        assert canceled.effects == (
            effect(EffectReason.UNUSED_TIME, BASIC, "-20", utc(2024, 4, 11, 16), APRIL[1]),
        )

    def test_now_without_credit_when_the_policy_says_so(self) -> None:
        policy = SubscriptionPolicy(prorate_on_cancel=False)
        canceled = cancel(active(), utc(2024, 4, 11), policy)
        assert canceled.subscription.status is S.CANCELED
        assert canceled.effects == ()

    def test_now_while_past_due_credits_too(self) -> None:
        overdue = mark_past_due(active(), utc(2024, 4, 3)).subscription
        assert cancel(overdue, utc(2024, 4, 21), POLICY).net == usd("-10")

    def test_now_while_paused_credits_nothing_more(self) -> None:
        paused = pause(active(), utc(2024, 4, 11), POLICY).subscription
        canceled = cancel(paused, utc(2024, 4, 21), POLICY)
        assert canceled.subscription.status is S.CANCELED
        assert canceled.effects == ()

    def test_now_while_trialing_bills_nothing(self) -> None:
        canceled = cancel(active(trial_days=10), utc(2024, 4, 3), POLICY)
        assert canceled.subscription.status is S.CANCELED
        assert canceled.effects == ()

    def test_at_period_end(self) -> None:
        flagged = cancel(active(), utc(2024, 4, 11), POLICY, ChangeTiming.PERIOD_END)
        assert flagged.action is Action.CANCEL_AT_PERIOD_END
        assert flagged.subscription.status is S.ACTIVE
        assert flagged.subscription.cancel_at_period_end
        assert flagged.effects == ()
        renewed = renew(flagged.subscription, APRIL[1], POLICY)
        assert renewed.subscription.status is S.CANCELED
        assert renewed.subscription.canceled_at == APRIL[1]
        assert renewed.effects == ()


class TestIsUpgrade:
    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (BASIC, PRO, True),
            (PRO, BASIC, False),
            (BASIC, BASIC, False),
            (BASIC, YEARLY_PRO, True),  # 400/year > 360/year
            (BASIC, YEARLY, False),  # 300/year < 360/year
            (plan("weekly", "10", Interval.WEEK), plan("m", "45"), True),  # 540 > 520
            (plan("weekly", "10", Interval.WEEK), plan("m", "43"), False),  # 516 < 520
            (plan("q", "100", Interval.QUARTER), plan("m", "34"), True),  # 408 > 400
        ],
    )
    def test_higher_base_fee_per_year(self, old: Plan, new: Plan, expected: bool) -> None:
        assert is_upgrade(old, new, UpgradeRule.HIGHER_BASE_FEE) is expected

    def test_weekly_to_monthly_compares_per_year(self) -> None:
        weekly = plan("weekly", "10", Interval.WEEK)  # 520 a year
        assert is_upgrade(weekly, plan("m", "43.34"), UpgradeRule.HIGHER_BASE_FEE)  # 520.08
        assert not is_upgrade(weekly, plan("m", "43.33"), UpgradeRule.HIGHER_BASE_FEE)  # 519.96

    def test_any_price_increase(self) -> None:
        old = plan("old", "30", api_calls="0.001")
        rule = UpgradeRule.ANY_PRICE_INCREASE
        assert is_upgrade(old, plan("new", "20", api_calls="0.002"), rule)
        assert is_upgrade(old, plan("new", "30", api_calls="0.001", storage="0.1"), rule)
        assert not is_upgrade(old, plan("new", "30", api_calls="0.001", storage="0"), rule)
        assert not is_upgrade(old, plan("new", "20", api_calls="0.0005"), rule)
        assert not is_upgrade(
            old, plan("new", "20", api_calls="0.002"), UpgradeRule.HIGHER_BASE_FEE
        )

    def test_plans_in_different_currencies_do_not_compare(self) -> None:
        euro = Plan(PlanId("plan_eur"), Money.parse("30", "EUR"), Interval.MONTH)
        with pytest.raises(CurrencyMismatch):
            is_upgrade(BASIC, euro, UpgradeRule.HIGHER_BASE_FEE)


class TestChangePlan:
    def test_upgrade_now_credits_the_old_and_charges_the_new(self) -> None:
        changed = change_plan(active(), PRO, utc(2024, 4, 11, 10), POLICY)
        sub = changed.subscription
        assert (changed.action, sub.status, sub.plan) == (Action.CHANGE_PLAN, S.ACTIVE, PRO)
        assert sub.period_fee == usd("60")
        assert changed.effects == (
            effect(EffectReason.UNUSED_TIME, BASIC, "-20", utc(2024, 4, 11, 10), APRIL[1]),
            effect(EffectReason.REMAINING_TIME, PRO, "40", utc(2024, 4, 11, 10), APRIL[1]),
        )
        assert changed.net == usd("20")

    def test_upgrade_of_an_odd_amount_keeps_pico_units(self) -> None:
        odd = plan("odd", "29.99")
        sub = start_subscription(odd, Anchor.CALENDAR, "UTC", utc(2024, 5, 1), POLICY).subscription
        changed = change_plan(sub, plan("odder", "49.99"), utc(2024, 5, 12), POLICY)
        # 20 of May's 31 days remain
        assert [e.amount for e in changed.effects] == [
            usd("-19.348387096774"),
            usd("32.251612903226"),
        ]

    def test_downgrade_waits_for_the_period_end(self) -> None:
        pro = active(PRO)
        changed = change_plan(pro, BASIC, utc(2024, 4, 11), POLICY)
        assert changed.effects == ()
        assert changed.subscription.plan == PRO
        assert changed.subscription.scheduled_plan == BASIC
        renewed = renew(changed.subscription, APRIL[1], POLICY)
        assert renewed.subscription.plan == BASIC
        assert renewed.subscription.scheduled_plan is None
        assert renewed.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "30", APRIL[1], utc(2024, 6, 1)),
        )

    def test_downgrade_now_when_asked(self) -> None:
        changed = change_plan(active(PRO), BASIC, utc(2024, 4, 11), POLICY, ChangeTiming.NOW)
        assert [e.amount for e in changed.effects] == [usd("-40"), usd("20")]
        policy = SubscriptionPolicy(downgrade_timing=ChangeTiming.NOW)
        assert change_plan(active(PRO), BASIC, utc(2024, 4, 11), policy).net == usd("-20")

    def test_upgrade_at_period_end_when_asked(self) -> None:
        changed = change_plan(active(), PRO, utc(2024, 4, 11), POLICY, ChangeTiming.PERIOD_END)
        assert changed.effects == ()
        assert changed.subscription.scheduled_plan == PRO

    def test_any_price_increase_rule_makes_an_upgrade_immediate(self) -> None:
        old = plan("old", "30", api_calls="0.001")
        new = plan("new", "30", api_calls="0.002")
        policy = SubscriptionPolicy(upgrade_rule=UpgradeRule.ANY_PRICE_INCREASE)
        assert change_plan(active(old), new, utc(2024, 4, 11), policy).subscription.plan == new
        assert change_plan(active(old), new, utc(2024, 4, 11), POLICY).subscription.plan == old

    def test_upgrade_to_another_interval_restarts_the_cycle(self) -> None:
        sub = active(anchor=Anchor.ANNIVERSARY)
        changed = change_plan(sub, YEARLY_PRO, utc(2024, 4, 11, 10), POLICY)
        after = changed.subscription
        assert after.terms.interval is Interval.YEAR
        assert after.terms.starts_at == utc(2024, 4, 11, 10)
        assert changed.effects == (
            effect(EffectReason.UNUSED_TIME, BASIC, "-20", utc(2024, 4, 11, 10), APRIL[1]),
            effect(
                EffectReason.PERIOD_FEE, YEARLY_PRO, "400", utc(2024, 4, 11, 10), utc(2025, 4, 11)
            ),
        )

    def test_upgrade_to_a_calendar_year_prorates_the_stub(self) -> None:
        changed = change_plan(active(), YEARLY_PRO, utc(2024, 4, 11), POLICY)
        # 265 of 2024's 366 days remain: 400 - R(400 * 101/366)
        assert [e.amount for e in changed.effects] == [usd("-20"), usd("289.617486338798")]
        period = changed.subscription.current_period
        assert period is not None
        assert (period.start, period.end) == (utc(2024, 4, 11), utc(2025, 1, 1))

    def test_scheduled_downgrade_to_another_interval_restarts_at_period_end(self) -> None:
        sub = active(anchor=Anchor.ANNIVERSARY)
        scheduled = change_plan(sub, YEARLY, utc(2024, 4, 11), POLICY).subscription
        renewed = renew(scheduled, APRIL[1], POLICY)
        assert renewed.subscription.terms.interval is Interval.YEAR
        assert renewed.effects == (
            effect(EffectReason.PERIOD_FEE, YEARLY, "300", APRIL[1], utc(2025, 5, 1)),
        )

    def test_while_trialing_the_plan_switches_with_nothing_billed(self) -> None:
        trialing = active(trial_days=10)
        changed = change_plan(trialing, YEARLY_PRO, utc(2024, 4, 3), POLICY)
        assert changed.effects == ()
        assert changed.subscription.plan == YEARLY_PRO
        assert changed.subscription.terms.interval is Interval.YEAR
        ended = end_trial(changed.subscription, utc(2024, 4, 11), POLICY)
        assert ended.subscription.plan == YEARLY_PRO
        assert ended.net == usd("289.617486338798")

    def test_while_paused_the_resume_charges_the_new_plan(self) -> None:
        paused = pause(active(), utc(2024, 4, 11), POLICY).subscription
        changed = change_plan(paused, PRO, utc(2024, 4, 16), POLICY)
        assert changed.effects == ()
        resumed = resume(changed.subscription, utc(2024, 4, 21), POLICY)
        assert resumed.effects == (
            effect(EffectReason.REMAINING_TIME, PRO, "20", utc(2024, 4, 21), APRIL[1]),
        )

    def test_a_change_of_currency_is_refused(self) -> None:
        euro = Plan(PlanId("plan_eur"), Money.parse("90", "EUR"), Interval.MONTH)
        with pytest.raises(InvalidPlanChange) as caught:
            change_plan(active(), euro, utc(2024, 4, 11), POLICY)
        assert caught.value.status == 422

    def test_a_negative_base_fee_is_refused(self) -> None:
        with pytest.raises(InvalidPlanChange):
            plan("bad", "-1")


class TestRenew:
    def test_the_next_period_is_charged(self) -> None:
        renewed = renew(active(), APRIL[1], POLICY)
        assert (renewed.action, renewed.subscription.status) == (Action.RENEW, S.ACTIVE)
        assert renewed.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "30", APRIL[1], utc(2024, 6, 1)),
        )

    def test_a_late_renewal_advances_one_period(self) -> None:
        renewed = renew(active(), utc(2024, 6, 15), POLICY)
        period = renewed.subscription.current_period
        assert period is not None
        assert period.start == APRIL[1]

    def test_not_before_the_period_ends(self) -> None:
        with pytest.raises(BillingPeriodNotOver) as caught:
            renew(active(), APRIL[1] - timedelta(microseconds=1), POLICY)
        assert (caught.value.status, caught.value.code) == (409, "billing_period_not_over")

    def test_a_fixed_term_prorates_its_last_period_then_ends(self) -> None:
        sub = active(ends_at=utc(2024, 6, 11))
        may = renew(sub, APRIL[1], POLICY)
        assert may.net == usd("30")
        june = renew(may.subscription, utc(2024, 6, 1), POLICY)
        assert june.effects == (
            effect(EffectReason.PERIOD_FEE, BASIC, "10", utc(2024, 6, 1), utc(2024, 6, 11)),
        )
        ended = renew(june.subscription, utc(2024, 6, 11), POLICY)
        assert ended.subscription.status is S.ENDED
        assert ended.subscription.ended_at == utc(2024, 6, 11)
        assert ended.effects == ()

    def test_a_paused_fixed_term_ends_too(self) -> None:
        paused = pause(active(ends_at=APRIL[1]), utc(2024, 4, 11), POLICY).subscription
        assert renew(paused, APRIL[1], POLICY).subscription.status is S.ENDED


# -- every transition, valid and invalid ---------------------------------------------------------


def in_status(status: SubscriptionStatus) -> Subscription:
    sub = active(trial_days=10) if status is S.TRIALING else active(ends_at=APRIL[1])
    if status is S.PAST_DUE:
        sub = mark_past_due(sub, utc(2024, 4, 3)).subscription
    elif status is S.PAUSED:
        sub = pause(sub, utc(2024, 4, 11), POLICY).subscription
    elif status is S.CANCELED:
        sub = cancel(sub, utc(2024, 4, 11), POLICY).subscription
    elif status is S.ENDED:
        sub = renew(sub, APRIL[1], POLICY).subscription
    assert sub.status is status
    return sub


AT = utc(2024, 4, 20)
ACTIONS: dict[Action, Callable[[Subscription], Transition]] = {
    Action.END_TRIAL: lambda sub: end_trial(sub, utc(2024, 4, 11), POLICY),
    Action.MARK_PAST_DUE: lambda sub: mark_past_due(sub, AT),
    Action.RECOVER_PAYMENT: lambda sub: recover_payment(sub, AT),
    Action.PAUSE: lambda sub: pause(sub, AT, POLICY),
    Action.RESUME: lambda sub: resume(sub, AT, POLICY),
    Action.CANCEL_NOW: lambda sub: cancel(sub, AT, POLICY),
    Action.CANCEL_AT_PERIOD_END: lambda sub: cancel(sub, AT, POLICY, ChangeTiming.PERIOD_END),
    Action.CHANGE_PLAN: lambda sub: change_plan(sub, PRO, AT, POLICY),
    Action.RENEW: lambda sub: renew(sub, APRIL[1], POLICY),
}
ALL_CASES = [(status, action) for status in SubscriptionStatus for action in Action]


def _allowed_from(action: Action) -> set[SubscriptionStatus]:
    return {before for before, _ in TRANSITIONS[action]}


def test_every_action_has_a_function_and_a_table_entry() -> None:
    assert set(ACTIONS) == set(Action) == set(TRANSITIONS)


@pytest.mark.parametrize(
    ("status", "action"), [c for c in ALL_CASES if c[0] in _allowed_from(c[1])]
)
def test_valid_transitions(status: SubscriptionStatus, action: Action) -> None:
    result = ACTIONS[action](in_status(status))
    assert result.action is action
    assert result.previous_status is status
    assert (status, result.subscription.status) in TRANSITIONS[action]


@pytest.mark.parametrize(
    ("status", "action"), [c for c in ALL_CASES if c[0] not in _allowed_from(c[1])]
)
def test_invalid_transitions(status: SubscriptionStatus, action: Action) -> None:
    with pytest.raises(InvalidSubscriptionTransition) as caught:
        ACTIONS[action](in_status(status))
    error = caught.value
    assert (error.status, error.code) == (409, "invalid_subscription_transition")
    assert (error.action, error.from_status) == (action, status)
    assert (status, error.to_status) not in TRANSITIONS[action]
    problem = error.to_problem()
    assert problem["from_status"] == status.value
    assert problem["to_status"] == error.to_status.value
    assert f"{status.value} -> {error.to_status.value}" in problem["detail"]


def test_the_documented_state_graph() -> None:
    graph = {(a, b) for pairs in TRANSITIONS.values() for a, b in pairs if a is not b}
    assert graph == {
        (S.TRIALING, S.ACTIVE),
        (S.TRIALING, S.CANCELED),
        (S.ACTIVE, S.PAST_DUE),
        (S.PAST_DUE, S.ACTIVE),
        (S.ACTIVE, S.PAUSED),
        (S.PAUSED, S.ACTIVE),
        (S.ACTIVE, S.CANCELED),
        (S.PAST_DUE, S.CANCELED),
        (S.PAUSED, S.CANCELED),
        (S.ACTIVE, S.ENDED),
        (S.PAST_DUE, S.ENDED),
        (S.PAUSED, S.ENDED),
    }
    assert not any(a in (S.CANCELED, S.ENDED) for pairs in TRANSITIONS.values() for a, _ in pairs)


def test_pause_from_past_due_names_from_and_to() -> None:
    with pytest.raises(InvalidSubscriptionTransition, match=r"past_due -> paused"):
        pause(in_status(S.PAST_DUE), AT, POLICY)


# -- properties: what is billed over a period ----------------------------------------------------

TZS = ["UTC", "Europe/Paris", "America/New_York", "Pacific/Kiritimati"]
pico_fees = st.integers(1, 10**20)


def _sum(transitions: list[Transition]) -> Money:
    total = usd("0")
    for transition in transitions:
        total = total + transition.net
    return total


def _cuts(data: st.DataObject, start: datetime, end: datetime, max_size: int) -> list[datetime]:
    span = (end - start) // timedelta(microseconds=1)
    offsets = data.draw(st.lists(st.integers(1, span - 1), max_size=max_size, unique=True))
    return [start + timedelta(microseconds=o) for o in sorted(offsets)]


@FAST
@given(
    st.sampled_from(TZS),
    st.sampled_from(ProrationGranularity),
    st.lists(pico_fees, min_size=1, max_size=6),
    st.data(),
)
def test_plan_changes_over_a_period_bill_each_plan_for_its_piece(
    tz: str, granularity: ProrationGranularity, fees: list[int], data: st.DataObject
) -> None:
    policy = SubscriptionPolicy(proration_granularity=granularity)
    plans = [
        Plan(PlanId(f"plan_{i}"), Money(f, usd("0").currency), Interval.MONTH)
        for i, f in enumerate(fees)
    ]
    started = start_subscription(plans[0], Anchor.CALENDAR, tz, local(tz, 2024, 3, 1), policy)
    period = started.subscription.current_period
    assert period is not None
    cuts = _cuts(data, period.start, period.end, len(plans) - 1)
    transitions, sub = [started], started.subscription
    for new_plan, at in zip(plans[1:], cuts, strict=False):
        changed = change_plan(sub, new_plan, at, policy, ChangeTiming.NOW)
        transitions.append(changed)
        sub = changed.subscription
    bounds = [period.start, *cuts, period.end]
    pieces = [
        amount_between(p.base_fee, period, a, b, tz, granularity)
        for p, a, b in zip(plans, bounds, bounds[1:], strict=False)
    ]
    assert _sum(transitions).amount == sum(piece.amount for piece in pieces)


@FAST
@given(
    st.sampled_from(TZS),
    st.sampled_from(ProrationGranularity),
    pico_fees,
    st.integers(1, 8),
    st.data(),
)
def test_charges_and_credits_over_any_split_add_up_to_the_fee(
    tz: str, granularity: ProrationGranularity, fee: int, changes: int, data: st.DataObject
) -> None:
    """Switching between plans of the same fee, at any instants, bills exactly the fee."""
    policy = SubscriptionPolicy(proration_granularity=granularity)
    currency = usd("0").currency
    plans = [Plan(PlanId(f"plan_{i % 2}"), Money(fee, currency), Interval.MONTH) for i in range(9)]
    started = start_subscription(plans[0], Anchor.ANNIVERSARY, tz, local(tz, 2024, 10, 5), policy)
    period = started.subscription.current_period
    assert period is not None
    transitions, sub = [started], started.subscription
    for new_plan, at in zip(
        plans[1:], _cuts(data, period.start, period.end, changes), strict=False
    ):
        changed = change_plan(sub, new_plan, at, policy, ChangeTiming.NOW)
        transitions.append(changed)
        sub = changed.subscription
    assert _sum(transitions) == Money(fee, currency)


@FAST
@given(
    st.sampled_from(TZS),
    st.sampled_from(ProrationGranularity),
    pico_fees,
    st.data(),
)
def test_paused_time_is_never_billed(
    tz: str, granularity: ProrationGranularity, fee: int, data: st.DataObject
) -> None:
    policy = SubscriptionPolicy(proration_granularity=granularity)
    basic = Plan(PlanId("plan_x"), Money(fee, usd("0").currency), Interval.MONTH)
    started = start_subscription(basic, Anchor.CALENDAR, tz, local(tz, 2024, 11, 1), policy)
    period = started.subscription.current_period
    assert period is not None
    cuts = _cuts(data, period.start, period.end, 6)
    transitions, sub = [started], started.subscription
    for i, at in enumerate(cuts):
        step = pause if i % 2 == 0 else resume
        transitions.append(step(sub, at, policy))
        sub = transitions[-1].subscription
    if len(cuts) % 2:
        cuts.append(period.end)  # still paused when the period ends
    paused_spans = list(zip(cuts[::2], cuts[1::2], strict=True))
    unbilled = sum(
        amount_between(basic.base_fee, period, a, b, tz, granularity).amount
        for a, b in paused_spans
    )
    assert _sum(transitions).amount == fee - unbilled
