"""price_sheet_of and check_usage_meters: a published plan version becomes a price sheet."""

from __future__ import annotations

import doctest
from decimal import Decimal

import pytest

from billing_common.currency import Currency
from billing_common.ids import PlanId
from billing_common.money import Money
from billing_rating import price_sheets
from billing_rating.domain import BillingTiming, Graduated, Percentage, PerUnit
from billing_rating.price_sheets import UnknownMeterUsage, check_usage_meters, price_sheet_of

from .conftest import CALLS, PAYMENTS, STORAGE, per_unit, plan_published, wire_price

PLAN = plan_published(PlanId.new(), 1, CALLS, STORAGE, PAYMENTS)


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def test_doctests() -> None:
    assert doctest.testmod(price_sheets, raise_on_error=False).failed == 0


def test_every_charge_keeps_its_meter_timing_minimum_and_grouping() -> None:
    sheet = price_sheet_of(PLAN, {})
    assert sheet.currency == Currency.of("USD")
    assert [
        (charge.charge_id, charge.meter_key, charge.timing, charge.minimum, charge.group_by)
        for charge in sheet.charges
    ] == [
        ("calls", "api_calls", BillingTiming.ARREARS, usd("20"), ()),
        ("payments", "revenue", BillingTiming.IN_ADVANCE, None, ()),
        ("storage", "storage_gb", BillingTiming.ARREARS, None, ("region",)),
    ]
    calls, payments, storage = (charge.model for charge in sheet.charges)
    assert isinstance(calls, Graduated)
    assert calls.price(Decimal(1500)).amount == usd("80")  # 100 x 0.10 + 1400 x 0.05
    assert isinstance(payments, Percentage)
    assert (payments.rate, payments.fixed_fee) == (Decimal("2.9"), usd("0.30"))
    assert storage == PerUnit(usd("0.023"))


def test_an_override_replaces_the_price_only() -> None:
    sheet = price_sheet_of(
        PLAN, {"calls": wire_price(per_unit("0.01")), "not_in_plan": wire_price(per_unit("9"))}
    )
    calls = sheet.charges[0]
    assert calls.model == PerUnit(usd("0.01"))
    assert (calls.meter_key, calls.minimum) == ("api_calls", usd("20"))
    assert [charge.charge_id for charge in sheet.charges] == ["calls", "payments", "storage"]
    assert sheet.charges[1:] == price_sheet_of(PLAN, {}).charges[1:]


def test_usage_of_a_meter_the_plan_does_not_charge_is_refused() -> None:
    check_usage_meters(PLAN, ["api_calls", "revenue", "storage_gb", "api_calls"])
    with pytest.raises(UnknownMeterUsage) as refused:
        check_usage_meters(PLAN, ["api_calls", "gpu_hours", "bandwidth", "gpu_hours"])
    assert refused.value.code == "unknown_meter_usage"
    assert refused.value.status == 422
    assert refused.value.extensions == {"meter_keys": ["bandwidth", "gpu_hours"]}
