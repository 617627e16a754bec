"""A published plan version and a customer's overrides make the price sheet rating rates by.

Pure: no I/O, no clock. The plan version is pricing's `PlanPublished` data (amounts in
the wire form), already checked by pricing when it was published; its prices become
the rating models through pricing's own `price_model`, so the catalog and rating can
never read one price two ways.

This module imports `billing_pricing`, which imports `billing_rating.domain` and
`billing_rating.pricing_models`: those two must never import this one.

Worked example: a plan charging `api_calls` at 0.002 USD a call, and a customer whose
override prices them at 0.001 USD.

>>> from decimal import Decimal
>>> from billing_common.money import Money, MoneyWire
>>> from billing_pricing.schemas import PerUnitPrice
>>> def per_unit(amount: str) -> PerUnitPrice[MoneyWire]:
...     return PerUnitPrice[MoneyWire](unit_price=Money.parse(amount, "USD").to_wire())
>>> plan = PlanBody[MoneyWire](name="Pro", currency="USD", interval="month", charges=[
...     {"key": "api", "meter_key": "api_calls", "price": per_unit("0.002")}])
>>> sheet = price_sheet_of(plan, {"api": per_unit("0.001")})
>>> sheet.charges[0].model.price(Decimal(1500)).amount
Money.parse('1.5', 'USD')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from billing_common.errors import ValidationFailed
from billing_pricing.domain import price_model
from billing_pricing.schemas import PlanBody, Timing
from billing_rating.domain import BillingTiming, Charge, PriceSheet

__all__ = ["UnknownMeterUsage", "check_usage_meters", "price_sheet_of"]


class UnknownMeterUsage(ValidationFailed):
    code = "unknown_meter_usage"
    title = "Usage for a meter the plan does not charge"


def price_sheet_of(plan: PlanBody[Any], overrides: Mapping[str, Any]) -> PriceSheet:
    """The price sheet of `plan`, each charge priced by its override when `overrides` (charge
    key -> described price, wire or public form) has one.

    An override keeps everything else of the charge (meter, billing timing, minimum,
    group_by): it replaces the price only, as pricing checked it. Overrides of charges
    this version does not have are ignored: an override is set per plan, and holds for
    every version that has its charge.
    """
    currency = plan.currency
    charges = [
        Charge(
            charge_id=spec.key,
            meter_key=spec.meter_key,
            model=price_model(overrides.get(spec.key, spec.price), currency),
            timing=BillingTiming.IN_ADVANCE
            if spec.billing is Timing.IN_ADVANCE
            else BillingTiming.ARREARS,
            minimum=None if spec.minimum is None else spec.minimum.to_money(),
            group_by=tuple(spec.group_by),
        )
        for spec in plan.charges
    ]
    return PriceSheet(currency, charges)


def check_usage_meters(plan: PlanBody[Any], meter_keys: Iterable[str]) -> None:
    """Refuse usage of a meter no charge of `plan` uses (`UnknownMeterUsage`).

    `rate_all` rates the sheet's charges and leaves other meters' usage aside, which is
    right for a billing cycle (metering reports every meter of the customer); a preview
    asks about usage it names, so a meter the plan does not charge is a mistake there.

    >>> from billing_common.money import MoneyWire
    >>> plan = PlanBody[MoneyWire](name="Pro", currency="USD", interval="month")
    >>> try:
    ...     check_usage_meters(plan, ["api_calls"])
    ... except UnknownMeterUsage as error:
    ...     print(error.code, error.detail)
    unknown_meter_usage the plan charges no meter ['api_calls'] (it charges [])
    """
    charged = {spec.meter_key for spec in plan.charges}
    unknown = sorted({key for key in meter_keys if key not in charged})
    if unknown:
        raise UnknownMeterUsage(
            f"the plan charges no meter {unknown} (it charges {sorted(charged)})",
            meter_keys=unknown,
        )
