"""Topics the rating service produces and consumes.

Rating keeps its own projection of the catalog from pricing's events: each published
plan version whole, and each customer's price overrides (see `service`). In the
billing cycle it rates each closing period's usage (`period_usage_computed`) and
publishes the rated lines (`period_rated`) for invoicing.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.cycle import CyclePeriod
from billing_common.events import Topic
from billing_common.money import MoneyPublic
from billing_metering.events import PERIOD_USAGE_COMPUTED
from billing_pricing.events import PLAN_PUBLISHED, PRICE_OVERRIDE_SET
from billing_rating.schemas import RatedLine


class PeriodRated(CyclePeriod):
    """A closing period's usage, rated: one line per charge and group (and charge minimum
    true-ups), amounts exact (decimal strings), before rounding to the minor unit."""

    currency: Currency
    lines: list[RatedLine]
    minimum_commitment: MoneyPublic | None = Field(
        default=None,
        description="the plan version's minimum per period: invoicing tops the period's "
        "charges up to it",
    )
    rated_at: AwareDatetime


PERIOD_RATED = Topic(
    "rating",
    "period_rated",
    PeriodRated,
    "A closing period's usage rated by the subscription's plan version: invoicing bills it.",
)

PRODUCES: tuple[Topic[Any], ...] = (PERIOD_RATED,)

#: The catalog rating projects, to rebuild any plan version's price sheet, and the cycle.
CONSUMES: tuple[Topic[Any], ...] = (PLAN_PUBLISHED, PRICE_OVERRIDE_SET, PERIOD_USAGE_COMPUTED)
