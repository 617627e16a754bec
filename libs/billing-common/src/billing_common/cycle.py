"""The billing cycle's shared vocabulary: the saga id and the period a cycle step is about.

A period's close runs as a saga of events, one step per service (ARCHITECTURE.md §2):

    engine      billing.engine.period_closing            a subscription's period ended
    metering    billing.metering.period_usage_computed   its usage, per meter and group
    rating      billing.rating.period_rated              rated lines (rate_all)
    invoicing   billing.invoicing.invoice_finalized      the invoice of that period

Every step carries the `saga_id`, a deterministic id of (subscription, period start), so
each step is idempotent per period: a repeated or retried step finds its earlier result,
and a period is never invoiced twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.events import EventData, Topic
from billing_common.ids import CustomerId, TestClockId

_NAMESPACE = uuid.UUID("6f1d7c52-8a63-4b0e-9d3c-2f9c3b1e4a71")


def saga_id(subscription_id: str, period_start: datetime) -> uuid.UUID:
    """The id of the cycle close of one subscription's period (the same everywhere)."""
    if period_start.tzinfo is None:
        raise ValueError("period_start must be timezone-aware")
    instant = period_start.astimezone(UTC).isoformat()
    return uuid.uuid5(_NAMESPACE, f"{subscription_id}/{instant}")


class CyclePeriod(EventData):
    """What every step of a period's close carries."""

    saga_id: uuid.UUID
    subscription_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    period_start: AwareDatetime
    period_end: AwareDatetime


class PeriodClosing(CyclePeriod):
    """A subscription's billing period ended (on the real clock or its test clock).

    `subscription_revision` is the revision of the subscription the engine saw when
    the period ended: invoicing bills the effects recorded up to it.
    """

    subscription_revision: int = Field(ge=1)
    currency: Currency
    closed_at: AwareDatetime = Field(description="the clock's time when the close began")
    test_clock_id: str | None = None


PERIOD_CLOSING = Topic(
    "engine",
    "period_closing",
    PeriodClosing,
    "A subscription's period ended: metering computes its usage, subscriptions renews it.",
)
"""Produced by the engine (declared here, as the saga's first step, so that the services
that consume it need not import the engine, whose events import theirs)."""


class TestClockCustomerAttached(EventData):
    """A customer was attached to a test clock: from `attached_at` on (the real time), it
    lives on the clock's time, `frozen_time` at the attachment, for good."""

    __test__ = False  # not a pytest test class

    test_clock_id: TestClockId
    customer_id: CustomerId
    frozen_time: AwareDatetime
    attached_at: AwareDatetime


class TestClockAdvanced(EventData):
    """A test clock's frozen time moved from `previous_time` to `frozen_time`: every period
    of its customers' subscriptions that ends by then will close, in order."""

    __test__ = False  # not a pytest test class

    test_clock_id: TestClockId
    previous_time: AwareDatetime
    frozen_time: AwareDatetime
    advanced_at: AwareDatetime


TEST_CLOCK_CUSTOMER_ATTACHED = Topic(
    "engine",
    "test_clock_customer_attached",
    TestClockCustomerAttached,
    "A customer was attached to a test clock: it lives on the clock's time from now on.",
)
TEST_CLOCK_ADVANCED = Topic(
    "engine",
    "test_clock_advanced",
    TestClockAdvanced,
    "A test clock moved forward; the engine closes every period it passed.",
)
