"""A tenant's subscription billing policy: the choices billing people argue about.

One `SubscriptionPolicy` per tenant, stored as JSON with the tenant's settings;
`SubscriptionPolicy()` is the default every tenant starts with. The domain
functions take it as an argument and never read a constant in its place.

Settings, default first:

- `prorate_first_calendar_period`: `True`, a calendar subscription starting
  mid-period pays the part of the first period it covers; `False`, it pays
  the full fee for that stub.
- `proration_granularity`: `days`, whole days counted in the customer's
  timezone, the day of a change belonging to what follows it; `seconds`,
  exact elapsed time (to the microsecond).
- `upgrade_rule`: `higher_base_fee`, an upgrade is a higher base fee per
  normalised period (per year: 52 weeks, 12 months, 4 quarters);
  `any_price_increase`, the base fee or any usage price goes up.
- `downgrade_timing`: `period_end`, a downgrade (any change that is not an
  upgrade) takes effect when the current period ends; `now`, at once,
  prorated like an upgrade.
- `prorate_on_cancel`: `True`, canceling now credits the unused part of the
  period; `False`, no credit.

Upgrades always take effect at once (a credit for the unused part of the old
plan and a charge for the rest of the period on the new one), unless the
caller asks for the period end.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["ChangeTiming", "ProrationGranularity", "SubscriptionPolicy", "UpgradeRule"]


class ProrationGranularity(StrEnum):
    DAYS = "days"
    """Whole local days: the fraction is days used over days in the period."""
    SECONDS = "seconds"
    """Elapsed time, exact to the microsecond: a 23-hour DST day weighs 23 hours."""


class UpgradeRule(StrEnum):
    HIGHER_BASE_FEE = "higher_base_fee"
    """The new plan's base fee per year (52 weeks, 12 months, 4 quarters) is higher."""
    ANY_PRICE_INCREASE = "any_price_increase"
    """As above, or any usage price is higher or newly charged on the new plan."""


class ChangeTiming(StrEnum):
    NOW = "now"
    PERIOD_END = "period_end"


class SubscriptionPolicy(BaseModel):
    """How a tenant's subscriptions are billed. Immutable; the defaults are the table above."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prorate_first_calendar_period: bool = True
    proration_granularity: ProrationGranularity = ProrationGranularity.DAYS
    upgrade_rule: UpgradeRule = UpgradeRule.HIGHER_BASE_FEE
    downgrade_timing: ChangeTiming = ChangeTiming.PERIOD_END
    prorate_on_cancel: bool = True
