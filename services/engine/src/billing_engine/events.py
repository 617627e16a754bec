"""Topics the engine service produces and consumes.

Produced, keyed by the customer id (a test clock's own event by the clock id):

- `billing.engine.period_closing` (`PERIOD_CLOSING`, declared in billing-common `cycle`
  beside the saga's vocabulary, so that its consumers need not import the engine): a
  subscription's period ended on its customer's clock; the first step of the close saga.
  Re-emitted with the same `saga_id` (and the same data) when the saga is not finished
  within the timeout.
- `billing.subscriptions.trial_end_requested` (a command subscriptions declares): a
  trial's end passed on the customer's clock.
- `billing.engine.test_clock_advanced`: a test clock moved forward.

Consumed: subscriptions (each one's current period, status, plan, revision), customers
(which exist, to attach them to clocks), and finalized invoices (which end a saga).
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime

from billing_common.cycle import PERIOD_CLOSING, PeriodClosing
from billing_common.events import EventData, Topic
from billing_common.ids import TestClockId
from billing_customers.events import CUSTOMER_CREATED
from billing_invoicing.events import INVOICE_FINALIZED
from billing_subscriptions.events import (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    TRIAL_END_REQUESTED,
)


class TestClockAdvanced(EventData):
    """A test clock's frozen time moved from `previous_time` to `frozen_time`: every period
    of its customers' subscriptions that ends by then will close, in order."""

    __test__ = False  # not a pytest test class

    test_clock_id: TestClockId
    previous_time: AwareDatetime
    frozen_time: AwareDatetime
    advanced_at: AwareDatetime


TEST_CLOCK_ADVANCED = Topic(
    "engine",
    "test_clock_advanced",
    TestClockAdvanced,
    "A test clock moved forward; the engine closes every period it passed.",
)

PRODUCES: tuple[Topic[Any], ...] = (PERIOD_CLOSING, TRIAL_END_REQUESTED, TEST_CLOCK_ADVANCED)

CONSUMES: tuple[Topic[Any], ...] = (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    CUSTOMER_CREATED,
    INVOICE_FINALIZED,
)

__all__ = [
    "CONSUMES",
    "PERIOD_CLOSING",
    "PRODUCES",
    "TEST_CLOCK_ADVANCED",
    "PeriodClosing",
    "TestClockAdvanced",
]
