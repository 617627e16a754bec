"""Catalog rules: pure functions, no I/O, no clock, no randomness.

- `price_model` turns a described price into the rating engine's model (which
  validates it: tier tables, negative prices, currencies each raise their own
  `InvalidPricing` subclass), and `describe_price` turns it back, with amounts
  in either form (`MoneyPublic` for the API, `MoneyWire` between services).
- `plan_price_sheet` checks a whole plan version against the meters pricing
  knows (`MeterState`, projected from the metering topics) and returns the
  rating `PriceSheet` it amounts to; `override_charge` does the same for one
  customer's price for one charge.
- `check_migration` validates a plan migration; `apply_coupons` applies
  coupons to a subtotal (billing-common's `discounts`, shared with invoicing, where
  the order is written down; re-exported here with the coupon terms and errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal  # noqa: F401 (the doctests use it)
from typing import Any

from billing_common.currency import Currency
from billing_common.discounts import (
    CouponApplication,
    CouponDiscountInvalid,
    CouponDurationInvalid,
    CouponTerms,
    DiscountLine,
    InvalidCoupon,
    apply_coupons,
)
from billing_common.errors import BillingError, CurrencyMismatch, ValidationFailed
from billing_common.money import Money, MoneyPublic, MoneyWire
from billing_metering.meters import Aggregation, MeterDefinition
from billing_pricing.schemas import (
    BasisPointsPrice,
    ChargeSpec,
    FlatFeePrice,
    GraduatedPercentagePrice,
    GraduatedPrice,
    MatrixPrice,
    PackagePrice,
    PercentagePrice,
    PerUnitPrice,
    PlanBody,
    Timing,
    VolumePrice,
)
from billing_rating.domain import BillingTiming, Charge, PriceSheet
from billing_rating.pricing_models import (
    BasisPoints,
    FlatFee,
    Graduated,
    GraduatedPercentage,
    InvalidMatrix,
    Matrix,
    NegativePrice,
    Package,
    Percentage,
    PercentageTier,
    PerUnit,
    PricingModel,
    QuantityModel,
    Tier,
    Volume,
)

__all__ = [
    "AdvanceRequiresAdditiveMeter",
    "AmountPriceRequiresSumMeter",
    "CouponApplication",
    "CouponDiscountInvalid",
    "CouponDurationInvalid",
    "CouponTerms",
    "DiscountLine",
    "GroupByNotInMeter",
    "InvalidCoupon",
    "MatrixDimensionNotInMeter",
    "MeterArchived",
    "MeterState",
    "MigrationInPast",
    "MigrationVersionsEqual",
    "PlanCurrencyChanged",
    "UnknownCharge",
    "UnknownMeter",
    "UnknownPlanVersion",
    "apply_coupons",
    "check_migration",
    "describe_plan",
    "describe_price",
    "meter_keys_of",
    "override_charge",
    "plan_price_sheet",
    "price_model",
]

# -- errors ------------------------------------------------------------------------------------


class UnknownMeter(ValidationFailed):
    code = "unknown_meter"
    title = "No meter has this key"


class MeterArchived(ValidationFailed):
    code = "meter_archived"
    title = "The meter is archived"


class AdvanceRequiresAdditiveMeter(ValidationFailed):
    code = "advance_requires_count_or_sum_meter"
    title = "Only count and sum meters can be billed in advance"


class AmountPriceRequiresSumMeter(ValidationFailed):
    code = "amount_price_requires_sum_meter"
    title = "Percentage and basis-point prices need a sum meter (of an amount)"


class MatrixDimensionNotInMeter(ValidationFailed):
    code = "matrix_dimension_not_in_meter"
    title = "A matrix dimension is not among the meter's group_by"


class GroupByNotInMeter(ValidationFailed):
    code = "group_by_not_in_meter"
    title = "A charge groups by a dimension the meter does not"


class UnknownCharge(ValidationFailed):
    code = "unknown_charge"
    title = "The plan has no charge with this key"


class PlanCurrencyChanged(ValidationFailed):
    code = "plan_currency_changed"
    title = "A new plan version cannot change the currency"


class UnknownPlanVersion(ValidationFailed):
    code = "unknown_plan_version"
    title = "The plan has no such version"


class MigrationVersionsEqual(ValidationFailed):
    code = "migration_versions_equal"
    title = "A migration moves between two different versions"


class MigrationInPast(ValidationFailed):
    code = "migration_in_past"
    title = "A migration cannot take effect in the past"


# -- meters ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterState:
    """A meter as pricing last heard of it (projected from the metering topics)."""

    definition: MeterDefinition
    archived: bool = False


# -- prices: description <-> model -------------------------------------------------------------

AnyMoney = MoneyPublic | MoneyWire
ToMoneyForm = Callable[[Money], AnyMoney]


def _money(value: AnyMoney) -> Money:
    return value.to_money()


def _maybe(value: AnyMoney | None) -> Money | None:
    return None if value is None else value.to_money()


def price_model(price: Any, currency: Currency) -> PricingModel:
    """The rating model a described price (public or wire form) stands for.

    `currency` is the plan's: the models priced by an amount (percentage, basis
    points, graduated percentage) are in it; the others take their amounts' currency,
    which the plan checks. The model validates itself and raises a specific error.

    >>> price_model(PerUnitPrice[MoneyPublic](unit_price=MoneyPublic(amount="0.5",
    ...     currency="USD")), Currency.of("USD")).price(Decimal(3)).amount
    Money.parse('1.5', 'USD')
    """
    if isinstance(price, MatrixPrice):
        cells: dict[tuple[str, ...], QuantityModel] = {}
        for cell in price.cells:
            values = tuple(cell.values)
            if values in cells:
                raise InvalidMatrix(f"two cells are for the values {list(values)}")
            cells[values] = _quantity_model(cell.price, currency)
        default = None if price.default is None else _quantity_model(price.default, currency)
        return Matrix(tuple(price.dimensions), cells, default)
    if isinstance(price, PercentagePrice):
        return Percentage(
            currency,
            price.rate,
            fixed_fee=_maybe(price.fixed_fee),
            free_transactions=price.free_transactions,
            free_amount=_maybe(price.free_amount),
            minimum_per_transaction=_maybe(price.minimum_per_transaction),
            maximum_per_transaction=_maybe(price.maximum_per_transaction),
        )
    return _quantity_model(price, currency)


def _quantity_model(price: Any, currency: Currency) -> QuantityModel:
    if isinstance(price, FlatFeePrice):
        return FlatFee(_money(price.fee))
    if isinstance(price, PerUnitPrice):
        return PerUnit(_money(price.unit_price))
    if isinstance(price, PackagePrice):
        return Package(price.package_size, _money(price.package_price), price.free_units)
    if isinstance(price, GraduatedPrice | VolumePrice):
        tiers = [
            Tier(tier.from_units, tier.up_to, _money(tier.unit_price), _maybe(tier.flat_fee))
            for tier in price.tiers
        ]
        return Graduated(tiers) if isinstance(price, GraduatedPrice) else Volume(tiers)
    if isinstance(price, GraduatedPercentagePrice):
        return GraduatedPercentage(
            currency,
            [
                PercentageTier(tier.from_amount, tier.up_to, tier.rate, _maybe(tier.flat_fee))
                for tier in price.tiers
            ],
        )
    if isinstance(price, BasisPointsPrice):
        return BasisPoints(currency, price.basis_points)
    raise TypeError(f"{type(price).__name__} is not a described price")


def describe_price(model: PricingModel, money: ToMoneyForm) -> dict[str, Any]:
    """The description of `model` with amounts in the form `money` makes (`Money.to_public`
    or `Money.to_wire`): validate it as `PublicPrice` or `WirePrice`.

    >>> describe_price(PerUnit(Money.parse("0.5", "USD")), Money.to_wire)["unit_price"]
    MoneyWire(amount=500000000000, currency=Currency(code='USD', minor_units=2))
    """

    def maybe(value: Money | None) -> AnyMoney | None:
        return None if value is None else money(value)

    if isinstance(model, Matrix):
        return {
            "model": "matrix",
            "dimensions": list(model.dimensions),
            "cells": [
                {"values": list(values), "price": describe_price(cell, money)}
                for values, cell in model.cells.items()
            ],
            "default": None if model.default is None else describe_price(model.default, money),
        }
    if isinstance(model, Percentage):
        return {
            "model": "percentage",
            "rate": model.rate,
            "fixed_fee": maybe(model.fixed_fee),
            "free_transactions": model.free_transactions,
            "free_amount": maybe(model.free_amount),
            "minimum_per_transaction": maybe(model.minimum_per_transaction),
            "maximum_per_transaction": maybe(model.maximum_per_transaction),
        }
    if isinstance(model, FlatFee):
        return {"model": "flat_fee", "fee": money(model.fee)}
    if isinstance(model, PerUnit):
        return {"model": "per_unit", "unit_price": money(model.unit_price)}
    if isinstance(model, Package):
        return {
            "model": "package",
            "package_size": model.package_size,
            "package_price": money(model.package_price),
            "free_units": model.free_units,
        }
    if isinstance(model, Graduated | Volume):
        return {
            "model": model.kind,
            "tiers": [
                {
                    "from_units": tier.from_units,
                    "up_to": tier.up_to,
                    "unit_price": money(tier.unit_price),
                    "flat_fee": maybe(tier.flat_fee),
                }
                for tier in model.tiers
            ],
        }
    if isinstance(model, GraduatedPercentage):
        return {
            "model": "graduated_percentage",
            "tiers": [
                {
                    "from_amount": tier.from_amount,
                    "up_to": tier.up_to,
                    "rate": tier.rate,
                    "flat_fee": maybe(tier.flat_fee),
                }
                for tier in model.tiers
            ],
        }
    return {"model": "basis_points", "basis_points": model.basis_points}


# -- plans -------------------------------------------------------------------------------------

_AMOUNT_MODELS = (Percentage, BasisPoints, GraduatedPercentage)


def _prices_amounts(model: PricingModel) -> bool:
    """Whether `model` (or a cell of it) prices an amount rather than a quantity."""
    if isinstance(model, Matrix):
        cells = [*model.cells.values(), *([model.default] if model.default else [])]
        return any(isinstance(cell, _AMOUNT_MODELS) for cell in cells)
    return isinstance(model, _AMOUNT_MODELS)


def _in_charge(key: str, error: BillingError) -> BillingError:
    """The same error, saying which charge it is about."""
    return type(error)(f"charge {key!r}: {error.detail}", **{**error.extensions, "charge": key})


def _plan_amount(value: AnyMoney | None, currency: Currency, what: str) -> Money | None:
    """A plan-level amount (base fee, commitment): in the plan's currency, never negative."""
    if value is None:
        return None
    amount = value.to_money()
    if amount.currency != currency:
        raise CurrencyMismatch(
            f"the {what} is in {amount.currency.code}, the plan in {currency.code}",
            currencies=[currency.code, amount.currency.code],
        )
    if amount.is_negative():
        raise NegativePrice(f"the {what} cannot be negative: {amount}")
    return amount


def _build_charge(
    *,
    key: str,
    meter_key: str,
    price: Any,
    billing: Timing,
    minimum: AnyMoney | None,
    group_by: Sequence[str],
    currency: Currency,
    meters: Mapping[str, MeterState],
) -> Charge:
    meter = meters.get(meter_key)
    if meter is None:
        raise UnknownMeter(
            f"charge {key!r}: no meter {meter_key!r} (create it first)",
            charge=key,
            meter_key=meter_key,
        )
    if meter.archived:
        raise MeterArchived(
            f"charge {key!r}: meter {meter_key!r} is archived", charge=key, meter_key=meter_key
        )
    definition = meter.definition
    if billing is Timing.IN_ADVANCE and definition.aggregation not in (
        Aggregation.COUNT,
        Aggregation.SUM,
    ):
        raise AdvanceRequiresAdditiveMeter(
            f"charge {key!r}: meter {meter_key!r} aggregates by {definition.aggregation}; "
            "only count and sum meters can be billed in advance, event by event",
            charge=key,
            meter_key=meter_key,
        )
    grouped = set(definition.group_by)
    missing = [name for name in group_by if name not in grouped]
    if missing:
        raise GroupByNotInMeter(
            f"charge {key!r}: meter {meter_key!r} does not group by {missing} "
            f"(it groups by {list(definition.group_by)})",
            charge=key,
            dimensions=missing,
        )
    try:
        model = price_model(price, currency)
        if isinstance(model, Matrix):
            outside = [name for name in model.dimensions if name not in grouped]
            if outside:
                raise MatrixDimensionNotInMeter(
                    f"matrix dimensions {outside} are not among the group_by of meter "
                    f"{meter_key!r} ({list(definition.group_by)})",
                    dimensions=outside,
                )
        if _prices_amounts(model) and definition.aggregation is not Aggregation.SUM:
            raise AmountPriceRequiresSumMeter(
                f"a {model.kind} price charges a share of an amount: meter {meter_key!r} "
                f"must sum that amount, not {definition.aggregation}"
            )
        if model.currency != currency:
            raise CurrencyMismatch(
                f"the price is in {model.currency.code}, the plan in {currency.code}",
                currencies=[currency.code, model.currency.code],
            )
        return Charge(
            charge_id=key,
            meter_key=meter_key,
            model=model,
            timing=BillingTiming.IN_ADVANCE
            if billing is Timing.IN_ADVANCE
            else BillingTiming.ARREARS,
            minimum=_maybe(minimum),
            group_by=tuple(group_by),
        )
    except BillingError as error:
        if "charge" in error.extensions:
            raise
        raise _in_charge(key, error) from error


def plan_price_sheet(body: PlanBody[Any], meters: Mapping[str, MeterState]) -> PriceSheet:
    """Check a plan version and return the price sheet its charges make.

    Refused, each with its own error: a charge on a meter pricing does not know
    or that is archived; billing in advance on a meter other than count or sum;
    grouping (or a matrix dimension) the meter does not group by; an invalid
    price (tier tables, negative amounts: the rating models' errors); any amount
    in another currency than the plan's; two charges with one key.
    """
    currency = body.currency
    _plan_amount(body.base_fee, currency, "base fee")
    _plan_amount(body.minimum_commitment, currency, "minimum commitment")
    charges = [
        _build_charge(
            key=charge.key,
            meter_key=charge.meter_key,
            price=charge.price,
            billing=charge.billing,
            minimum=charge.minimum,
            group_by=charge.group_by,
            currency=currency,
            meters=meters,
        )
        for charge in body.charges
    ]
    return PriceSheet(currency, charges)


def override_charge(
    body: PlanBody[Any], charge_key: str, price: Any, meters: Mapping[str, MeterState]
) -> Charge:
    """The plan's charge `charge_key` with a customer's own `price`, checked as a charge is."""
    charge = next((c for c in body.charges if c.key == charge_key), None)
    if charge is None:
        raise UnknownCharge(
            f"the plan has no charge {charge_key!r} (it has {[c.key for c in body.charges]})",
            charge=charge_key,
        )
    return _build_charge(
        key=charge.key,
        meter_key=charge.meter_key,
        price=price,
        billing=charge.billing,
        minimum=charge.minimum,
        group_by=charge.group_by,
        currency=body.currency,
        meters=meters,
    )


def meter_keys_of(body: PlanBody[Any]) -> list[str]:
    """The meters a plan version's charges use, sorted, each once."""
    return sorted({charge.meter_key for charge in body.charges})


def describe_plan(body: PlanBody[Any], money: ToMoneyForm) -> dict[str, Any]:
    """The fields of `body` with every amount in the form `money` makes: validate the result
    as `PlanBody[MoneyWire]` (to store and publish) or as the public `Plan`."""

    def maybe(value: AnyMoney | None) -> AnyMoney | None:
        return None if value is None else money(value.to_money())

    return {
        "name": body.name,
        "description": body.description,
        "product_id": body.product_id,
        "currency": body.currency,
        "interval": body.interval,
        "base_fee": maybe(body.base_fee),
        "base_fee_timing": body.base_fee_timing,
        "trial_days": body.trial_days,
        "minimum_commitment": maybe(body.minimum_commitment),
        "charges": [_describe_charge(charge, body.currency, money) for charge in body.charges],
    }


def _describe_charge(
    charge: ChargeSpec[Any], currency: Currency, money: ToMoneyForm
) -> dict[str, Any]:
    return {
        "key": charge.key,
        "meter_key": charge.meter_key,
        "price": describe_price(price_model(charge.price, currency), money),
        "billing": charge.billing,
        "prorated": charge.prorated,
        "minimum": None if charge.minimum is None else money(charge.minimum.to_money()),
        "group_by": list(charge.group_by),
    }


def check_new_version(previous: PlanBody[Any], body: PlanBody[Any]) -> None:
    """A new version may change anything but the currency (subscriptions bill in it)."""
    if body.currency != previous.currency:
        raise PlanCurrencyChanged(
            f"the plan bills in {previous.currency.code}; a version cannot switch to "
            f"{body.currency.code} (create another plan)"
        )


# -- migrations --------------------------------------------------------------------------------


def check_migration(
    from_version: int,
    to_version: int,
    latest_version: int,
    effective_at: datetime | None,
    *,
    now: datetime,
) -> datetime:
    """When a migration from `from_version` to `to_version` takes effect: `effective_at`,
    or `now` when omitted. Both versions must exist (1..latest) and differ, and the
    migration cannot take effect before `now` (periods already billed stay billed).
    """
    for version in (from_version, to_version):
        if not 1 <= version <= latest_version:
            raise UnknownPlanVersion(
                f"the plan has versions 1 to {latest_version}, not {version}", version=version
            )
    if from_version == to_version:
        raise MigrationVersionsEqual(f"from_version and to_version are both {from_version}")
    when = now if effective_at is None else effective_at
    if when < now:
        raise MigrationInPast(f"effective_at {when.isoformat()} is before now ({now.isoformat()})")
    return when
