"""The public API shapes of rating (validated by the gateway and by the service).

`POST /v1/rating/preview` rates usage a client describes against a published plan
version, as the billing cycle would: amounts are exact (`MoneyPublic`, up to 12
decimals), not yet rounded to the currency's minor unit (invoicing rounds each line).
Quantities and transaction amounts are decimal strings; a JSON float is refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing_common.currency import Currency
from billing_common.ids import CustomerId, PlanId
from billing_common.money import MoneyPublic
from billing_pricing.schemas import DecimalText

_MAX_USAGE_RECORDS = 1000
_MAX_TRANSACTIONS = 10_000
_Dimension = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsageInput(_Strict):
    """A meter's aggregate for the period in one group of its dimension values."""

    meter_key: str = Field(min_length=1, max_length=63)
    group: dict[_Dimension, _Dimension] = Field(
        default_factory=dict,
        max_length=10,
        description="dimension -> value; the charge's group_by picks the ones it rates by",
    )
    quantity: DecimalText = Field(description="the meter's value for the period, >= 0")
    transactions: list[DecimalText] = Field(
        default_factory=list,
        max_length=_MAX_TRANSACTIONS,
        description="for percentage prices: each event's amount (major units), in the order "
        "they occurred; `quantity` must be their sum",
    )


class RatingPreviewRequest(_Strict):
    """`POST /v1/rating/preview`: rate usage against a plan version, for one customer or none.

    `period_end` must be after `period_start` (the period is `[start, end)`).
    """

    plan_id: PlanId
    version: int | None = Field(default=None, ge=1, description="the plan's latest when omitted")
    customer_id: CustomerId | None = Field(
        default=None, description="applies this customer's price overrides"
    )
    period_start: AwareDatetime
    period_end: AwareDatetime
    usage: list[UsageInput] = Field(default_factory=list, max_length=_MAX_USAGE_RECORDS)


class RatedTier(_Strict):
    """What one tier contributed: `units` in (from_units, up_to] at its price, plus its flat fee
    (for a percentage tier, `rate` % of the part of the amount inside it)."""

    tier: int = Field(description="1 for the first tier")
    from_units: DecimalText
    up_to: DecimalText | None
    units: DecimalText
    unit_price: MoneyPublic | None
    rate: DecimalText | None
    flat_fee: MoneyPublic | None
    amount: MoneyPublic


class RatedTransactions(_Strict):
    """How a percentage charge treated its transactions."""

    transactions: int
    free_transactions: int
    raised_to_minimum: int
    capped_at_maximum: int
    total_amount: MoneyPublic
    paid_amount: MoneyPublic
    percentage_fees: MoneyPublic
    fixed_fees: MoneyPublic


class RatedLine(_Strict):
    """One rated line: a charge's usage in one group, or a charge minimum's true-up."""

    charge_key: str
    meter_key: str
    group: dict[str, str]
    kind: Literal["usage", "charge_minimum"]
    billing: Literal["in_arrears", "in_advance"] = Field(
        description="in_advance: the events were billed as they came; the line states the "
        "period's price they add up to"
    )
    overridden: bool = Field(description="priced by the customer's override of the charge")
    period_start: AwareDatetime
    period_end: AwareDatetime
    quantity: DecimalText
    amount: MoneyPublic = Field(description="exact, before rounding to the minor unit")
    unit_price: MoneyPublic | None
    tiers: list[RatedTier]
    packages: int | None
    percentage: RatedTransactions | None
    matrix_cell: list[str | None] | None = Field(
        description="the matrix cell's values, one per dimension"
    )
    explanation: str


class RatingPreview(_Strict):
    object: Literal["rating_preview"] = "rating_preview"
    plan_id: PlanId
    version: int
    customer_id: CustomerId | None
    currency: Currency
    period_start: AwareDatetime
    period_end: AwareDatetime
    lines: list[RatedLine]
    total: MoneyPublic = Field(
        description="the exact sum of the lines: usage charges only (the base fee and the "
        "plan's minimum commitment are the subscription's and invoice's)"
    )
