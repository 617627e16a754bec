"""The shapes of the catalog: public API bodies, and the same prices on the wire.

A price is described once, generic in how its amounts travel: `MoneyPublic`
(`{"amount": "12.5", "currency": "USD"}`, major units) on the public API and
`MoneyWire` (pico-units as an integer string) in events and in storage. So
`PerUnitPrice[MoneyPublic]` is what a client sends and `PerUnitPrice[MoneyWire]`
what the rating service reads. Quantities, rates and tier bounds are decimal
strings (`"1000"`, `"2.9"`); a JSON float is refused everywhere.

Every price names its pricing model in `model`, one of the models of
`billing_rating.pricing_models`:

- `flat_fee` {fee}; `per_unit` {unit_price};
  `package` {package_size, package_price, free_units};
- `graduated` / `volume` {tiers: [{from_units, up_to, unit_price, flat_fee}]}:
  a tier covers (from_units, up_to]; the first starts at 0, each next where the
  previous ends, the last has `up_to: null`;
- `graduated_percentage` {tiers: [{from_amount, up_to, rate, flat_fee}]};
  `basis_points` {basis_points}; `percentage` {rate, fixed_fee,
  free_transactions, free_amount, minimum_per_transaction, maximum_per_transaction};
- `matrix` {dimensions, cells: [{values, price}], default}: a quantity price per
  combination of the meter's group-by values.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from billing_common.currency import Currency
from billing_common.discounts import CouponDuration as CouponDuration  # re-exported: the API shape
from billing_common.ids import CustomerId, PlanId, PrefixedId, ProductId
from billing_common.money import MoneyPublic, MoneyWire

# -- ids the catalog adds ----------------------------------------------------------------------


class CouponId(PrefixedId):
    prefix = "coupon"


class PlanMigrationId(PrefixedId):
    prefix = "pmig"


class PriceOverrideId(PrefixedId):
    prefix = "povr"


# -- exact numbers -----------------------------------------------------------------------------

_DECIMAL_TEXT = re.compile(r"^[+-]?[0-9]{1,30}(\.[0-9]{1,30})?$")


def _exact_decimal(value: Any) -> Decimal:
    """A decimal string (or an int) as an exact `Decimal`; floats are refused."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
            raise ValueError(f"{value!r} is not a decimal") from exc
    raise ValueError(
        "expected a decimal string like '12.5' (digits, an optional sign and point, "
        f"no exponent), not {type(value).__name__} {value!r}"
    )


DecimalText = Annotated[
    Decimal,
    PlainValidator(_exact_decimal),
    PlainSerializer(lambda value: f"{value:f}", return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _DECIMAL_TEXT.pattern,
            "description": "an exact decimal number as a string",
            "examples": ["1000", "2.9"],
        }
    ),
]

#: How amounts travel: `MoneyPublic` on the API, `MoneyWire` between services.
M = TypeVar("M", MoneyPublic, MoneyWire)

_Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
_Dimension = Annotated[str, Field(min_length=1, max_length=200)]
_MAX_TIERS = 100


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- prices ------------------------------------------------------------------------------------


class FlatFeePrice(_Frozen, Generic[M]):
    model: Literal["flat_fee"] = "flat_fee"
    fee: M


class PerUnitPrice(_Frozen, Generic[M]):
    model: Literal["per_unit"] = "per_unit"
    unit_price: M


class PackagePrice(_Frozen, Generic[M]):
    model: Literal["package"] = "package"
    package_size: DecimalText
    package_price: M
    free_units: DecimalText = Decimal(0)


class TierSpec(_Frozen, Generic[M]):
    """Quantities in (from_units, up_to] at `unit_price`; `flat_fee` once the tier is entered."""

    from_units: DecimalText
    up_to: DecimalText | None
    unit_price: M
    flat_fee: M | None = None


class GraduatedPrice(_Frozen, Generic[M]):
    model: Literal["graduated"] = "graduated"
    tiers: list[TierSpec[M]] = Field(max_length=_MAX_TIERS)


class VolumePrice(_Frozen, Generic[M]):
    model: Literal["volume"] = "volume"
    tiers: list[TierSpec[M]] = Field(max_length=_MAX_TIERS)


class PercentageTierSpec(_Frozen, Generic[M]):
    """`rate` % of the amount in (from_amount, up_to] (major units of the plan's currency)."""

    from_amount: DecimalText
    up_to: DecimalText | None
    rate: DecimalText
    flat_fee: M | None = None


class GraduatedPercentagePrice(_Frozen, Generic[M]):
    model: Literal["graduated_percentage"] = "graduated_percentage"
    tiers: list[PercentageTierSpec[M]] = Field(max_length=_MAX_TIERS)


class BasisPointsPrice(_Frozen, Generic[M]):
    model: Literal["basis_points"] = "basis_points"
    basis_points: DecimalText


class PercentagePrice(_Frozen, Generic[M]):
    model: Literal["percentage"] = "percentage"
    rate: DecimalText = Field(description="percent of each transaction's amount")
    fixed_fee: M | None = None
    free_transactions: int | None = Field(default=None, ge=0)
    free_amount: M | None = None
    minimum_per_transaction: M | None = None
    maximum_per_transaction: M | None = None


class MatrixCellSpec(_Frozen, Generic[M]):
    values: list[_Dimension] = Field(min_length=1, description="one value per dimension")
    price: Annotated[
        FlatFeePrice[M]
        | PerUnitPrice[M]
        | PackagePrice[M]
        | GraduatedPrice[M]
        | VolumePrice[M]
        | GraduatedPercentagePrice[M]
        | BasisPointsPrice[M],
        Field(discriminator="model"),
    ]


class MatrixPrice(_Frozen, Generic[M]):
    model: Literal["matrix"] = "matrix"
    dimensions: list[_Dimension] = Field(min_length=1, max_length=10)
    cells: list[MatrixCellSpec[M]] = Field(default_factory=list, max_length=1000)
    default: (
        Annotated[
            FlatFeePrice[M]
            | PerUnitPrice[M]
            | PackagePrice[M]
            | GraduatedPrice[M]
            | VolumePrice[M]
            | GraduatedPercentagePrice[M]
            | BasisPointsPrice[M],
            Field(discriminator="model"),
        ]
        | None
    ) = None


PublicPrice = Annotated[
    FlatFeePrice[MoneyPublic]
    | PerUnitPrice[MoneyPublic]
    | PackagePrice[MoneyPublic]
    | GraduatedPrice[MoneyPublic]
    | VolumePrice[MoneyPublic]
    | GraduatedPercentagePrice[MoneyPublic]
    | BasisPointsPrice[MoneyPublic]
    | PercentagePrice[MoneyPublic]
    | MatrixPrice[MoneyPublic],
    Field(discriminator="model"),
]
WirePrice = Annotated[
    FlatFeePrice[MoneyWire]
    | PerUnitPrice[MoneyWire]
    | PackagePrice[MoneyWire]
    | GraduatedPrice[MoneyWire]
    | VolumePrice[MoneyWire]
    | GraduatedPercentagePrice[MoneyWire]
    | BasisPointsPrice[MoneyWire]
    | PercentagePrice[MoneyWire]
    | MatrixPrice[MoneyWire],
    Field(discriminator="model"),
]


# -- plans -------------------------------------------------------------------------------------


class BillingInterval(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Timing(StrEnum):
    """When a fee is billed: at the start of its period, or at the end of it."""

    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


class ChargeSpec(_Frozen, Generic[M]):
    """One priced meter of a plan.

    `billing: in_advance` bills each event as it arrives (count and sum meters
    only); `group_by` rates each combination of those meter dimensions apart;
    `minimum` is the least the charge bills per period.
    """

    key: _Key = Field(description="unique within the plan; overrides name it")
    meter_key: _Key
    price: Annotated[
        FlatFeePrice[M]
        | PerUnitPrice[M]
        | PackagePrice[M]
        | GraduatedPrice[M]
        | VolumePrice[M]
        | GraduatedPercentagePrice[M]
        | BasisPointsPrice[M]
        | PercentagePrice[M]
        | MatrixPrice[M],
        Field(discriminator="model"),
    ]
    billing: Timing = Timing.IN_ARREARS
    prorated: bool = False
    minimum: M | None = None
    group_by: list[_Dimension] = Field(default_factory=list, max_length=10)


class PlanBody(_Frozen, Generic[M]):
    """Everything a plan version says (all but its code, which never changes)."""

    name: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=5000)
    product_id: ProductId | None = None
    currency: Currency
    interval: BillingInterval
    base_fee: M | None = None
    base_fee_timing: Timing = Timing.IN_ADVANCE
    trial_days: int = Field(default=0, ge=0, le=3650)
    minimum_commitment: M | None = Field(
        default=None, description="the least billed per period, base fee and usage together"
    )
    charges: list[ChargeSpec[M]] = Field(default_factory=list, max_length=100)


PlanCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class PlanCreate(PlanBody[MoneyPublic]):
    """`POST /v1/plans`: version 1 of a new plan."""

    code: PlanCode = Field(description="your name for the plan; unique per tenant")


class PlanVersionCreate(PlanBody[MoneyPublic]):
    """`POST /v1/plans/{plan_id}/versions`: the whole plan as the next version will be."""


class Plan(PlanBody[MoneyPublic]):
    """A plan version as the API returns it (`GET /v1/plans/{id}`: the latest one)."""

    object: Literal["plan"] = "plan"
    id: PlanId
    code: str
    version: int
    latest_version: int
    meter_keys: list[str]
    created_at: AwareDatetime
    published_at: AwareDatetime


class PlanList(_Frozen):
    object: Literal["list"] = "list"
    data: list[Plan]
    has_more: bool
    next_cursor: str | None


class PlanListQuery(_Frozen):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: PlanId | None = None
    code: str | None = None


# -- migrations --------------------------------------------------------------------------------


class PlanMigrationCreate(_Frozen):
    """`POST /v1/plans/{plan_id}/migrations`: move subscriptions from one version to another."""

    from_version: int = Field(ge=1)
    to_version: int = Field(ge=1)
    effective_at: AwareDatetime | None = Field(
        default=None, description="when subscriptions switch; now when omitted, never earlier"
    )


class PlanMigration(_Frozen):
    object: Literal["plan_migration"] = "plan_migration"
    id: PlanMigrationId
    plan_id: PlanId
    from_version: int
    to_version: int
    effective_at: AwareDatetime
    created_at: AwareDatetime


class PlanMigrationList(_Frozen):
    object: Literal["list"] = "list"
    data: list[PlanMigration]


# -- overrides ---------------------------------------------------------------------------------


class PriceOverrideCreate(_Frozen):
    """`POST /v1/plans/{plan_id}/overrides`: one customer's own price for one charge.

    Setting it again for the same customer and charge replaces it.
    """

    customer_id: CustomerId
    charge_key: _Key
    price: PublicPrice


class PriceOverride(_Frozen):
    object: Literal["price_override"] = "price_override"
    id: PriceOverrideId
    plan_id: PlanId
    customer_id: CustomerId
    charge_key: str
    meter_key: str
    price: PublicPrice
    created_at: AwareDatetime
    updated_at: AwareDatetime


class PriceOverrideList(_Frozen):
    object: Literal["list"] = "list"
    data: list[PriceOverride]
    has_more: bool
    next_cursor: str | None


class PriceOverrideListQuery(_Frozen):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: PriceOverrideId | None = None
    customer_id: CustomerId | None = None


# -- products ----------------------------------------------------------------------------------

Metadata = Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=50)]


class ProductCreate(_Frozen):
    """`POST /v1/products`."""

    name: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=5000)
    metadata: Metadata = Field(default_factory=dict)


class Product(_Frozen):
    object: Literal["product"] = "product"
    id: ProductId
    name: str
    description: str | None
    metadata: dict[str, str]
    created_at: AwareDatetime


class ProductList(_Frozen):
    object: Literal["list"] = "list"
    data: list[Product]
    has_more: bool
    next_cursor: str | None


class ProductListQuery(_Frozen):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: ProductId | None = None


# -- coupons -----------------------------------------------------------------------------------


class CouponCreate(_Frozen):
    """`POST /v1/coupons`: `percent_off` or `amount_off` (exactly one)."""

    code: PlanCode = Field(description="what customers type; unique per tenant")
    name: str = Field(min_length=1, max_length=500)
    percent_off: DecimalText | None = Field(default=None, description="in (0, 100]")
    amount_off: MoneyPublic | None = None
    duration: CouponDuration
    duration_periods: int | None = Field(
        default=None, ge=1, le=1200, description="for `repeating` only"
    )
    plan_ids: list[PlanId] = Field(
        default_factory=list, max_length=100, description="the plans it applies to; empty: any"
    )


class Coupon(_Frozen):
    object: Literal["coupon"] = "coupon"
    id: CouponId
    code: str
    name: str
    percent_off: DecimalText | None
    amount_off: MoneyPublic | None
    duration: CouponDuration
    duration_periods: int | None
    plan_ids: list[PlanId]
    created_at: AwareDatetime


class CouponList(_Frozen):
    object: Literal["list"] = "list"
    data: list[Coupon]
    has_more: bool
    next_cursor: str | None


class CouponListQuery(_Frozen):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: CouponId | None = None
