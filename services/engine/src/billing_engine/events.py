"""Topics the engine service produces and consumes.

Produced, keyed by the customer id (a test clock's own event by the clock id):

- `billing.engine.period_closing` (`PERIOD_CLOSING`, declared in billing-common `cycle`
  beside the saga's vocabulary, so that its consumers need not import the engine): a
  subscription's period ended on its customer's clock; the first step of the close saga.
  Re-emitted with the same `saga_id` (and the same data) when the saga is not finished
  within the timeout.
- `billing.subscriptions.trial_end_requested` (a command subscriptions declares): a
  trial's end passed on the customer's clock.
- `billing.engine.test_clock_customer_attached`: a customer was attached to a test clock
  (with the clock's frozen time then), written with the attachment.
- `billing.engine.test_clock_advanced`: a test clock moved forward (with its new frozen
  time), written with the move.

The two test clock topics are declared in billing-subscriptions' `events` (the engine's
events import subscriptions', so the services that follow test clocks could not import
them from here); subscriptions and invoicing project them to live on a clock's time.

Consumed: subscriptions (each one's current period, status, plan, revision), customers
(which exist, to attach them to clocks), and finalized invoices (which end a saga).
"""

from __future__ import annotations

from typing import Any

from billing_common.cycle import (
    PERIOD_CLOSING,
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    PeriodClosing,
    TestClockAdvanced,
    TestClockCustomerAttached,
)
from billing_common.events import Topic
from billing_customers.events import CUSTOMER_CREATED
from billing_invoicing.events import INVOICE_FINALIZED
from billing_subscriptions.events import (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    TRIAL_END_REQUESTED,
)

PRODUCES: tuple[Topic[Any], ...] = (
    PERIOD_CLOSING,
    TRIAL_END_REQUESTED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    TEST_CLOCK_ADVANCED,
)

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
    "TEST_CLOCK_CUSTOMER_ATTACHED",
    "PeriodClosing",
    "TestClockAdvanced",
    "TestClockCustomerAttached",
]
