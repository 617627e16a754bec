"""Topics the subscriptions service produces and consumes.

Produced, keyed by the customer id (so one customer's subscription events stay in
order), amounts in the wire form (`MoneyWire`, pico-units as a string):

- `subscription_created` and `subscription_updated` carry the whole subscription after
  the fact (event-carried state transfer), its coupons with the period each starts at
  included; an update also says which transition made it.
- `billing_effects_recorded` carries what a transition bills: the domain's
  `BillingEffect`s (charges positive, credits negative, exact pico-units), each with its
  service span, reason and plan version. Invoicing bills them; `base_fee_timing` says
  whether a fee goes on the invoice when its service starts (`in_advance`) or after it
  ends (`in_arrears`). Written only when a transition moves money.

Every event carries the subscription's `revision` (1 at creation, +1 per change), so a
consumer can tell a stale snapshot from a fresh one.

Consumed: plan versions and coupons from pricing and customers from customers (see
`projections`), and the billing clock's steps (see `cycle`):
`billing.engine.period_closing` renews the subscription whose period ended, and the
command `trial_end_requested` (which the engine sends when a trial's end passes on the
customer's clock) ends its trial.

Test clocks: the engine's `test_clock_customer_attached` and `test_clock_advanced` (declared
here, see below) tell which customers live on a test clock and its time; a command on such
a customer's subscription happens at the clock's time (see `clocks`).
"""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.cycle import PERIOD_CLOSING
from billing_common.events import EventData, Topic
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_common.money import MoneyWire
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_pricing.events import COUPON_CREATED, PLAN_PUBLISHED
from billing_pricing.schemas import CouponId, Timing
from billing_subscriptions.domain import Action, EffectReason, SubscriptionStatus
from billing_subscriptions.periods import Anchor, Interval

#: What changed a subscription: a domain `Action`, or `start` for its creation.
TransitionName = Literal[
    "start",
    "end_trial",
    "mark_past_due",
    "recover_payment",
    "pause",
    "resume",
    "cancel_now",
    "cancel_at_period_end",
    "change_plan",
    "renew",
]
START = "start"
assert set(get_args(TransitionName)) == {START, *(a.value for a in Action)}


def transition_name(action: Action | None) -> TransitionName:
    """The name of what changed a subscription: `start` when no action did (its creation)."""
    return cast(TransitionName, START if action is None else action.value)


class SubscriptionCoupon(EventData):
    """A coupon a subscription carries: pricing's coupon (its terms are in pricing's
    `coupon_created`), from the subscription's billing period `start_period` on (0: its
    first period; periods are counted as invoicing bills them)."""

    coupon_id: CouponId
    code: str
    start_period: int = Field(ge=0)


class SubscriptionFields(EventData):
    """The whole subscription, as stored."""

    subscription_id: SubscriptionId
    customer_id: CustomerId
    external_id: str | None
    revision: int = Field(ge=1)
    status: SubscriptionStatus
    currency: Currency
    plan_id: PlanId
    plan_version: int = Field(ge=1)
    base_fee: MoneyWire
    base_fee_timing: Timing
    interval: Interval
    billing_anchor: Anchor
    timezone: str
    billing_starts_at: AwareDatetime
    ends_at: AwareDatetime | None
    current_period_start: AwareDatetime | None
    current_period_end: AwareDatetime | None
    current_period_fee: MoneyWire | None
    trial_end: AwareDatetime | None
    cancel_at_period_end: bool
    scheduled_plan_id: PlanId | None
    scheduled_plan_version: int | None
    paused_at: AwareDatetime | None
    canceled_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    coupons: list[SubscriptionCoupon] = Field(
        default_factory=list, description="its coupons, in the order they were attached"
    )
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SubscriptionCreated(SubscriptionFields):
    """A subscription began (trialing, or active with its first period charged)."""


class TransitionMade(EventData):
    """What was asked of the subscription, when, and the status before and after."""

    action: TransitionName
    from_status: SubscriptionStatus
    to_status: SubscriptionStatus
    at: AwareDatetime


class SubscriptionUpdated(SubscriptionFields):
    """A subscription changed: the whole subscription after the change, and the change."""

    transition: TransitionMade


class RecordedEffect(EventData):
    """One charge (positive) or credit (negative) for a service span on one plan version."""

    reason: EffectReason
    plan_id: PlanId
    plan_version: int = Field(ge=1)
    base_fee_timing: Timing
    amount: MoneyWire = Field(description="exact pico-units; rounded once, on the invoice line")
    service_start: AwareDatetime
    service_end: AwareDatetime


class BillingEffectsRecorded(EventData):
    """What one transition of a subscription bills; `net` is charges minus credits."""

    subscription_id: SubscriptionId
    customer_id: CustomerId
    revision: int = Field(ge=1)
    action: TransitionName
    at: AwareDatetime
    currency: Currency
    effects: list[RecordedEffect] = Field(min_length=1)
    net: MoneyWire


SUBSCRIPTION_CREATED = Topic(
    "subscriptions",
    "subscription_created",
    SubscriptionCreated,
    "A subscription was created; carries the whole subscription.",
)
SUBSCRIPTION_UPDATED = Topic(
    "subscriptions",
    "subscription_updated",
    SubscriptionUpdated,
    "A subscription changed (a transition of its state machine); carries the whole "
    "subscription after the change and the transition.",
)
BILLING_EFFECTS_RECORDED = Topic(
    "subscriptions",
    "billing_effects_recorded",
    BillingEffectsRecorded,
    "What a subscription's transition bills: charges and credits in pico-units, each for "
    "a service span of one plan version, for invoicing to bill.",
)


class TrialEndRequested(EventData):
    """The engine's clock (real, or the customer's test clock) passed a trial's end: end it.

    Acted on only while the subscription is still trialing with this `trial_end`, so a
    redelivery or a stale request does nothing.
    """

    subscription_id: SubscriptionId
    customer_id: CustomerId
    trial_end: AwareDatetime
    subscription_revision: int = Field(ge=1)
    requested_at: AwareDatetime = Field(description="the clock's time when the engine asked")
    test_clock_id: str | None = None


TRIAL_END_REQUESTED = Topic(
    "subscriptions",
    "trial_end_requested",
    TrialEndRequested,
    "The engine asks subscriptions to end a trial whose end passed on the customer's clock.",
    kind="command",
)


# -- test clocks (produced by the engine) -----------------------------------------------------
#
# Produced by the engine, declared in billing-common's `cycle` (its events import ours);
# subscriptions and invoicing follow test clocks through them.
from billing_common.cycle import (  # noqa: E402
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
)

PRODUCES: tuple[Topic[Any], ...] = (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BILLING_EFFECTS_RECORDED,
)

#: Plan versions (to subscribe to them), coupons (to check those a subscription asks for),
#: customers (their timezone and currency), the billing clock: period closes (renewals)
#: and trial ends, and test clocks (the time a customer on one lives on).
CONSUMES: tuple[Topic[Any], ...] = (
    PLAN_PUBLISHED,
    COUPON_CREATED,
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    PERIOD_CLOSING,
    TRIAL_END_REQUESTED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    TEST_CLOCK_ADVANCED,
)
