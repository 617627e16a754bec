from __future__ import annotations

import dataclasses
import doctest
import enum
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    localcontext,
)
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from billing_common import money as money_module
from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount
from billing_common.money import (
    PICO,
    Money,
    MoneyPublic,
    MoneyWire,
    PicoAmount,
    RoundingMode,
    divide_rounded,
    sum_money,
)

FAST = settings(database=None, deadline=None, max_examples=60)  # keeps the file under 5 s

USD = Currency.of("USD")
EUR = Currency.of("EUR")
JPY = Currency.of("JPY")
KWD = Currency.of("KWD")
CLF = Currency.of("CLF")

DECIMAL_ROUNDING = {
    RoundingMode.HALF_UP: ROUND_HALF_UP,
    RoundingMode.HALF_EVEN: ROUND_HALF_EVEN,
    RoundingMode.DOWN: ROUND_DOWN,
    RoundingMode.UP: ROUND_UP,
    RoundingMode.CEILING: ROUND_CEILING,
    RoundingMode.FLOOR: ROUND_FLOOR,
}


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def pico(amount: int, currency: Currency = USD) -> Money:
    return Money(amount, currency)


def decimal_oracle(numerator: int, denominator: Decimal | int, mode: RoundingMode) -> int:
    """`numerator / denominator` rounded by the decimal module, with room for every digit."""
    with localcontext() as context:
        context.prec = 400
        quotient = Decimal(numerator) / Decimal(denominator)
        return int(quotient.quantize(Decimal(1), rounding=DECIMAL_ROUNDING[mode]))


# -- strategies ----------------------------------------------------------------------------

currencies = st.sampled_from(Currency.all())
big_amounts = st.integers(min_value=-(10**30), max_value=10**30)


@st.composite
def amounts_near_minor_boundaries(draw: st.DrawFn, currency: Currency) -> int:
    """Amounts at, just beside, and half-way between minor units: where rounding bites."""
    half = currency.pico_per_minor_unit // 2
    return draw(st.integers(-(10**9), 10**9)) * half + draw(st.sampled_from([-1, 0, 1]))


def amounts_for(currency: Currency) -> st.SearchStrategy[int]:
    return st.one_of(big_amounts, amounts_near_minor_boundaries(currency))


def monies_in(currency: Currency) -> st.SearchStrategy[Money]:
    return amounts_for(currency).map(lambda amount: Money(amount, currency))


monies = currencies.flatmap(monies_in)
same_currency_triples = currencies.flatmap(
    lambda currency: st.tuples(monies_in(currency), monies_in(currency), monies_in(currency))
)
decimal_quantities = st.decimals(
    min_value=Decimal("-1000000"),
    max_value=Decimal("1000000"),
    places=9,
    allow_nan=False,
    allow_infinity=False,
)
weights = st.one_of(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=12),
    st.lists(
        st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=12,
    ),
).filter(lambda ws: any(w != 0 for w in ws))


# -- construction --------------------------------------------------------------------------


class TestConstructor:
    def test_holds_pico_units_and_a_currency(self) -> None:
        money = Money(12_500_000_000_000, USD)
        assert (money.amount, money.currency) == (12_500_000_000_000, USD)

    @pytest.mark.parametrize("amount", [1.5, 0.0, True, Decimal("1"), "1", None, Fraction(1)])
    def test_rejects_anything_but_an_int(self, amount: Any) -> None:
        with pytest.raises(TypeError, match="a money amount must be an int"):
            Money(amount, USD)

    def test_rejects_a_currency_code_string(self) -> None:
        with pytest.raises(TypeError, match=r"use Currency\.of"):
            Money(1, "USD")  # type: ignore[arg-type]

    def test_normalizes_int_subclasses_to_int(self) -> None:
        class Count(enum.IntEnum):
            TEN = 10

        money = Money(Count.TEN, USD)
        assert type(money.amount) is int
        assert money == Money(10, USD)

    def test_is_frozen_with_slots(self) -> None:
        money = usd("1")
        with pytest.raises(dataclasses.FrozenInstanceError):
            money.amount = 2  # type: ignore[misc]
        assert not hasattr(money, "__dict__")


class TestZero:
    def test_is_zero_in_the_currency(self) -> None:
        assert Money.zero("jpy") == Money(0, JPY)
        assert Money.zero(EUR).currency is EUR


class TestOfMinor:
    @pytest.mark.parametrize(
        ("units", "currency", "expected"),
        [
            (1250, USD, 12_500_000_000_000),
            (-1, USD, -10_000_000_000),
            (5, JPY, 5_000_000_000_000),
            (5, KWD, 5_000_000_000),
            (1, CLF, 100_000_000),
        ],
    )
    def test_counts_minor_units(self, units: int, currency: Currency, expected: int) -> None:
        assert Money.of_minor(units, currency).amount == expected

    @pytest.mark.parametrize("units", [12.5, True, "1250"])
    def test_rejects_non_integers(self, units: Any) -> None:
        with pytest.raises(TypeError, match="count of minor units must be an int"):
            Money.of_minor(units, USD)


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("12.5", 12_500_000_000_000),
            ("12.50", 12_500_000_000_000),
            ("007.5", 7_500_000_000_000),
            ("0", 0),
            ("-0", 0),
            ("+3", 3 * PICO),
            ("100", 100 * PICO),
            ("-0.000000000001", -1),
            ("0.123456789012", 123_456_789_012),
            ("99999999999999999999999999.999999999999", 10**38 - 1),
        ],
    )
    def test_strings_in_major_units(self, text: str, expected: int) -> None:
        assert Money.parse(text, USD).amount == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (Decimal("12.5"), 12_500_000_000_000),
            (Decimal("1E+2"), 100 * PICO),
            (Decimal("1.50000000000000000"), 1_500_000_000_000),
            (Decimal("-0.000000000001"), -1),
            (Decimal("0E-30"), 0),
            (Decimal("-0"), 0),
            (3, 3 * PICO),
            (-7, -7 * PICO),
        ],
    )
    def test_decimals_and_ints(self, value: Decimal | int, expected: int) -> None:
        assert Money.parse(value, "usd") == Money(expected, USD)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "not a decimal amount"),
            (" ", "not a decimal amount"),
            ("12.5 ", "not a decimal amount"),
            (" 12.5", "not a decimal amount"),
            ("12.5\n", "not a decimal amount"),
            ("1e5", "not a decimal amount"),
            ("1E-5", "not a decimal amount"),
            ("NaN", "not a decimal amount"),
            ("Infinity", "not a decimal amount"),
            ("-inf", "not a decimal amount"),
            ("1,000.00", "not a decimal amount"),
            ("1_000", "not a decimal amount"),
            ("12.", "not a decimal amount"),
            (".5", "not a decimal amount"),
            ("--1", "not a decimal amount"),
            ("0x10", "not a decimal amount"),
            ("\u0661\u0662", "not a decimal amount"),  # Arabic-Indic digits
            ("1.0000000000001", "has 13 decimals; at most 12"),
            ("0.0000000000000", "has 13 decimals; at most 12"),
            ("1" * 65, "longer than 64 characters"),
            ("1" + "0" * 26, "out of range"),
        ],
    )
    def test_rejects_bad_strings(self, text: str, message: str) -> None:
        with pytest.raises(InvalidAmount, match=message):
            Money.parse(text, USD)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (Decimal("NaN"), "not a finite amount"),
            (Decimal("sNaN"), "not a finite amount"),
            (Decimal("-Infinity"), "not a finite amount"),
            (Decimal("0.0000000000001"), "more than 12 decimals"),
            (Decimal("1E-99"), "more than 12 decimals"),
            (Decimal("1E+26"), "out of range"),
            (Decimal("1E+999999999"), "out of range"),
        ],
    )
    def test_rejects_bad_decimals(self, value: Decimal, message: str) -> None:
        with pytest.raises(InvalidAmount, match=message):
            Money.parse(value, USD)

    def test_rejects_an_int_out_of_range(self) -> None:
        with pytest.raises(InvalidAmount, match="out of range"):
            Money.parse(10**26, USD)

    @pytest.mark.parametrize("value", [12.5, 0.0, True, None, b"12.5"])
    def test_rejects_floats_and_other_types(self, value: Any) -> None:
        with pytest.raises(TypeError, match="must be an int"):
            Money.parse(value, USD)

    def test_the_error_is_a_422_problem(self) -> None:
        with pytest.raises(InvalidAmount) as caught:
            Money.parse("1e3", USD)
        problem = caught.value.to_problem()
        assert (problem["status"], problem["code"], problem["amount"]) == (
            422,
            "invalid_amount",
            "1e3",
        )

    @FAST
    @given(monies)
    def test_round_trips_the_canonical_string(self, money: Money) -> None:
        assert Money.parse(money.to_decimal_string(), money.currency) == money

    @FAST
    @given(monies)
    def test_round_trips_the_decimal(self, money: Money) -> None:
        assert Money.parse(money.to_decimal(), money.currency) == money
        assert Money.from_decimal(money.to_decimal(), money.currency) == money


class TestFromDecimal:
    def test_is_exact(self) -> None:
        assert Money.from_decimal(Decimal("0.1"), USD).amount == 100_000_000_000
        assert Money.from_decimal(Decimal("-12.345678901234"), KWD).amount == -12_345_678_901_234

    def test_rejects_more_than_twelve_decimals(self) -> None:
        with pytest.raises(InvalidAmount, match="more than 12 decimals"):
            Money.from_decimal(Decimal("0.1234567890123"), USD)

    @pytest.mark.parametrize("value", [0.1, "0.1", 1])
    def test_takes_only_a_decimal(self, value: Any) -> None:
        with pytest.raises(TypeError, match="from_decimal takes a Decimal"):
            Money.from_decimal(value, USD)


# -- arithmetic ----------------------------------------------------------------------------


class TestAddAndSubtract:
    def test_examples(self) -> None:
        assert usd("12.5") + usd("0.000000000001") == usd("12.500000000001")
        assert usd("1") - usd("1.25") == usd("-0.25")
        assert -usd("3") == usd("-3")
        assert +usd("3") == usd("3")
        assert abs(usd("-3.5")) == usd("3.5")

    def test_mixing_currencies_raises(self) -> None:
        with pytest.raises(CurrencyMismatch, match="cannot add USD and EUR") as caught:
            _ = usd("1") + Money.parse("1", EUR)
        assert caught.value.status == 422
        with pytest.raises(CurrencyMismatch, match="cannot subtract USD and JPY"):
            _ = usd("1") - Money.parse("1", JPY)

    @pytest.mark.parametrize("other", [1, 1.0, Decimal("1"), "1"])
    def test_adding_a_non_money_is_a_type_error(self, other: Any) -> None:
        with pytest.raises(TypeError):
            _ = usd("1") + other
        with pytest.raises(TypeError):
            _ = other + usd("1")
        with pytest.raises(TypeError):
            _ = usd("1") - other

    def test_builtin_sum_is_refused_use_sum_money(self) -> None:
        with pytest.raises(TypeError):
            sum([usd("1"), usd("2")])  # type: ignore[list-item]

    @FAST
    @given(same_currency_triples)
    def test_addition_is_associative_and_commutative(self, triple: tuple[Money, ...]) -> None:
        a, b, c = triple
        assert (a + b) + c == a + (b + c)
        assert a + b == b + a
        assert (a + b).amount == a.amount + b.amount

    @FAST
    @given(same_currency_triples)
    def test_subtraction_undoes_addition(self, triple: tuple[Money, ...]) -> None:
        a, b, _ = triple
        assert a + b - b == a
        assert a - b == -(b - a)
        assert a + (-a) == Money.zero(a.currency)


class TestMultiply:
    def test_by_an_int_is_exact(self) -> None:
        assert usd("0.0035") * 1000 == usd("3.5")
        assert 3 * usd("-1.1") == usd("-3.3")
        assert usd("1").multiply(0) == Money.zero(USD)

    @pytest.mark.parametrize(
        ("amount", "quantity", "mode", "expected"),
        [
            (1, Decimal("0.5"), RoundingMode.HALF_UP, 1),
            (-1, Decimal("0.5"), RoundingMode.HALF_UP, -1),
            (1, Decimal("0.5"), RoundingMode.HALF_EVEN, 0),
            (3, Decimal("0.5"), RoundingMode.HALF_EVEN, 2),
            (1, Decimal("0.4999"), RoundingMode.HALF_UP, 0),
            (1, Decimal("0.1"), RoundingMode.UP, 1),
            (-1, Decimal("0.1"), RoundingMode.FLOOR, -1),
            (-1, Decimal("0.9"), RoundingMode.DOWN, 0),
            (-1, Decimal("0.9"), RoundingMode.CEILING, 0),
            (10, Fraction(1, 3), RoundingMode.HALF_UP, 3),
            (20, Fraction(1, 3), RoundingMode.HALF_UP, 7),
            (10**14, Decimal("1.5"), RoundingMode.DOWN, 15 * 10**13),
        ],
    )
    def test_rounds_once_to_the_pico_unit(
        self, amount: int, quantity: Decimal | Fraction, mode: RoundingMode, expected: int
    ) -> None:
        assert pico(amount).multiply(quantity, mode) == pico(expected)

    def test_the_operator_rounds_half_up(self) -> None:
        assert pico(5) * Decimal("0.1") == pico(1)
        assert pico(-5) * Decimal("0.1") == pico(-1)
        assert Decimal("0.3") * pico(5) == pico(2)
        assert usd("0.0035") * Decimal("1234.5") == usd("4.32075")

    def test_accepts_a_rounding_mode_by_its_setting_value(self) -> None:
        assert pico(5).multiply(Decimal("0.1"), "down") == pico(0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not a valid RoundingMode"):
            pico(5).multiply(Decimal("0.1"), "nearest")  # type: ignore[arg-type]

    @pytest.mark.parametrize("quantity", [1.5, 2.0, True])
    def test_refuses_floats_and_bools(self, quantity: Any) -> None:
        with pytest.raises(TypeError):
            _ = usd("1") * quantity
        with pytest.raises(TypeError):
            _ = quantity * usd("1")
        with pytest.raises(TypeError):
            usd("1").multiply(quantity)

    def test_refuses_money_times_money(self) -> None:
        with pytest.raises(TypeError):
            _ = usd("1") * usd("1")  # type: ignore[operator]

    @pytest.mark.parametrize(
        ("quantity", "message"),
        [(Decimal("NaN"), "must be finite"), (Decimal("1E+5000"), "out of range")],
    )
    def test_refuses_unusable_decimals(self, quantity: Decimal, message: str) -> None:
        with pytest.raises(InvalidAmount, match=message):
            usd("1").multiply(quantity)

    @FAST
    @given(monies, st.integers(min_value=-20, max_value=20))
    def test_by_an_int_is_repeated_addition(self, money: Money, times: int) -> None:
        repeated = sum_money([money] * abs(times), money.currency)
        assert money * times == (repeated if times >= 0 else -repeated)

    @FAST
    @given(monies, decimal_quantities, st.sampled_from(list(RoundingMode)))
    def test_matches_the_decimal_module(
        self, money: Money, quantity: Decimal, mode: RoundingMode
    ) -> None:
        numerator, denominator = quantity.as_integer_ratio()
        expected = decimal_oracle(money.amount * numerator, denominator, mode)
        assert money.multiply(quantity, mode).amount == expected


class TestCompare:
    def test_orders_within_a_currency(self) -> None:
        assert usd("1") < usd("1.000000000001")
        assert usd("1") <= usd("1")
        assert usd("2") > usd("-3")
        assert usd("2") >= usd("2")
        assert max(usd("1"), usd("3"), usd("2")) == usd("3")

    @pytest.mark.parametrize("compare", ["__lt__", "__le__", "__gt__", "__ge__"])
    def test_ordering_across_currencies_raises(self, compare: str) -> None:
        with pytest.raises(CurrencyMismatch, match="cannot compare USD and EUR"):
            getattr(usd("1"), compare)(Money.parse("1", EUR))

    def test_ordering_against_a_number_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            _ = usd("1") < 2  # type: ignore[operator]

    def test_equality_and_hash(self) -> None:
        assert usd("12.5") == Money(12_500_000_000_000, USD)
        assert hash(usd("12.5")) == hash(Money(12_500_000_000_000, USD))
        assert usd("0") != Money.zero(EUR)
        one: object = 1
        assert usd("1") != one
        assert len({usd("1"), usd("1.0"), Money.parse("1", EUR)}) == 2

    def test_predicates(self) -> None:
        assert Money.zero(USD).is_zero()
        assert not pico(-1).is_zero()
        assert pico(-1).is_negative()
        assert not Money.zero(USD).is_negative()
        assert pico(1).is_positive()
        assert not pico(-1).is_positive()

    @FAST
    @given(currencies.flatmap(lambda c: st.tuples(monies_in(c), monies_in(c))))
    def test_order_follows_the_amount(self, pair: tuple[Money, Money]) -> None:
        a, b = pair
        assert (a < b) == (a.amount < b.amount)
        assert (a <= b) == (a.amount <= b.amount)
        assert (a == b) == (a.amount == b.amount)


class TestSumMoney:
    def test_empty_is_zero(self) -> None:
        assert sum_money([], USD) == Money.zero(USD)
        assert sum_money(iter(()), "jpy") == Money.zero(JPY)

    def test_adds_a_generator(self) -> None:
        assert sum_money((usd(s) for s in ["1.1", "2.2", "-0.3"]), USD) == usd("3")

    def test_a_foreign_item_raises(self) -> None:
        with pytest.raises(CurrencyMismatch):
            sum_money([usd("1"), Money.parse("1", EUR)], USD)
        with pytest.raises(CurrencyMismatch):
            sum_money([Money.parse("1", EUR)], USD)


# -- allocation ----------------------------------------------------------------------------


class TestAllocate:
    def test_splits_without_losing_a_pico_unit(self) -> None:
        shares = usd("100").allocate([1, 1, 1])
        expected = [33_333_333_333_334, 33_333_333_333_333, 33_333_333_333_333]
        assert [s.amount for s in shares] == expected

    @pytest.mark.parametrize(
        ("total", "weights", "expected"),
        [
            (10, [1, 1, 1], [4, 3, 3]),
            (-10, [1, 1, 1], [-4, -3, -3]),
            (5, [3, 3, 1], [2, 2, 1]),  # the left-over goes to the largest remainder, not first
            (5, [0, 1], [0, 5]),
            (10, [Decimal("0.5"), Decimal("1.5")], [3, 7]),
            (10, [Decimal("0.1"), 3], [0, 10]),
            (2, [1, 1, 1, 1], [1, 1, 0, 0]),
            (0, [1, 2], [0, 0]),
            (7, [5], [7]),
        ],
    )
    def test_largest_remainder_with_ties_to_the_earlier(
        self, total: int, weights: list[int | Decimal], expected: list[int]
    ) -> None:
        assert [share.amount for share in pico(total).allocate(weights)] == expected

    def test_shares_keep_the_currency(self) -> None:
        assert {share.currency for share in Money(7, KWD).allocate([1, 2])} == {KWD}

    @pytest.mark.parametrize(
        ("weights", "error", "message"),
        [
            ([], ValueError, "at least one weight"),
            ([0, 0], ValueError, "must not all be zero"),
            ([Decimal(0)], ValueError, "must not all be zero"),
            ([-1, 2], ValueError, "must not be negative"),
            ([1.0, 2.0], TypeError, "must be an int, Decimal or Fraction"),
            ([True], TypeError, "must be an int, Decimal or Fraction"),
            ([Decimal("NaN")], InvalidAmount, "must be finite"),
        ],
    )
    def test_rejects_bad_weights(
        self, weights: list[Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            usd("1").allocate(weights)

    @FAST
    @given(monies, weights)
    def test_sums_to_the_total_and_each_share_is_within_one_pico_unit(
        self, money: Money, ws: list[int | Decimal]
    ) -> None:
        shares = money.allocate(ws)
        assert len(shares) == len(ws)
        assert sum_money(shares, money.currency) == money
        weight_sum = sum(Fraction(w) for w in ws)
        for share, weight in zip(shares, ws, strict=True):
            exact = Fraction(money.amount) * Fraction(weight) / weight_sum
            assert abs(share.amount - exact) < 1
            if weight == 0:
                assert share.is_zero()


class TestAllocateMinor:
    def test_splits_in_cents(self) -> None:
        shares = usd("100").allocate_minor([1, 1, 1])
        assert [s.format_minor() for s in shares] == ["33.34", "33.33", "33.33"]
        assert [s.to_decimal_string() for s in shares] == ["33.34", "33.33", "33.33"]

    def test_splits_in_yen_and_fils(self) -> None:
        assert [s.format_minor() for s in Money.parse("100", JPY).allocate_minor([1, 1, 1])] == [
            "34",
            "33",
            "33",
        ]
        assert [s.format_minor() for s in Money.parse("0.01", KWD).allocate_minor([1, 2])] == [
            "0.003",
            "0.007",
        ]

    def test_negative_totals(self) -> None:
        shares = usd("-0.05").allocate_minor([1, 1])
        assert [s.to_decimal_string() for s in shares] == ["-0.03", "-0.02"]

    def test_needs_whole_minor_units(self) -> None:
        with pytest.raises(InvalidAmount, match="not a whole number of minor units"):
            usd("0.001").allocate_minor([1, 1])

    @FAST
    @given(currencies, st.integers(-(10**15), 10**15), weights)
    def test_sums_to_the_total_and_each_share_is_within_one_minor_unit(
        self, currency: Currency, units: int, ws: list[int | Decimal]
    ) -> None:
        money = Money.of_minor(units, currency)
        shares = money.allocate_minor(ws)
        assert sum_money(shares, currency) == money
        weight_sum = sum(Fraction(w) for w in ws)
        for share, weight in zip(shares, ws, strict=True):
            share_units = share.minor_units_amount()  # raises unless whole minor units
            assert abs(share_units - Fraction(units) * Fraction(weight) / weight_sum) < 1


# -- rounding ------------------------------------------------------------------------------


class TestDivideRounded:
    def test_needs_a_positive_denominator(self) -> None:
        with pytest.raises(ValueError, match="denominator must be positive"):
            divide_rounded(1, 0, RoundingMode.HALF_UP)
        with pytest.raises(ValueError, match="denominator must be positive"):
            divide_rounded(1, -2, RoundingMode.HALF_UP)

    @FAST
    @given(
        st.integers(-(10**40), 10**40),
        st.integers(1, 10**20),
        st.sampled_from(list(RoundingMode)),
    )
    def test_matches_the_decimal_module(
        self, numerator: int, denominator: int, mode: RoundingMode
    ) -> None:
        expected = decimal_oracle(numerator, denominator, mode)
        assert divide_rounded(numerator, denominator, mode) == expected


class TestRoundToMinor:
    @pytest.mark.parametrize(
        ("value", "currency", "mode", "expected"),
        [
            ("0.125", USD, RoundingMode.HALF_UP, "0.13"),
            ("-0.125", USD, RoundingMode.HALF_UP, "-0.13"),
            ("0.125", USD, RoundingMode.HALF_EVEN, "0.12"),
            ("0.135", USD, RoundingMode.HALF_EVEN, "0.14"),
            ("-0.125", USD, RoundingMode.HALF_EVEN, "-0.12"),
            ("0.1249999999", USD, RoundingMode.HALF_UP, "0.12"),
            ("0.129", USD, RoundingMode.DOWN, "0.12"),
            ("-0.129", USD, RoundingMode.DOWN, "-0.12"),
            ("0.121", USD, RoundingMode.UP, "0.13"),
            ("-0.121", USD, RoundingMode.UP, "-0.13"),
            ("0.121", USD, RoundingMode.CEILING, "0.13"),
            ("-0.129", USD, RoundingMode.CEILING, "-0.12"),
            ("0.129", USD, RoundingMode.FLOOR, "0.12"),
            ("-0.121", USD, RoundingMode.FLOOR, "-0.13"),
            ("12.345", USD, RoundingMode.HALF_UP, "12.35"),
            ("12.34", USD, RoundingMode.UP, "12.34"),
            ("2.5", JPY, RoundingMode.HALF_EVEN, "2"),
            ("3.5", JPY, RoundingMode.HALF_EVEN, "4"),
            ("2.5", JPY, RoundingMode.HALF_UP, "3"),
            ("1.0005", KWD, RoundingMode.HALF_UP, "1.001"),
            ("1.00005", CLF, RoundingMode.HALF_UP, "1.0001"),
            ("0.000000000001", USD, RoundingMode.UP, "0.01"),
            ("-0.000000000001", USD, RoundingMode.HALF_UP, "0"),
        ],
    )
    def test_examples(
        self, value: str, currency: Currency, mode: RoundingMode, expected: str
    ) -> None:
        rounded = Money.parse(value, currency).round_to_minor(mode)
        assert rounded == Money.parse(expected, currency)

    def test_defaults_to_half_up(self) -> None:
        assert usd("0.005").round_to_minor() == usd("0.01")

    @FAST
    @given(monies, st.sampled_from(list(RoundingMode)))
    def test_is_idempotent_and_lands_on_a_minor_unit(
        self, money: Money, mode: RoundingMode
    ) -> None:
        rounded = money.round_to_minor(mode)
        assert rounded.amount % money.currency.pico_per_minor_unit == 0
        assert rounded.round_to_minor(mode) == rounded
        for other in RoundingMode:
            assert rounded.round_to_minor(other) == rounded

    @FAST
    @given(monies, st.sampled_from([RoundingMode.HALF_UP, RoundingMode.HALF_EVEN]))
    def test_nearest_modes_move_at_most_half_a_minor_unit(
        self, money: Money, mode: RoundingMode
    ) -> None:
        moved = abs(money.round_to_minor(mode).amount - money.amount)
        assert 2 * moved <= money.currency.pico_per_minor_unit

    @FAST
    @given(monies)
    def test_directed_modes_go_their_way_by_less_than_a_minor_unit(self, money: Money) -> None:
        unit = money.currency.pico_per_minor_unit
        down, up = money.round_to_minor(RoundingMode.DOWN), money.round_to_minor(RoundingMode.UP)
        floor = money.round_to_minor(RoundingMode.FLOOR)
        ceiling = money.round_to_minor(RoundingMode.CEILING)
        assert abs(down.amount) <= abs(money.amount) <= abs(up.amount)
        assert floor <= money <= ceiling
        for rounded in (down, up, floor, ceiling):
            assert abs(rounded.amount - money.amount) < unit

    @FAST
    @given(monies, st.sampled_from(list(RoundingMode)))
    def test_matches_the_decimal_module(self, money: Money, mode: RoundingMode) -> None:
        unit = money.currency.pico_per_minor_unit
        expected = decimal_oracle(money.amount, unit, mode) * unit
        assert money.round_to_minor(mode).amount == expected


# -- formatting ----------------------------------------------------------------------------


class TestToDecimalString:
    @pytest.mark.parametrize(
        ("amount", "expected"),
        [
            (12_500_000_000_000, "12.5"),
            (0, "0"),
            (-1, "-0.000000000001"),
            (100 * PICO, "100"),
            (-100 * PICO, "-100"),
            (10**30 + 1, "1000000000000000000.000000000001"),
            (123_456_789_012, "0.123456789012"),
        ],
    )
    def test_is_canonical(self, amount: int, expected: str) -> None:
        assert pico(amount).to_decimal_string() == expected

    def test_str_and_repr(self) -> None:
        assert str(usd("12.50")) == "12.5 USD"
        assert repr(usd("12.50")) == "Money.parse('12.5', 'USD')"


class TestToDecimal:
    def test_is_exact_beyond_the_default_context_precision(self) -> None:
        value = pico(10**30 + 1).to_decimal()
        assert value == Decimal("1000000000000000000.000000000001")
        assert str(value) == "1000000000000000000.000000000001"

    def test_examples(self) -> None:
        assert usd("12.50").to_decimal() == Decimal("12.5")
        assert pico(-1).to_decimal() == Decimal("-1E-12")


class TestFormatMinor:
    @pytest.mark.parametrize(
        ("value", "currency", "expected"),
        [
            ("12.5", USD, "12.50"),
            ("12.345", USD, "12.35"),
            ("-12.345", USD, "-12.35"),
            ("-0.004", USD, "0.00"),
            ("0", USD, "0.00"),
            ("12.5", JPY, "13"),
            ("-12.5", JPY, "-13"),
            ("1", KWD, "1.000"),
            ("0.0005", KWD, "0.001"),
            ("7.00005", CLF, "7.0001"),
            ("1234567.891", USD, "1234567.89"),
        ],
    )
    def test_rounds_half_up_to_exact_decimals(
        self, value: str, currency: Currency, expected: str
    ) -> None:
        assert Money.parse(value, currency).format_minor() == expected

    @FAST
    @given(monies)
    def test_parses_back_to_the_rounded_amount(self, money: Money) -> None:
        text = money.format_minor()
        assert Money.parse(text, money.currency) == money.round_to_minor(RoundingMode.HALF_UP)
        decimals = text.partition(".")[2]
        assert len(decimals) == money.currency.minor_units


class TestMinorUnitsAmount:
    def test_counts_minor_units(self) -> None:
        assert usd("12.5").minor_units_amount() == 1250
        assert usd("-0.01").minor_units_amount() == -1
        assert Money.parse("12", JPY).minor_units_amount() == 12
        assert Money.parse("1.234", KWD).minor_units_amount() == 1234

    def test_requires_whole_minor_units(self) -> None:
        with pytest.raises(InvalidAmount, match="round_to_minor"):
            usd("12.345").minor_units_amount()


# -- wire forms ----------------------------------------------------------------------------


class Rated(BaseModel):
    total: Money
    raw: PicoAmount


class TestPicoAmount:
    def test_serializes_as_a_string(self) -> None:
        rated = Rated(total=usd("1"), raw=12_500_000_000_000)
        assert rated.model_dump()["raw"] == "12500000000000"
        assert '"raw":"12500000000000"' in rated.model_dump_json()

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("12500000000000", 12_500_000_000_000), ("-1", -1), (7, 7), ("0", 0)],
    )
    def test_validates_from_a_string_or_an_int(self, value: str | int, expected: int) -> None:
        rated = Rated.model_validate({"total": usd("1"), "raw": value})
        assert rated.raw == expected
        assert type(rated.raw) is int

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (1.0, "not float"),
            (True, "not bool"),
            (None, "not NoneType"),
            ("1.5", "not an integer count of pico-units"),
            ("1e3", "not an integer count of pico-units"),
            ("+1", "not an integer count of pico-units"),
            (" 1", "not an integer count of pico-units"),
            ("", "not an integer count of pico-units"),
            ("1" * 39, "out of range"),
            (10**38, "out of range"),
        ],
    )
    def test_rejects(self, value: object, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            Rated.model_validate({"total": usd("1"), "raw": value})

    def test_json_float_is_rejected(self) -> None:
        payload = '{"total": {"amount": "1", "currency": "USD"}, "raw": 1.0}'
        with pytest.raises(ValidationError, match="not float"):
            Rated.model_validate_json(payload)

    def test_json_schema_is_a_string(self) -> None:
        schema = Rated.model_json_schema()["properties"]["raw"]
        assert schema["type"] == "string"
        assert schema["pattern"] == "^-?[0-9]{1,38}$"


class TestMoneyWire:
    def test_to_wire_is_pico_units_as_a_string(self) -> None:
        wire = usd("12.5").to_wire()
        assert wire.model_dump() == {"amount": "12500000000000", "currency": "USD"}
        assert wire.model_dump_json() == '{"amount":"12500000000000","currency":"USD"}'

    def test_to_money(self) -> None:
        wire = MoneyWire.model_validate_json('{"amount": "-1", "currency": "kwd"}')
        assert wire.to_money() == Money(-1, KWD)

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ('{"amount": 1.5, "currency": "USD"}', "not float"),
            ('{"amount": "1.5", "currency": "USD"}', "not an integer count"),
            ('{"amount": "1", "currency": "XYZ"}', "not an active ISO 4217"),
            ('{"amount": "1", "currency": "USD", "note": 1}', "Extra inputs"),
            ('{"amount": "1"}', "Field required"),
        ],
    )
    def test_rejects(self, payload: str, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            MoneyWire.model_validate_json(payload)

    def test_an_amount_too_large_for_storage_does_not_go_on_the_wire(self) -> None:
        with pytest.raises(InvalidAmount, match="out of range"):
            pico(10**38).to_wire()

    @FAST
    @given(monies)
    def test_round_trips_through_json(self, money: Money) -> None:
        text = money.to_wire().model_dump_json()
        assert MoneyWire.model_validate_json(text).to_money() == money


class TestMoneyPublic:
    def test_is_major_units_as_a_decimal_string(self) -> None:
        public = usd("12.50").to_public()
        assert public.model_dump() == {"amount": "12.5", "currency": "USD"}
        assert public.model_dump_json() == '{"amount":"12.5","currency":"USD"}'
        assert MoneyPublic.from_money(pico(-1)).amount == "-0.000000000001"

    def test_validates_to_the_canonical_amount(self) -> None:
        public = MoneyPublic.model_validate({"amount": "0012.50", "currency": "jpy"})
        assert public.amount == "12.5"
        assert public.to_money() == Money.parse("12.5", JPY)

    @pytest.mark.parametrize(
        ("amount", "message"),
        [
            (12.5, "not float"),
            (12, "not int"),
            ("1e3", "not a decimal amount"),
            ("12.5 ", "not a decimal amount"),
            ("NaN", "not a decimal amount"),
            ("0.0000000000001", "at most 12"),
        ],
    )
    def test_rejects(self, amount: object, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            MoneyPublic.model_validate({"amount": amount, "currency": "USD"})

    @FAST
    @given(monies)
    def test_round_trips_through_json(self, money: Money) -> None:
        text = money.to_public().model_dump_json()
        assert MoneyPublic.model_validate_json(text).to_money() == money


class TestMoneyAsAPydanticField:
    def test_serializes_to_the_wire_shape(self) -> None:
        rated = Rated(total=usd("12.5"), raw=0)
        assert rated.model_dump() == {
            "total": {"amount": "12500000000000", "currency": "USD"},
            "raw": "0",
        }
        assert rated.model_dump_json() == (
            '{"total":{"amount":"12500000000000","currency":"USD"},"raw":"0"}'
        )

    def test_validates_from_the_wire_shape_and_from_money(self) -> None:
        payload = '{"total": {"amount": "-5", "currency": "EUR"}, "raw": "1"}'
        assert Rated.model_validate_json(payload).total == Money(-5, EUR)
        assert Rated(total=usd("2"), raw=1).total == usd("2")
        assert Rated.model_validate(
            {"total": {"amount": 3, "currency": "USD"}, "raw": 1}
        ).total == (pico(3))

    @pytest.mark.parametrize(
        ("total", "message"),
        [
            ({"amount": 1.5, "currency": "USD"}, "not float"),
            ({"amount": "1"}, "Field required"),
            ("12.5 USD", "valid dictionary or instance of MoneyWire"),
            (12.5, "valid dictionary or instance of MoneyWire"),
        ],
    )
    def test_rejects(self, total: object, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            Rated.model_validate({"total": total, "raw": 1})

    def test_json_schema_refers_to_the_wire_model(self) -> None:
        schema = Rated.model_json_schema()
        assert schema["properties"]["total"] == {"$ref": "#/$defs/MoneyWire"}
        assert schema["$defs"]["MoneyWire"]["properties"]["amount"]["type"] == "string"

    @FAST
    @given(monies)
    def test_round_trips_through_json(self, money: Money) -> None:
        rated = Rated(total=money, raw=money.amount)
        assert Rated.model_validate_json(rated.model_dump_json()) == rated
        assert Rated.model_validate(rated.model_dump()) == rated


def test_docstring_examples() -> None:
    result = doctest.testmod(money_module)
    assert result.attempted > 0
    assert result.failed == 0
