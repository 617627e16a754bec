from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.discounts import (
    CouponDiscountInvalid,
    CouponDuration,
    CouponDurationInvalid,
    CouponTerms,
    apply_coupons,
    discount_amounts,
)
from billing_common.errors import CurrencyMismatch
from billing_common.money import Money, RoundingMode


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def percent(
    code: str, value: str, duration: CouponDuration = CouponDuration.FOREVER
) -> CouponTerms:
    return CouponTerms(code, Decimal(value), None, duration)


def fixed(code: str, amount: str, currency: str = "USD") -> CouponTerms:
    return CouponTerms(code, None, Money.parse(amount, currency), CouponDuration.FOREVER)


class TestDiscountAmounts:
    def test_percentages_compound_then_fixed_amounts_in_order_given(self) -> None:
        taken = discount_amounts(
            usd("100"), [fixed("TEN_OFF", "10"), percent("A", "10"), percent("B", "20")]
        )
        assert [(coupon.code, amount) for coupon, amount in taken] == [
            ("A", usd("10")),
            ("B", usd("18")),
            ("TEN_OFF", usd("10")),
        ]

    def test_a_sub_cent_fixed_amount_is_rounded_once(self) -> None:
        [(_, half_up)] = discount_amounts(usd("10"), [fixed("ODD", "0.005")])
        assert half_up == usd("0.01")
        [(_, down)] = discount_amounts(usd("10"), [fixed("ODD", "0.005")], RoundingMode.DOWN)
        assert down == usd("0")
        result = apply_coupons(usd("10"), [fixed("ODD", "1.234")], period_index=0)
        assert result.discounts[0].amount == usd("1.23")
        assert result.total == usd("8.77")

    def test_never_below_zero_and_a_credit_is_not_discounted(self) -> None:
        taken = discount_amounts(usd("7.5"), [fixed("BIG", "10"), fixed("MORE", "5")])
        assert [amount for _, amount in taken] == [usd("7.5"), usd("0")]
        [(_, nothing)] = discount_amounts(usd("-20"), [percent("HALF", "50")])
        assert nothing == usd("0")

    def test_a_fixed_amount_in_another_currency_is_refused(self) -> None:
        with pytest.raises(CurrencyMismatch):
            discount_amounts(usd("100"), [fixed("EUR5", "5", currency="EUR")])

    @settings(max_examples=200, deadline=None)
    @given(
        # an invoice's subtotal is a sum of rounded lines: whole cents
        subtotal=st.integers(min_value=0, max_value=10**7).map(lambda cents: cents * 10**10),
        percents=st.lists(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2), max_size=3
        ),
        amounts=st.lists(st.integers(min_value=1, max_value=10**16), max_size=3),
    )
    def test_whole_minor_units_and_never_more_than_the_subtotal(
        self, subtotal: int, percents: list[Decimal], amounts: list[int]
    ) -> None:
        coupons = [
            CouponTerms(f"P{i}", p, None, CouponDuration.FOREVER) for i, p in enumerate(percents)
        ]
        coupons += [
            CouponTerms(f"F{i}", None, Money(a, usd("0").currency), CouponDuration.FOREVER)
            for i, a in enumerate(amounts)
        ]
        result = apply_coupons(Money(subtotal, usd("0").currency), coupons, period_index=0)
        unit = usd("0").currency.pico_per_minor_unit
        assert all(line.amount.amount % unit == 0 for line in result.discounts)
        assert all(not line.amount.is_negative() for line in result.discounts)
        assert not result.total.is_negative()
        taken = sum(line.amount.amount for line in result.discounts)
        assert result.total.amount == subtotal - taken


class TestDurations:
    def test_once_repeating_forever(self) -> None:
        once = CouponTerms("ONCE", Decimal(10), None, CouponDuration.ONCE)
        twice = CouponTerms("TWICE", Decimal(10), None, CouponDuration.REPEATING, 2)
        always = CouponTerms("ALWAYS", Decimal(10), None, CouponDuration.FOREVER)
        assert [once.applies_in_period(i) for i in range(3)] == [True, False, False]
        assert [twice.applies_in_period(i) for i in range(3)] == [True, True, False]
        assert [always.applies_in_period(i) for i in range(3)] == [True, True, True]
        with pytest.raises(ValueError, match="period index"):
            once.applies_in_period(-1)
        totals = [
            apply_coupons(usd("100"), [once, twice, always], period_index=i).total for i in range(3)
        ]
        assert totals == [usd("72.9"), usd("81"), usd("90")]

    @pytest.mark.parametrize(
        ("percent_off", "amount_off", "duration", "periods", "error"),
        [
            (None, None, CouponDuration.ONCE, None, CouponDiscountInvalid),
            (Decimal(5), usd("1"), CouponDuration.ONCE, None, CouponDiscountInvalid),
            (Decimal(0), None, CouponDuration.ONCE, None, CouponDiscountInvalid),
            (Decimal(101), None, CouponDuration.ONCE, None, CouponDiscountInvalid),
            (None, usd("-1"), CouponDuration.ONCE, None, CouponDiscountInvalid),
            (Decimal(5), None, CouponDuration.REPEATING, None, CouponDurationInvalid),
            (Decimal(5), None, CouponDuration.ONCE, 3, CouponDurationInvalid),
            (Decimal(5), None, CouponDuration.REPEATING, 0, CouponDurationInvalid),
        ],
    )
    def test_invalid_terms(
        self,
        percent_off: Decimal | None,
        amount_off: Money | None,
        duration: CouponDuration,
        periods: int | None,
        error: type[Exception],
    ) -> None:
        with pytest.raises(error):
            CouponTerms("X", percent_off, amount_off, duration, periods)
