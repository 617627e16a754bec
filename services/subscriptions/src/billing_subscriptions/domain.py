"""The subscription state machine: one pure function per transition. No I/O, no clock.

```
            end_trial                 mark_past_due
 trialing ───────────► active ◄──────────────────────► past_due
     │                 │  ▲           recover_payment      │
     │           pause │  │ resume                         │
     │                 ▼  │                                │
     │                paused                               │
     │                 │                                   │
     └────────── cancel (now, or at period end) ───────────┴──► canceled
                 renew past a fixed term's end ───────────────► ended
```

Every function takes the subscription, the instant the change happens (`at`,
an aware datetime: the clock is an argument) and the tenant's
`SubscriptionPolicy`; it returns a `Transition`: the new subscription and the
`BillingEffect`s the change causes (what to charge or credit, for which plan
and service span). Invalid moves raise `InvalidSubscriptionTransition` (409,
`invalid_subscription_transition`, naming the action and `from -> to`).

Money rules (see `proration`):

- The base fee is billed **in advance**: a period's fee is charged when the
  period starts (`end_trial`, `renew`, `start_subscription` without trial).
- Mid-period changes are priced against what the current period costs on the
  current plan (`Subscription.period_fee`): the unused part after `at` is
  `fee - R(fee * used(at))`, so charges and credits over any split of a period
  add up to the period's fee to the pico-unit.
- **Pause credits the paused time; periods do not shift.** Pausing credits the
  unused rest of the current period; periods keep their dates while paused
  (`renew` advances them and charges nothing); resuming charges the rest of
  the period from the resume instant. Paused time is therefore never billed,
  and calendar and anniversary anchors stay where the customer expects them.
- An immediate change to a plan with another interval restarts the billing
  cycle at `at` (as Stripe does): the old plan's unused part is credited and a
  new period of the new interval starts and is charged.
- Fees only: usage is rated and billed in arrears by rating/invoicing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from billing_common.errors import Conflict, ValidationFailed
from billing_common.ids import PlanId
from billing_common.money import Money, sum_money
from billing_subscriptions.periods import (
    Anchor,
    BillingPeriod,
    Interval,
    InvalidSubscriptionTerms,
    SubscriptionTerms,
    next_period,
    period_containing,
    require_utc,
    zone,
)
from billing_subscriptions.policy import ChangeTiming, SubscriptionPolicy, UpgradeRule
from billing_subscriptions.proration import period_fee, prorate, remaining_amount

__all__ = [
    "TRANSITIONS",
    "Action",
    "BillingEffect",
    "BillingPeriodNotOver",
    "EffectReason",
    "InstantOutsideCurrentPeriod",
    "InvalidPlanChange",
    "InvalidSubscriptionTransition",
    "Plan",
    "Subscription",
    "SubscriptionStatus",
    "Transition",
    "cancel",
    "change_plan",
    "end_trial",
    "is_upgrade",
    "mark_past_due",
    "pause",
    "recover_payment",
    "renew",
    "resume",
    "start_subscription",
]


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"
    ENDED = "ended"
    """A fixed term ran to its end."""


class Action(StrEnum):
    """What was asked of a subscription; one transition function each."""

    END_TRIAL = "end_trial"
    MARK_PAST_DUE = "mark_past_due"
    RECOVER_PAYMENT = "recover_payment"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL_NOW = "cancel_now"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    CHANGE_PLAN = "change_plan"
    RENEW = "renew"


_S = SubscriptionStatus
_LIVE = (_S.TRIALING, _S.ACTIVE, _S.PAST_DUE, _S.PAUSED)

#: Every allowed `(from, to)` per action. Anything else is `InvalidSubscriptionTransition`.
TRANSITIONS: Mapping[Action, frozenset[tuple[SubscriptionStatus, SubscriptionStatus]]] = (
    MappingProxyType(
        {
            Action.END_TRIAL: frozenset({(_S.TRIALING, _S.ACTIVE), (_S.TRIALING, _S.CANCELED)}),
            Action.MARK_PAST_DUE: frozenset({(_S.ACTIVE, _S.PAST_DUE)}),
            Action.RECOVER_PAYMENT: frozenset({(_S.PAST_DUE, _S.ACTIVE)}),
            Action.PAUSE: frozenset({(_S.ACTIVE, _S.PAUSED)}),
            Action.RESUME: frozenset({(_S.PAUSED, _S.ACTIVE)}),
            Action.CANCEL_NOW: frozenset((s, _S.CANCELED) for s in _LIVE),
            Action.CANCEL_AT_PERIOD_END: frozenset((s, s) for s in _LIVE),
            Action.CHANGE_PLAN: frozenset((s, s) for s in (_S.TRIALING, _S.ACTIVE, _S.PAUSED)),
            Action.RENEW: frozenset(
                (s, to)
                for s in (_S.ACTIVE, _S.PAST_DUE, _S.PAUSED)
                for to in (s, _S.CANCELED, _S.ENDED)
            ),
        }
    )
)


class InvalidSubscriptionTransition(Conflict):
    """The subscription's status does not allow what was asked."""

    code = "invalid_subscription_transition"
    title = "Invalid subscription transition"

    def __init__(
        self, action: Action, from_status: SubscriptionStatus, to_status: SubscriptionStatus
    ) -> None:
        super().__init__(
            f"cannot {action.value.replace('_', ' ')} a {from_status.value} subscription "
            f"({from_status.value} -> {to_status.value})",
            action=action.value,
            from_status=from_status.value,
            to_status=to_status.value,
        )
        self.action = action
        self.from_status = from_status
        self.to_status = to_status


class InstantOutsideCurrentPeriod(Conflict):
    """A mid-period change at an instant the current period does not contain."""

    code = "instant_outside_current_period"
    title = "Instant outside the current billing period"


class BillingPeriodNotOver(Conflict):
    code = "billing_period_not_over"
    title = "The billing period is not over"


class InvalidPlanChange(ValidationFailed):
    code = "invalid_plan_change"
    title = "Invalid plan change"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a subscription pays: a base fee per `interval`, and usage prices by key.

    Only the base fee is billed here; `usage_prices` (price per unit, keyed by
    meter or price id) serve to recognise upgrades under `any_price_increase`.
    """

    plan_id: PlanId
    base_fee: Money
    interval: Interval
    usage_prices: Mapping[str, Money] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", Interval(self.interval))
        object.__setattr__(self, "usage_prices", MappingProxyType(dict(self.usage_prices)))
        if self.base_fee.is_negative():
            raise InvalidPlanChange(f"a base fee cannot be negative: {self.base_fee}")

    def annual_base_fee(self) -> Money:
        """The base fee per year (52 weeks, 12 months, 4 quarters), to compare plans."""
        return self.base_fee * self.interval.per_year


class EffectReason(StrEnum):
    PERIOD_FEE = "period_fee"
    """A period's fee, charged in advance when the period starts."""
    REMAINING_TIME = "remaining_time"
    """A charge for the rest of the current period (new plan, resume)."""
    UNUSED_TIME = "unused_time"
    """A credit for the unused rest of the current period (old plan, cancel, pause)."""


@dataclass(frozen=True, slots=True)
class BillingEffect:
    """Something to bill: `amount` is positive for a charge, negative for a credit.

    Amounts are exact pico-units; the invoice line rounds them to the minor unit.
    """

    reason: EffectReason
    plan_id: PlanId
    amount: Money
    service_start: datetime
    service_end: datetime

    @property
    def is_credit(self) -> bool:
        return self.amount.is_negative()


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription's state. Changed only through the transition functions.

    `current_period` is None while trialing. `period_fee` is what the current
    period costs on the current plan (charged in advance unless paused); credits
    and charges for mid-period changes are fractions of it.
    """

    status: SubscriptionStatus
    plan: Plan
    terms: SubscriptionTerms
    current_period: BillingPeriod | None = None
    period_fee: Money | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    scheduled_plan: Plan | None = None
    paused_at: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of an action: the new state, and what to charge or credit for it."""

    action: Action | None
    previous_status: SubscriptionStatus | None
    subscription: Subscription
    effects: tuple[BillingEffect, ...]
    at: datetime

    @property
    def net(self) -> Money:
        """Charges minus credits, exact."""
        return sum_money((e.amount for e in self.effects), self.subscription.plan.base_fee.currency)


# -- helpers ----------------------------------------------------------------------------------


def _check(sub: Subscription, action: Action, to: SubscriptionStatus) -> None:
    if (sub.status, to) not in TRANSITIONS[action]:
        raise InvalidSubscriptionTransition(action, sub.status, to)


def _done(
    action: Action | None,
    before: Subscription | None,
    after: Subscription,
    at: datetime,
    *effects: BillingEffect,
) -> Transition:
    """The transition, keeping only effects that move money."""
    kept = tuple(e for e in effects if not e.amount.is_zero())
    return Transition(action, None if before is None else before.status, after, kept, at)


def _current(sub: Subscription) -> tuple[BillingPeriod, Money]:
    assert sub.current_period is not None, sub.status
    assert sub.period_fee is not None, sub.status
    return sub.current_period, sub.period_fee


def _within_current_period(sub: Subscription, at: datetime) -> BillingPeriod:
    period, _ = _current(sub)
    if not period.contains(at):
        raise InstantOutsideCurrentPeriod(
            f"{at.isoformat()} is not in the current period "
            f"[{period.start.isoformat()}, {period.end.isoformat()}): renew it first",
            instant=at.isoformat(),
        )
    return period


def _unused_credit(sub: Subscription, at: datetime, policy: SubscriptionPolicy) -> BillingEffect:
    """The credit for the current plan's unused part of the current period from `at`."""
    period, fee = _current(sub)
    split = prorate(period, at, sub.terms.timezone, policy.proration_granularity)
    return BillingEffect(
        EffectReason.UNUSED_TIME, sub.plan.plan_id, -remaining_amount(fee, split), at, period.end
    )


def _remaining_charge(
    plan: Plan,
    period: BillingPeriod,
    fee: Money,
    at: datetime,
    timezone: str,
    policy: SubscriptionPolicy,
) -> BillingEffect:
    split = prorate(period, at, timezone, policy.proration_granularity)
    return BillingEffect(
        EffectReason.REMAINING_TIME, plan.plan_id, remaining_amount(fee, split), at, period.end
    )


def _period_charge(plan: Plan, period: BillingPeriod, fee: Money) -> BillingEffect:
    return BillingEffect(EffectReason.PERIOD_FEE, plan.plan_id, fee, period.start, period.end)


def _begin_period(
    plan: Plan, terms: SubscriptionTerms, at: datetime, policy: SubscriptionPolicy
) -> tuple[BillingPeriod, Money]:
    period = period_containing(terms, at)
    return period, period_fee(plan.base_fee, period, terms.timezone, policy)


def _restart_terms(terms: SubscriptionTerms, interval: Interval, at: datetime) -> SubscriptionTerms:
    """`terms` with a new interval, its cycle restarting at `at`."""
    if terms.ends_at is not None and at >= terms.ends_at:
        raise InvalidSubscriptionTerms("the fixed term is over")
    return replace(terms, interval=interval, starts_at=at)


# -- transitions ------------------------------------------------------------------------------


def start_subscription(
    plan: Plan,
    anchor: Anchor,
    timezone: str,
    at: datetime,
    policy: SubscriptionPolicy,
    *,
    trial_days: int = 0,
    ends_at: datetime | None = None,
) -> Transition:
    """A new subscription at `at`: trialing for `trial_days`, else active and charged.

    A trial ends `trial_days` local days later at the same wall-clock time in the
    customer's timezone; billing (and an anniversary anchor) starts then.
    `ends_at` makes a fixed term: the subscription is `ended` when it passes.
    """
    at = require_utc(at, "at")
    if trial_days < 0:
        raise InvalidSubscriptionTerms(f"trial_days cannot be negative: {trial_days}")
    tz = zone(timezone)
    if trial_days:
        trial_end = require_utc((at.astimezone(tz) + timedelta(days=trial_days)).astimezone(tz))
        terms = SubscriptionTerms(plan.interval, anchor, timezone, trial_end, ends_at)
        sub = Subscription(_S.TRIALING, plan, terms, trial_end=trial_end)
        return _done(None, None, sub, at)
    terms = SubscriptionTerms(plan.interval, anchor, timezone, at, ends_at)
    period, fee = _begin_period(plan, terms, at, policy)
    sub = Subscription(_S.ACTIVE, plan, terms, period, fee)
    return _done(None, None, sub, at, _period_charge(plan, period, fee))


def end_trial(sub: Subscription, at: datetime, policy: SubscriptionPolicy) -> Transition:
    """trialing -> active: the first period starts and is charged (calendar stubs prorated).

    Ended early (`at` before the trial's end), billing starts at `at` instead,
    and an anniversary anchor moves with it. Ended late (a lagging clock), the
    first period still starts at the trial's end. A subscription set to cancel
    at period end is canceled instead, with nothing to bill.
    """
    at = require_utc(at, "at")
    if sub.cancel_at_period_end:
        _check(sub, Action.END_TRIAL, _S.CANCELED)
        return _done(Action.END_TRIAL, sub, replace(sub, status=_S.CANCELED, canceled_at=at), at)
    _check(sub, Action.END_TRIAL, _S.ACTIVE)
    terms = sub.terms
    if at < terms.starts_at:
        terms = replace(terms, starts_at=at)
    period, fee = _begin_period(sub.plan, terms, terms.starts_at, policy)
    after = replace(sub, status=_S.ACTIVE, terms=terms, current_period=period, period_fee=fee)
    return _done(Action.END_TRIAL, sub, after, at, _period_charge(sub.plan, period, fee))


def mark_past_due(sub: Subscription, at: datetime) -> Transition:
    """active -> past_due: a payment failed. Nothing to bill; dunning takes over."""
    _check(sub, Action.MARK_PAST_DUE, _S.PAST_DUE)
    return _done(Action.MARK_PAST_DUE, sub, replace(sub, status=_S.PAST_DUE), require_utc(at))


def recover_payment(sub: Subscription, at: datetime) -> Transition:
    """past_due -> active: the overdue payment arrived."""
    _check(sub, Action.RECOVER_PAYMENT, _S.ACTIVE)
    return _done(Action.RECOVER_PAYMENT, sub, replace(sub, status=_S.ACTIVE), require_utc(at))


def pause(sub: Subscription, at: datetime, policy: SubscriptionPolicy) -> Transition:
    """active -> paused: the unused rest of the current period is credited."""
    _check(sub, Action.PAUSE, _S.PAUSED)
    at = require_utc(at, "at")
    _within_current_period(sub, at)
    after = replace(sub, status=_S.PAUSED, paused_at=at)
    return _done(Action.PAUSE, sub, after, at, _unused_credit(sub, at, policy))


def resume(sub: Subscription, at: datetime, policy: SubscriptionPolicy) -> Transition:
    """paused -> active: the rest of the current period from `at` is charged."""
    _check(sub, Action.RESUME, _S.ACTIVE)
    at = require_utc(at, "at")
    period = _within_current_period(sub, at)
    if sub.paused_at is not None and at < sub.paused_at:
        raise InstantOutsideCurrentPeriod(
            f"cannot resume at {at.isoformat()}, before the pause at {sub.paused_at.isoformat()}"
        )
    _, fee = _current(sub)
    charge = _remaining_charge(sub.plan, period, fee, at, sub.terms.timezone, policy)
    after = replace(sub, status=_S.ACTIVE, paused_at=None)
    return _done(Action.RESUME, sub, after, at, charge)


def cancel(
    sub: Subscription,
    at: datetime,
    policy: SubscriptionPolicy,
    when: ChangeTiming = ChangeTiming.NOW,
) -> Transition:
    """-> canceled now (crediting the unused rest of a paid period), or at period end.

    Now: an active or past-due subscription is credited the unused rest of the
    current period when `policy.prorate_on_cancel`; a paused one was credited
    when it paused; a trialing one owes nothing. At period end: the status stays
    and `renew` (or `end_trial`) cancels it when the period ends.
    """
    at = require_utc(at, "at")
    if ChangeTiming(when) is ChangeTiming.PERIOD_END:
        _check(sub, Action.CANCEL_AT_PERIOD_END, sub.status)
        after = replace(sub, cancel_at_period_end=True)
        return _done(Action.CANCEL_AT_PERIOD_END, sub, after, at)
    _check(sub, Action.CANCEL_NOW, _S.CANCELED)
    effects: list[BillingEffect] = []
    if sub.status in (_S.ACTIVE, _S.PAST_DUE):
        _within_current_period(sub, at)
        if policy.prorate_on_cancel:
            effects.append(_unused_credit(sub, at, policy))
    after = replace(sub, status=_S.CANCELED, canceled_at=at, scheduled_plan=None)
    return _done(Action.CANCEL_NOW, sub, after, at, *effects)


def is_upgrade(old: Plan, new: Plan, rule: UpgradeRule) -> bool:
    """Whether moving from `old` to `new` is an upgrade under `rule`.

    Base fees are compared per year (52 weeks, 12 months, 4 quarters), so a
    100/month plan is an upgrade from a 1000/year one (1200 > 1000).
    Plans in different currencies raise `CurrencyMismatch`.
    """
    if new.annual_base_fee() > old.annual_base_fee():
        return True
    if UpgradeRule(rule) is UpgradeRule.HIGHER_BASE_FEE:
        return False
    return any(
        key not in old.usage_prices or price > old.usage_prices[key]
        for key, price in new.usage_prices.items()
        if price.is_positive()
    )


def change_plan(
    sub: Subscription,
    new_plan: Plan,
    at: datetime,
    policy: SubscriptionPolicy,
    when: ChangeTiming | None = None,
) -> Transition:
    """Move to `new_plan`: an upgrade now, a downgrade as `policy.downgrade_timing` says.

    `when` overrides the policy. Now, on an active subscription: a credit for the
    old plan's unused rest of the period and a charge for the new plan's rest of
    it (or, if the interval changes, a new cycle starting at `at`, charged whole).
    At period end: the plan is scheduled and `renew` applies it. A trialing or
    paused subscription switches at once with nothing to bill.

    >>> from datetime import UTC, datetime
    >>> basic = Plan(PlanId("plan_basic"), Money.parse("30", "USD"), Interval.MONTH)
    >>> pro = Plan(PlanId("plan_pro"), Money.parse("60", "USD"), Interval.MONTH)
    >>> policy = SubscriptionPolicy()
    >>> april = datetime(2024, 4, 1, tzinfo=UTC)
    >>> sub = start_subscription(basic, Anchor.CALENDAR, "UTC", april, policy).subscription
    >>> upgraded = change_plan(sub, pro, datetime(2024, 4, 11, 10, tzinfo=UTC), policy)
    >>> [(e.reason.value, str(e.amount)) for e in upgraded.effects]
    [('unused_time', '-20 USD'), ('remaining_time', '40 USD')]
    """
    at = require_utc(at, "at")
    _check(sub, Action.CHANGE_PLAN, sub.status)
    if new_plan.base_fee.currency != sub.plan.base_fee.currency:
        raise InvalidPlanChange(
            f"cannot change from a {sub.plan.base_fee.currency.code} plan to a "
            f"{new_plan.base_fee.currency.code} one"
        )
    if sub.status is _S.TRIALING:
        terms = replace(sub.terms, interval=new_plan.interval)
        after = replace(sub, plan=new_plan, terms=terms, scheduled_plan=None)
        return _done(Action.CHANGE_PLAN, sub, after, at)
    if when is None:
        upgrade = is_upgrade(sub.plan, new_plan, policy.upgrade_rule)
        when = ChangeTiming.NOW if upgrade else policy.downgrade_timing
    if ChangeTiming(when) is ChangeTiming.PERIOD_END:
        return _done(Action.CHANGE_PLAN, sub, replace(sub, scheduled_plan=new_plan), at)
    period = _within_current_period(sub, at)
    terms = sub.terms
    effects: list[BillingEffect] = []
    if new_plan.interval is not terms.interval:
        terms = _restart_terms(terms, new_plan.interval, at)
        period, fee = _begin_period(new_plan, terms, at, policy)
        if sub.status is _S.ACTIVE:
            effects = [_unused_credit(sub, at, policy), _period_charge(new_plan, period, fee)]
    else:
        fee = period_fee(new_plan.base_fee, period, terms.timezone, policy)
        if sub.status is _S.ACTIVE:
            effects = [
                _unused_credit(sub, at, policy),
                _remaining_charge(new_plan, period, fee, at, terms.timezone, policy),
            ]
    after = replace(
        sub, plan=new_plan, terms=terms, current_period=period, period_fee=fee, scheduled_plan=None
    )
    return _done(Action.CHANGE_PLAN, sub, after, at, *effects)


def renew(sub: Subscription, at: datetime, policy: SubscriptionPolicy) -> Transition:
    """The current period ended: start the next one, or cancel, or end the fixed term.

    - set to cancel at period end: -> canceled, nothing billed;
    - a fixed term reaching its end: -> ended, nothing billed;
    - otherwise a scheduled plan change applies (a new interval restarts the
      cycle at the period end), the next period starts, and its fee is charged
      unless the subscription is paused. Past-due subscriptions keep being billed.

    `at` is when the engine renews; it must not be before the period's end.
    Each call advances one period.
    """
    at = require_utc(at, "at")
    if sub.status not in (_S.ACTIVE, _S.PAST_DUE, _S.PAUSED):
        _check(sub, Action.RENEW, sub.status)
    period, _ = _current(sub)
    if at < period.end:
        raise BillingPeriodNotOver(
            f"the current period ends at {period.end.isoformat()}, not before {at.isoformat()}",
            period_end=period.end.isoformat(),
        )
    if sub.cancel_at_period_end:
        _check(sub, Action.RENEW, _S.CANCELED)
        after = replace(sub, status=_S.CANCELED, canceled_at=period.end, scheduled_plan=None)
        return _done(Action.RENEW, sub, after, at)
    following = next_period(sub.terms, period)
    if following is None:
        _check(sub, Action.RENEW, _S.ENDED)
        return _done(Action.RENEW, sub, replace(sub, status=_S.ENDED, ended_at=period.end), at)
    _check(sub, Action.RENEW, sub.status)
    plan, terms = sub.plan, sub.terms
    if sub.scheduled_plan is not None:
        plan = sub.scheduled_plan
        if plan.interval is not terms.interval:
            terms = _restart_terms(terms, plan.interval, period.end)
    new_period, fee = _begin_period(plan, terms, period.end, policy)
    after = replace(
        sub, plan=plan, terms=terms, current_period=new_period, period_fee=fee, scheduled_plan=None
    )
    effects = () if sub.status is _S.PAUSED else (_period_charge(plan, new_period, fee),)
    return _done(Action.RENEW, sub, after, at, *effects)
