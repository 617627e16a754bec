"""What the audit log records: every fact topic of every producing service, but the usage
streams.

A producer's topics join the audit log by being listed in `CONSUMES`; the contracts test
checks that every produced fact topic is either there or in `NOT_AUDITED`, with the reason.
"""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic
from billing_common.usage_events import USAGE_EVENTS_RECEIVED
from billing_customers.events import PRODUCES as CUSTOMERS_PRODUCES
from billing_engine.events import PRODUCES as ENGINE_PRODUCES
from billing_invoicing.events import PRODUCES as INVOICING_PRODUCES
from billing_metering.events import (
    METER_ARCHIVED,
    METER_CREATED,
    METER_UPDATED,
    PARKED_EVENTS_RELEASED,
    PERIOD_USAGE_COMPUTED,
    USAGE_RECORDED,
)
from billing_pricing.events import PRODUCES as PRICING_PRODUCES
from billing_rating.events import PRODUCES as RATING_PRODUCES
from billing_subscriptions.events import PRODUCES as SUBSCRIPTIONS_PRODUCES

CONSUMES: tuple[Topic[Any], ...] = (
    *CUSTOMERS_PRODUCES,
    METER_CREATED,
    METER_UPDATED,
    METER_ARCHIVED,
    *PRICING_PRODUCES,
    *SUBSCRIPTIONS_PRODUCES,
    *ENGINE_PRODUCES,
    PERIOD_USAGE_COMPUTED,
    *RATING_PRODUCES,
    *INVOICING_PRODUCES,
)

_USAGE_STREAM = (
    "usage data, not a change of state: thousands of events a second, whose record is the "
    "usage store (ClickHouse) itself"
)

#: Fact topics the audit log leaves out on purpose, and why.
NOT_AUDITED: dict[str, str] = {
    USAGE_EVENTS_RECEIVED.name: _USAGE_STREAM,
    PARKED_EVENTS_RELEASED.name: _USAGE_STREAM,
    USAGE_RECORDED.name: _USAGE_STREAM,
}

PRODUCES: tuple[Topic[Any], ...] = ()
