"""The public API shapes of subscriptions (validated by the gateway and by the service)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from billing_common.currency import Currency
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_common.money import MoneyPublic
from billing_pricing.schemas import CouponId
from billing_subscriptions.domain import SubscriptionStatus
from billing_subscriptions.periods import Anchor, Interval
from billing_subscriptions.policy import ChangeTiming, SubscriptionPolicy

ExternalId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
PlanVersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
TrialDays = Annotated[int, Field(ge=0, le=3650)]

#: The most coupons one subscription carries.
MAX_COUPONS = 5


class SubscriptionCreate(BaseModel):
    """`POST /v1/subscriptions`."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    plan_id: PlanId
    plan_version: PlanVersionNumber | None = Field(
        default=None, description="The plan version to subscribe to; the latest when absent"
    )
    start: Literal["now"] | AwareDatetime | date = Field(
        default="now",
        union_mode="left_to_right",
        description="`now`, an instant (ISO 8601 with offset), or a date: that day's "
        "midnight in the customer's timezone",
    )
    billing_anchor: Anchor = Field(
        default=Anchor.CALENDAR,
        description="`calendar`: periods start on the 1st (Monday, quarter, Jan 1st); "
        "`anniversary`: on the start date",
    )
    trial_days: TrialDays | None = Field(
        default=None, description="Overrides the plan version's trial days (0: no trial)"
    )
    external_id: ExternalId | None = Field(
        default=None, description="Your id for this subscription; unique per tenant"
    )
    coupons: list[CouponId] = Field(
        default_factory=list,
        max_length=MAX_COUPONS,
        description="Coupons (`POST /v1/coupons`) discounting its invoices from its first "
        "period, applied in pricing's order (percentages, then fixed amounts); each once",
    )

    @field_validator("coupons")
    @classmethod
    def _each_once(cls, coupons: list[CouponId]) -> list[CouponId]:
        if len(set(coupons)) != len(coupons):
            raise ValueError("a coupon can be given once")
        return coupons


class SubscriptionCouponResource(BaseModel):
    """A coupon a subscription carries, from its billing period `start_period` on (0: the
    first)."""

    model_config = ConfigDict(frozen=True)

    coupon_id: CouponId
    code: str
    start_period: int


class SubscriptionCancel(BaseModel):
    """`POST /v1/subscriptions/{subscription_id}/cancel`."""

    model_config = ConfigDict(extra="forbid")

    at: ChangeTiming = Field(
        default=ChangeTiming.NOW,
        description="`now` (crediting the unused rest of a paid period, as the policy "
        "says) or `period_end`",
    )


class SubscriptionChangePlan(BaseModel):
    """`POST /v1/subscriptions/{subscription_id}/change_plan`."""

    model_config = ConfigDict(extra="forbid")

    plan_id: PlanId
    plan_version: PlanVersionNumber | None = Field(
        default=None, description="The plan version to move to; the latest when absent"
    )
    when: ChangeTiming | None = Field(
        default=None,
        description="`now` or `period_end`; absent, upgrades apply now and downgrades as "
        "the tenant's policy says",
    )


class Subscription(BaseModel):
    """A subscription as the API returns it. Amounts are in major units."""

    model_config = ConfigDict(frozen=True)

    object: Literal["subscription"] = "subscription"
    id: SubscriptionId
    customer_id: CustomerId
    external_id: str | None
    status: SubscriptionStatus
    currency: Currency
    plan_id: PlanId
    plan_version: int
    base_fee: MoneyPublic = Field(description="The plan version's fee per full period")
    interval: Interval
    billing_anchor: Anchor
    timezone: str = Field(description="The customer's timezone when the subscription began")
    billing_starts_at: AwareDatetime = Field(
        description="When billing starts (after any trial); periods are cut from it"
    )
    current_period_start: AwareDatetime | None
    current_period_end: AwareDatetime | None
    current_period_fee: MoneyPublic | None = Field(
        description="What the current period costs on the current plan"
    )
    trial_end: AwareDatetime | None
    cancel_at_period_end: bool
    cancel_at: AwareDatetime | None = Field(
        description="When a cancellation at period end takes effect"
    )
    scheduled_plan_id: PlanId | None
    scheduled_plan_version: int | None
    paused_at: AwareDatetime | None
    canceled_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    coupons: list[SubscriptionCouponResource] = Field(
        default_factory=list, description="Its coupons, in the order they were attached"
    )
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SubscriptionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Subscription]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class SubscriptionListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: SubscriptionId | None = None
    customer_id: CustomerId | None = None
    status: SubscriptionStatus | None = None


class SubscriptionPolicyResource(SubscriptionPolicy):
    """`GET /v1/subscription_policy`: the tenant's policy (the defaults until it sets one).

    `PUT` takes the same fields without `object`; a field left out takes its default.
    """

    object: Literal["subscription_policy"] = "subscription_policy"

    @classmethod
    def of(cls, policy: SubscriptionPolicy) -> SubscriptionPolicyResource:
        return cls(**policy.model_dump())
