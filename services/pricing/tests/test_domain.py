from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from billing_common.currency import Currency
from billing_common.errors import BillingError, CurrencyMismatch
from billing_common.money import Money, MoneyPublic, RoundingMode
from billing_metering.meters import MeterDefinition
from billing_pricing import domain
from billing_pricing.domain import CouponTerms, MeterState, apply_coupons
from billing_pricing.schemas import CouponDuration, PlanCreate, PublicPrice, WirePrice
from billing_rating.domain import BillingTiming
from billing_rating.pricing_models import (
    AdvanceNotSupported,
    Graduated,
    InvalidMatrix,
    Matrix,
    NegativePrice,
    PerUnit,
    TierOverlap,
    TiersNotContiguous,
    TiersUnsorted,
)

USD = Currency.of("USD")
PUBLIC: TypeAdapter[Any] = TypeAdapter(PublicPrice)
WIRE: TypeAdapter[Any] = TypeAdapter(WirePrice)


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def money(amount: str, code: str = "USD") -> Money:
    return Money.parse(amount, code)


METERS = {
    "calls": MeterState(
        MeterDefinition(
            key="calls",
            name="Calls",
            event_types=("call",),
            aggregation="count",
            group_by=("region", "size"),
        )
    ),
    "gmv": MeterState(
        MeterDefinition(
            key="gmv", name="GMV", event_types=("pay",), aggregation="sum", value_property="amt"
        )
    ),
    "peak": MeterState(
        MeterDefinition(
            key="peak", name="Peak", event_types=("cpu",), aggregation="max", value_property="n"
        )
    ),
    "gone": MeterState(
        MeterDefinition(key="gone", name="Gone", event_types=("x",), aggregation="count"),
        archived=True,
    ),
}

GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"from_units": "0", "up_to": "100", "unit_price": usd("0.10")},
        {"from_units": "100", "up_to": "1000", "unit_price": usd("0.08"), "flat_fee": usd("2")},
        {"from_units": "1000", "up_to": None, "unit_price": usd("0.05")},
    ],
}


def plan(*charges: dict[str, Any], **changes: Any) -> PlanCreate:
    body: dict[str, Any] = {
        "code": "pro",
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd("49"),
        "charges": list(charges),
    }
    return PlanCreate.model_validate({**body, **changes})


def charge(price: dict[str, Any], meter: str = "calls", **changes: Any) -> dict[str, Any]:
    return {"key": "usage", "meter_key": meter, "price": price, **changes}


class TestPrices:
    def test_a_described_graduated_price_rates_exactly(self) -> None:
        model = domain.price_model(PUBLIC.validate_python(GRADUATED), USD)
        assert isinstance(model, Graduated)
        assert model.price(Decimal(1500)).amount == money("109")

    @pytest.mark.parametrize(
        "price",
        [
            {"model": "flat_fee", "fee": usd("49")},
            {"model": "per_unit", "unit_price": usd("0.0035")},
            {
                "model": "package",
                "package_size": "100",
                "package_price": usd("5"),
                "free_units": "10",
            },
            GRADUATED,
            {**GRADUATED, "model": "volume"},
            {
                "model": "graduated_percentage",
                "tiers": [
                    {"from_amount": "0", "up_to": "1000", "rate": "3"},
                    {"from_amount": "1000", "up_to": None, "rate": "2", "flat_fee": usd("5")},
                ],
            },
            {"model": "basis_points", "basis_points": "25"},
            {
                "model": "percentage",
                "rate": "2.9",
                "fixed_fee": usd("0.30"),
                "free_transactions": 2,
                "minimum_per_transaction": usd("0.5"),
                "maximum_per_transaction": usd("5"),
            },
            {
                "model": "matrix",
                "dimensions": ["region"],
                "cells": [
                    {"values": ["eu"], "price": {"model": "per_unit", "unit_price": usd("1")}}
                ],
                "default": {"model": "per_unit", "unit_price": usd("0.5")},
            },
        ],
    )
    def test_every_model_survives_public_to_wire_and_back(self, price: dict[str, Any]) -> None:
        model = domain.price_model(PUBLIC.validate_python(price), USD)
        wire = WIRE.validate_python(domain.describe_price(model, Money.to_wire))
        again = domain.price_model(WIRE.validate_json(WIRE.dump_json(wire)), USD)
        assert again == model
        public = PUBLIC.validate_python(domain.describe_price(again, Money.to_public))
        assert domain.price_model(public, USD) == model

    def test_wire_amounts_are_pico_unit_strings(self) -> None:
        model = domain.price_model(
            PUBLIC.validate_python({"model": "per_unit", "unit_price": usd("0.0035")}), USD
        )
        wire = WIRE.validate_python(domain.describe_price(model, Money.to_wire))
        dumped = WIRE.dump_python(wire, mode="json")
        assert dumped == {
            "model": "per_unit",
            "unit_price": {"amount": "3500000000", "currency": "USD"},
        }

    def test_a_float_quantity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="decimal string"):
            PUBLIC.validate_python({"model": "basis_points", "basis_points": 2.5})

    def test_two_matrix_cells_for_the_same_values_are_refused(self) -> None:
        cell = {"values": ["eu"], "price": {"model": "per_unit", "unit_price": usd("1")}}
        price = {"model": "matrix", "dimensions": ["region"], "cells": [cell, cell]}
        with pytest.raises(InvalidMatrix, match="two cells"):
            domain.price_model(PUBLIC.validate_python(price), USD)


def tiers(*rows: tuple[str, str | None, str]) -> dict[str, Any]:
    return {
        "model": "graduated",
        "tiers": [
            {"from_units": start, "up_to": end, "unit_price": usd(price)}
            for start, end, price in rows
        ],
    }


class TestPlanPriceSheet:
    def test_a_valid_plan_becomes_a_price_sheet(self) -> None:
        sheet = domain.plan_price_sheet(
            plan(
                charge(GRADUATED),
                charge(
                    {"model": "per_unit", "unit_price": usd("1")},
                    "gmv",
                    key="gmv",
                    billing="in_advance",
                ),
            ),
            METERS,
        )
        assert [(c.charge_id, c.meter_key, c.timing) for c in sheet.charges] == [
            ("gmv", "gmv", BillingTiming.IN_ADVANCE),
            ("usage", "calls", BillingTiming.ARREARS),
        ]
        assert sheet.currency == USD

    @pytest.mark.parametrize(
        ("rows", "error"),
        [
            ((("0", "100", "0.1"), ("150", None, "0.05")), TiersNotContiguous),
            ((("0", "100", "0.1"), ("50", None, "0.05")), TierOverlap),
            ((("0", "100", "0.1"), ("200", None, "0.05"), ("100", "200", "0.07")), TiersUnsorted),
            ((("0", "100", "0.1"), ("100", None, "-0.05")), NegativePrice),
        ],
    )
    def test_invalid_tier_tables_raise_their_own_error_naming_the_charge(
        self, rows: tuple[tuple[str, str | None, str], ...], error: type[BillingError]
    ) -> None:
        with pytest.raises(error, match=r"^charge 'usage': ") as caught:
            domain.plan_price_sheet(plan(charge(tiers(*rows))), METERS)
        assert caught.value.extensions["charge"] == "usage"

    @pytest.mark.parametrize(
        ("body", "error", "code"),
        [
            (plan(charge(GRADUATED, "nope")), domain.UnknownMeter, "unknown_meter"),
            (plan(charge(GRADUATED, "gone")), domain.MeterArchived, "meter_archived"),
            (
                plan(charge(GRADUATED, "peak", billing="in_advance")),
                domain.AdvanceRequiresAdditiveMeter,
                "advance_requires_count_or_sum_meter",
            ),
            (
                plan(charge({"model": "flat_fee", "fee": usd("1")}, billing="in_advance")),
                AdvanceNotSupported,
                "advance_not_supported",
            ),
            (
                plan(charge({"model": "basis_points", "basis_points": "25"}, "calls")),
                domain.AmountPriceRequiresSumMeter,
                "amount_price_requires_sum_meter",
            ),
            (
                plan(
                    charge(
                        {
                            "model": "matrix",
                            "dimensions": ["colour"],
                            "default": {"model": "per_unit", "unit_price": usd("1")},
                        }
                    )
                ),
                domain.MatrixDimensionNotInMeter,
                "matrix_dimension_not_in_meter",
            ),
            (
                plan(charge(GRADUATED, group_by=["colour"])),
                domain.GroupByNotInMeter,
                "group_by_not_in_meter",
            ),
            (
                plan(
                    charge({"model": "per_unit", "unit_price": {"amount": "1", "currency": "EUR"}})
                ),
                CurrencyMismatch,
                "currency_mismatch",
            ),
            (
                plan(base_fee={"amount": "49", "currency": "EUR"}),
                CurrencyMismatch,
                "currency_mismatch",
            ),
            (
                plan(minimum_commitment=usd("-1")),
                NegativePrice,
                "negative_price",
            ),
        ],
    )
    def test_refusals(self, body: PlanCreate, error: type[BillingError], code: str) -> None:
        with pytest.raises(error) as caught:
            domain.plan_price_sheet(body, METERS)
        assert caught.value.code == code
        assert caught.value.status == 422

    def test_a_matrix_on_grouped_dimensions_is_accepted(self) -> None:
        matrix = {
            "model": "matrix",
            "dimensions": ["size", "region"],
            "cells": [
                {"values": ["l", "eu"], "price": {"model": "per_unit", "unit_price": usd("2")}}
            ],
        }
        sheet = domain.plan_price_sheet(plan(charge(matrix)), METERS)
        model = sheet.charges[0].model
        assert isinstance(model, Matrix)
        assert model.price(Decimal(3), {"size": "l", "region": "eu"}).amount == money("6")

    def test_meter_keys_are_sorted_and_distinct(self) -> None:
        body = plan(
            charge(GRADUATED, "gmv", key="b"),
            charge(GRADUATED, "calls", key="a"),
            charge(GRADUATED, "gmv", key="c"),
        )
        assert domain.meter_keys_of(body) == ["calls", "gmv"]

    def test_an_override_is_checked_like_the_charge_it_replaces(self) -> None:
        body = plan(charge(GRADUATED, "calls", billing="in_advance"))
        flat = PUBLIC.validate_python({"model": "flat_fee", "fee": usd("1")})
        with pytest.raises(AdvanceNotSupported):
            domain.override_charge(body, "usage", flat, METERS)
        with pytest.raises(domain.UnknownCharge, match="no charge 'other'"):
            domain.override_charge(body, "other", flat, METERS)
        cheaper = PUBLIC.validate_python({"model": "per_unit", "unit_price": usd("0.01")})
        overridden = domain.override_charge(body, "usage", cheaper, METERS)
        assert isinstance(overridden.model, PerUnit)
        assert overridden.model.price(Decimal(1000)).amount == money("10")


class TestMigrations:
    NOW = datetime(2026, 4, 1, tzinfo=UTC)

    def test_effective_now_when_omitted(self) -> None:
        assert domain.check_migration(1, 2, 2, None, now=self.NOW) == self.NOW

    def test_a_future_instant_is_kept(self) -> None:
        later = self.NOW + timedelta(days=30)
        assert domain.check_migration(2, 1, 3, later, now=self.NOW) == later

    @pytest.mark.parametrize(
        ("from_version", "to_version", "effective_at", "error"),
        [
            (1, 3, None, domain.UnknownPlanVersion),
            (0, 1, None, domain.UnknownPlanVersion),
            (2, 2, None, domain.MigrationVersionsEqual),
            (1, 2, datetime(2026, 3, 31, tzinfo=UTC), domain.MigrationInPast),
        ],
    )
    def test_refusals(
        self,
        from_version: int,
        to_version: int,
        effective_at: datetime | None,
        error: type[BillingError],
    ) -> None:
        with pytest.raises(error):
            domain.check_migration(from_version, to_version, 2, effective_at, now=self.NOW)


def percent(
    code: str,
    value: str,
    duration: CouponDuration = CouponDuration.FOREVER,
    periods: int | None = None,
) -> CouponTerms:
    return CouponTerms(code, Decimal(value), None, duration, periods)


def fixed(
    code: str,
    amount: str,
    duration: CouponDuration = CouponDuration.FOREVER,
    periods: int | None = None,
    currency: str = "USD",
) -> CouponTerms:
    return CouponTerms(code, None, money(amount, currency), duration, periods)


class TestApplyCoupons:
    def test_percentages_compound_then_fixed_amounts(self) -> None:
        result = apply_coupons(
            money("100"),
            [fixed("TEN_OFF", "10"), percent("A", "10"), percent("B", "20")],
            period_index=0,
        )
        assert [(line.coupon_code, line.amount) for line in result.discounts] == [
            ("A", money("10")),
            ("B", money("18")),
            ("TEN_OFF", money("10")),
        ]
        assert result.total == money("62")
        assert result.subtotal == money("100")

    def test_each_discount_is_rounded_once_to_the_minor_unit(self) -> None:
        result = apply_coupons(money("10.05"), [percent("THIRD", "33.3333")], period_index=0)
        # 10.05 x 33.3333 % = 3.34999665 -> 3.35 (half-up) ; total 6.70
        assert result.discounts[0].amount == money("3.35")
        assert result.total == money("6.7")
        down = apply_coupons(
            money("10.05"),
            [percent("THIRD", "33.3333")],
            period_index=0,
            rounding=RoundingMode.DOWN,
        )
        assert down.discounts[0].amount == money("3.34")

    def test_a_fixed_amount_never_takes_the_total_below_zero(self) -> None:
        result = apply_coupons(
            money("7.5"), [fixed("BIG", "10"), fixed("MORE", "5")], period_index=0
        )
        assert [line.amount for line in result.discounts] == [money("7.5"), money("0")]
        assert result.total == money("0")

    def test_a_credit_is_not_discounted(self) -> None:
        result = apply_coupons(money("-20"), [percent("A", "50")], period_index=0)
        assert result.discounts[0].amount == money("0")
        assert result.total == money("-20")

    def test_durations(self) -> None:
        coupons = [
            fixed("ONCE", "1", CouponDuration.ONCE),
            fixed("TWICE", "2", CouponDuration.REPEATING, 2),
            fixed("ALWAYS", "4"),
        ]
        totals = [apply_coupons(money("100"), coupons, period_index=i).total for i in range(3)]
        assert totals == [money("93"), money("94"), money("96")]
        assert [
            line.coupon_code
            for line in apply_coupons(money("100"), coupons, period_index=2).discounts
        ] == ["ALWAYS"]

    def test_a_fixed_amount_in_another_currency_is_refused(self) -> None:
        with pytest.raises(CurrencyMismatch):
            apply_coupons(money("100"), [fixed("EUR5", "5", currency="EUR")], period_index=0)

    def test_zero_decimal_currencies_round_to_whole_units(self) -> None:
        result = apply_coupons(money("1001", "JPY"), [percent("HALF", "50")], period_index=0)
        assert result.discounts[0].amount == money("501", "JPY")  # 500.5 half-up
        assert result.total == money("500", "JPY")

    @pytest.mark.parametrize(
        ("args", "error"),
        [
            (("X", None, None, CouponDuration.ONCE, None), domain.CouponDiscountInvalid),
            (
                ("X", Decimal(5), money("1"), CouponDuration.ONCE, None),
                domain.CouponDiscountInvalid,
            ),
            (("X", Decimal(0), None, CouponDuration.ONCE, None), domain.CouponDiscountInvalid),
            (("X", Decimal(101), None, CouponDuration.ONCE, None), domain.CouponDiscountInvalid),
            (("X", None, money("-1"), CouponDuration.ONCE, None), domain.CouponDiscountInvalid),
            (("X", Decimal(5), None, CouponDuration.REPEATING, None), domain.CouponDurationInvalid),
            (("X", Decimal(5), None, CouponDuration.ONCE, 3), domain.CouponDurationInvalid),
        ],
    )
    def test_invalid_terms(self, args: tuple[Any, ...], error: type[BillingError]) -> None:
        with pytest.raises(error):
            CouponTerms(*args)


def test_public_money_in_plan_bodies_is_canonical() -> None:
    body = plan(base_fee=usd("49.00"))
    assert body.base_fee == MoneyPublic(amount="49", currency=USD)
