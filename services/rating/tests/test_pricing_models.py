"""Every pricing model: exact amounts worked out by hand, validation, and properties."""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount, ValidationFailed
from billing_common.money import Money
from billing_rating import pricing_models
from billing_rating.pricing_models import (
    BasisPoints,
    FlatFee,
    Graduated,
    GraduatedPercentage,
    Matrix,
    MatrixCellMissing,
    Package,
    Percentage,
    PercentageTier,
    PerUnit,
    Tier,
    Volume,
    add_quantities,
    to_quantity,
)

FAST = settings(database=None, deadline=None, max_examples=150)

USD = Currency.of("USD")
EUR = Currency.of("EUR")
D = Decimal


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def tiers(*rows: tuple[int | str | None, str, str | None]) -> list[Tier]:
    """Tiers from (up_to, unit price, flat fee) rows; each starts where the previous ends."""
    result = []
    start = D(0)
    for up_to, price, flat in rows:
        end = None if up_to is None else D(up_to)
        result.append(Tier(start, end, usd(price), None if flat is None else usd(flat)))
        start = end if end is not None else start
    return result


# (0, 100] at 0.10; (100, 1000] at 0.08 + flat 2; (1000, inf) at 0.05 + flat 10.
STANDARD_TIERS = tiers((100, "0.10", None), (1000, "0.08", "2"), (None, "0.05", "10"))


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(pricing_models, raise_on_error=False).failed == 0


# -- flat fee and per unit -----------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["0", "1", "0.5", "1000000"])
def test_a_flat_fee_ignores_the_quantity(quantity: str) -> None:
    breakdown = FlatFee(usd("49")).price(D(quantity))
    assert breakdown.amount == usd("49")
    assert breakdown.unit_price == usd("49")
    assert breakdown.explanation == "flat fee 49 USD for the period"


@pytest.mark.parametrize(
    ("price", "quantity", "expected"),
    [
        ("0.0035", "0", "0"),
        ("0.0035", "1", "0.0035"),
        ("0.0035", "1234.5", "4.32075"),  # 1234.5 x 0.0035 = 4.32075, exact
        ("0.0035", "1000000", "3500"),
        # 0.0035 x 0.000000001 = 0.0000000000035: 3.5 pico-units, half-up to 4
        ("0.0035", "0.000000001", "0.000000000004"),
        ("0.000000000001", "0.5", "0.000000000001"),  # half a pico-unit rounds up
        ("0.000000000001", "0.49", "0"),  # below half rounds down
        ("0.123456789012", "3", "0.370370367036"),  # 12 decimals kept, no rounding
    ],
)
def test_per_unit(price: str, quantity: str, expected: str) -> None:
    breakdown = PerUnit(usd(price)).price(D(quantity))
    assert breakdown.amount == usd(expected)
    assert breakdown.unit_price == usd(price)
    assert breakdown.tiers == ()


def test_per_unit_explains_itself() -> None:
    breakdown = PerUnit(usd("0.0035")).price(D("1234.5"))
    assert breakdown.explanation == "1234.5 units x 0.0035 USD = 4.32075 USD"


# -- package ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "packages", "expected"),
    [
        ("0", 0, "0"),
        ("100", 0, "0"),  # all inside the 100 free units
        ("100.5", 1, "5"),  # 0.5 paid units: a partial package rounds up
        ("200", 1, "5"),  # 100 paid units: exactly one package
        ("201", 2, "10"),  # 101 paid units: one unit over, a second package
        ("1050", 10, "50"),  # 950 paid units: 9.5 packages -> 10
    ],
)
def test_package_with_free_units(quantity: str, packages: int, expected: str) -> None:
    plan = Package(D(100), usd("5"), free_units=D(100))
    breakdown = plan.price(D(quantity))
    assert breakdown.packages == packages
    assert breakdown.amount == usd(expected)
    assert breakdown.unit_price == usd("5")


def test_package_of_fractional_size() -> None:
    # 1.2 units in packages of 0.5: 2.4 packages -> 3 at 1 USD
    assert Package(D("0.5"), usd("1")).price(D("1.2")).amount == usd("3")


def test_package_explains_itself() -> None:
    plan = Package(D(100), usd("5"), free_units=D(100))
    assert plan.price(D(1050)).explanation == (
        "1050 units, 100 free: 10 packages of 100 units x 5 USD = 50 USD"
    )


# -- graduated -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected", "tier_amounts"),
    [
        ("0", "0", []),  # zero usage enters no tier, pays no flat fee
        ("0.5", "0.05", ["0.05"]),
        ("1", "0.1", ["0.1"]),
        ("100", "10", ["10"]),  # exactly at the bound: tier 2 not entered, no flat fee
        ("100.5", "12.04", ["10", "2.04"]),  # 0.5 x 0.08 + flat 2
        ("101", "12.08", ["10", "2.08"]),  # one unit over: 0.08 + flat 2
        ("1000", "84", ["10", "74"]),  # 900 x 0.08 + 2
        ("1001", "94.05", ["10", "74", "10.05"]),  # 0.05 + flat 10
        ("1500", "119", ["10", "74", "35"]),  # 500 x 0.05 + 10
    ],
)
def test_graduated(quantity: str, expected: str, tier_amounts: list[str]) -> None:
    breakdown = Graduated(STANDARD_TIERS).price(D(quantity))
    assert breakdown.amount == usd(expected)
    assert [line.amount for line in breakdown.tiers] == [usd(a) for a in tier_amounts]
    assert sum(line.units for line in breakdown.tiers) == D(quantity)
    assert breakdown.unit_price is None


def test_graduated_tier_lines_say_how() -> None:
    breakdown = Graduated(STANDARD_TIERS).price(D(101))
    first, second = breakdown.tiers
    assert (first.tier_index, first.from_units, first.up_to, first.units) == (
        0,
        D(0),
        D(100),
        D(100),
    )
    assert (first.unit_price, first.flat_fee) == (usd("0.10"), None)
    assert (second.tier_index, second.from_units, second.up_to, second.units) == (
        1,
        D(100),
        D(1000),
        D(1),
    )
    assert (second.unit_price, second.flat_fee, second.amount) == (
        usd("0.08"),
        usd("2"),
        usd("2.08"),
    )
    assert breakdown.explanation == (
        "graduated: 101 units: tier 1 (0, 100]: 100 x 0.1 USD = 10 USD; "
        "tier 2 (100, 1000]: 1 x 0.08 USD + flat 2 USD = 2.08 USD; total 12.08 USD"
    )


def test_graduated_with_fractional_bounds_and_rounding() -> None:
    # (0, 0.5] at 0.000000000003, then 0.000000000001: 0.75 units
    # tier 1: 0.5 x 3 pico = 1.5 pico -> 2; tier 2: 0.25 x 1 pico = 0.25 -> 0
    plan = Graduated(
        [
            Tier(D(0), D("0.5"), usd("0.000000000003")),
            Tier(D("0.5"), None, usd("0.000000000001")),
        ]
    )
    breakdown = plan.price(D("0.75"))
    assert [line.amount.amount for line in breakdown.tiers] == [2, 0]
    assert breakdown.amount.amount == 2


def test_a_single_open_tier_is_per_unit_pricing() -> None:
    plan = Graduated([Tier(D(0), None, usd("0.25"), flat_fee=usd("1"))])
    assert plan.price(D(4)).amount == usd("2")  # 4 x 0.25 + flat 1
    assert plan.price(D(0)).amount == usd("0")


# -- volume ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected", "tier_index"),
    [
        ("0", "0", None),
        ("1", "0.1", 0),
        ("100", "10", 0),  # at the bound: still tier 1
        ("100.5", "10.04", 1),  # 100.5 x 0.08 + 2
        ("101", "10.08", 1),  # 101 x 0.08 + 2
        ("1000", "82", 1),  # 1000 x 0.08 + 2
        ("1001", "60.05", 2),  # 1001 x 0.05 + 10: the total falls
        ("1500", "85", 2),
    ],
)
def test_volume(quantity: str, expected: str, tier_index: int | None) -> None:
    breakdown = Volume(STANDARD_TIERS).price(D(quantity))
    assert breakdown.amount == usd(expected)
    if tier_index is None:
        assert breakdown.tiers == ()
    else:
        (line,) = breakdown.tiers
        assert line.tier_index == tier_index
        assert line.units == D(quantity)
        assert breakdown.unit_price == line.unit_price


def test_volume_knows_whether_it_is_monotone() -> None:
    assert not Volume(STANDARD_TIERS).is_monotone  # 82 at 1000, 60.05 at 1001
    assert not Volume(STANDARD_TIERS).supports_advance
    # (0, 100] at 1.00, then 0.90 + flat 10: at 100 both give 100, so it never falls
    assert Volume(tiers((100, "1", None), (None, "0.90", "10"))).is_monotone
    assert Volume(tiers((100, "1", None), (None, "0.90", "9.99"))).is_monotone is False


def test_volume_explains_itself() -> None:
    assert Volume(STANDARD_TIERS).price(D(101)).explanation == (
        "volume: all units at the tier reached: "
        "tier 2 (100, 1000]: 101 x 0.08 USD + flat 2 USD = 10.08 USD"
    )


# -- graduated percentage and basis points ------------------------------------------------

GRADUATED_PERCENTAGE = GraduatedPercentage(
    USD,
    [
        PercentageTier(D(0), D(1000), D(3)),
        PercentageTier(D(1000), D(10000), D(2), usd("5")),
        PercentageTier(D(10000), None, D(1)),
    ],
)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", "0"),
        ("0.01", "0.0003"),
        ("1000", "30"),  # at the bound: 3 % of 1000, tier 2 not entered
        ("1000.01", "35.0002"),  # 2 % of 0.01 + flat 5
        ("12000", "235"),  # 30 + (180 + 5) + 20
        ("0.000000000001", "0"),  # 3 % of a pico-unit rounds to nothing
    ],
)
def test_graduated_percentage(amount: str, expected: str) -> None:
    breakdown = GRADUATED_PERCENTAGE.price(D(amount))
    assert breakdown.amount == usd(expected)
    assert sum(line.amount.amount for line in breakdown.tiers) == breakdown.amount.amount


def test_graduated_percentage_tier_lines_carry_the_rate() -> None:
    line = GRADUATED_PERCENTAGE.price(D("1500")).tiers[1]
    assert (line.rate, line.units, line.unit_price) == (D(2), D(500), None)
    assert line.explanation == "tier 2 (1000, 10000]: 2% of 500 + flat 5 USD = 15 USD"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", "0"),
        ("1", "0.0025"),
        ("12345.67", "30.864175"),
        ("0.000000000002", "0"),  # 0.005 pico-units -> 0
        ("0.0000000002", "0.000000000001"),  # 0.5 pico-units -> 1 (half-up)
    ],
)
def test_basis_points(amount: str, expected: str) -> None:
    breakdown = BasisPoints(USD, D(25)).price(D(amount))
    assert breakdown.amount == usd(expected)


def test_basis_points_explain_themselves() -> None:
    assert BasisPoints(USD, D(25)).price(D(1000)).explanation == "25 bp of 1000 USD = 2.5 USD"


# -- percentage ------------------------------------------------------------------------------


def amounts(*values: str) -> list[Decimal]:
    return [D(value) for value in values]


@pytest.mark.parametrize(
    ("plan", "transactions", "expected"),
    [
        pytest.param(
            Percentage(
                USD,
                D("2.5"),
                fixed_fee=usd("2"),
                free_transactions=3,
                free_amount=usd("250"),
            ),
            amounts("50", "100", "250", "400"),
            # 50 and 100 free (150 <= 250); 250 crosses the free 250: 150 paid,
            # 3.75 + 2; the 4th is past the 3 free transactions: 10 + 2 -> 17.75
            "17.75",
            id="free-count-and-amount-whichever-first",
        ),
        pytest.param(
            Percentage(USD, D(2), free_amount=usd("50")),
            amounts("40", "30", "20"),
            # 40 free; 30 crosses 50: 20 paid -> 0.4; 20 -> 0.4
            "0.8",
            id="free-amount-only",
        ),
        pytest.param(
            Percentage(USD, D(1), fixed_fee=usd("0.1"), free_transactions=1),
            amounts("100", "100"),
            "1.1",  # the first is free; the second 1 + 0.1
            id="free-transactions-only",
        ),
        pytest.param(
            Percentage(USD, D(10), free_transactions=0, free_amount=usd("100")),
            amounts("10"),
            "1",  # zero free transactions: the allowance is over before it starts
            id="zero-free-transactions",
        ),
        pytest.param(
            Percentage(USD, D(1), minimum_per_transaction=usd("0.5")),
            amounts("10", "100"),
            "1.5",  # 0.1 raised to 0.5; 1 stays
            id="minimum-per-transaction",
        ),
        pytest.param(
            Percentage(USD, D(10), maximum_per_transaction=usd("1")),
            amounts("5", "100"),
            "1.5",  # 0.5 stays; 10 capped at 1
            id="maximum-per-transaction",
        ),
        pytest.param(
            Percentage(
                USD,
                D("2.9"),
                fixed_fee=usd("0.30"),
                free_transactions=2,
                minimum_per_transaction=usd("0.50"),
                maximum_per_transaction=usd("5"),
            ),
            amounts("10", "20", "5", "100", "1000"),
            # free, free, 0.445 -> 0.50, 3.20, 29.30 -> 5
            "8.7",
            id="minimum-and-maximum",
        ),
        pytest.param(
            Percentage(USD, D("0.5")),
            amounts("0.000000000001", "0.0000000001"),
            # 0.005 pico -> 0; 0.5 pico -> 1: each transaction rounds half-up on its own
            "0.000000000001",
            id="sub-pico-rounding-per-transaction",
        ),
        pytest.param(
            Percentage(USD, D(1), fixed_fee=usd("0.1"), free_amount=usd("50")),
            amounts("50", "0", "10"),
            # 50 fills the free amount exactly and is free; the allowance is then over:
            # 0 pays the fixed fee 0.1, 10 pays 0.1 + 0.1
            "0.3",
            id="free-amount-used-up-exactly",
        ),
        pytest.param(Percentage(USD, D(3), fixed_fee=usd("1")), [], "0", id="no-transactions"),
        pytest.param(
            Percentage(USD, D(3), fixed_fee=usd("1"), minimum_per_transaction=usd("2")),
            amounts("0"),
            "2",  # a zero-amount transaction still pays the fixed fee, raised to the minimum
            id="zero-amount-transaction",
        ),
    ],
)
def test_percentage(plan: Percentage, transactions: list[Decimal], expected: str) -> None:
    breakdown = plan.price_transactions(transactions)
    assert breakdown.amount == usd(expected)
    fees = [
        plan.fee_of_transaction(index, sum(transactions[:index], D(0)), amount)
        for index, amount in enumerate(transactions)
    ]
    assert sum(fee.amount for fee in fees) == breakdown.amount.amount


def test_percentage_detail_and_explanation() -> None:
    plan = Percentage(
        USD,
        D("2.9"),
        fixed_fee=usd("0.30"),
        free_transactions=2,
        minimum_per_transaction=usd("0.50"),
        maximum_per_transaction=usd("5"),
    )
    breakdown = plan.price_transactions(amounts("10", "20", "5", "100", "1000"))
    detail = breakdown.percentage
    assert detail is not None
    assert (detail.transactions, detail.free_transactions) == (5, 2)
    assert detail.total_amount == usd("1135")
    assert detail.paid_amount == usd("1105")
    assert detail.percentage_fees == usd("32.045")  # 0.145 + 2.9 + 29
    assert detail.fixed_fees == usd("0.9")
    assert (detail.raised_to_minimum, detail.capped_at_maximum) == (1, 1)
    assert breakdown.quantity == D(1135)
    assert breakdown.explanation == (
        "percentage: 2.9% of 1105 USD paid (of 1135 USD over 5 transactions, 2 free) "
        "= 32.045 USD; fixed fee 3 x 0.3 USD = 0.9 USD; 1 raised to the minimum 0.5 USD; "
        "1 capped at the maximum 5 USD; total 8.7 USD"
    )


def test_percentage_refuses_bad_transactions() -> None:
    plan = Percentage(USD, D(1))
    with pytest.raises(TypeError):
        plan.price_transactions([1.5])  # type: ignore[list-item]
    with pytest.raises(ValidationFailed) as negative:
        plan.price_transactions([D(-1)])
    assert negative.value.code == "negative_quantity"
    with pytest.raises(InvalidAmount):
        plan.price_transactions([D("0.0000000000001")])  # 13 decimals
    with pytest.raises(InvalidAmount):
        plan.price_transactions([D("NaN")])
    with pytest.raises(ValidationFailed):
        plan.fee_of_transaction(-1, D(0), D(1))


# -- matrix ----------------------------------------------------------------------------------

MATRIX = Matrix(
    ("region", "size"),
    {
        ("eu", "large"): PerUnit(usd("0.50")),
        ("us", "large"): Graduated(tiers((10, "1", None), (None, "0.5", None))),
    },
    default=PerUnit(usd("0.10")),
)


@pytest.mark.parametrize(
    ("group", "quantity", "expected", "default"),
    [
        ({"region": "eu", "size": "large"}, "10", "5", False),
        ({"region": "us", "size": "large"}, "12", "11", False),  # 10 x 1 + 2 x 0.5
        ({"region": "us", "size": "small"}, "3", "0.3", True),  # no cell: the default
        ({"region": "eu"}, "3", "0.3", True),  # a missing dimension matches no cell
        ({"size": "large", "region": "eu", "zone": "a"}, "1", "0.5", False),  # extra ignored
    ],
)
def test_matrix(group: dict[str, str], quantity: str, expected: str, default: bool) -> None:
    breakdown = MATRIX.price(D(quantity), group)
    assert breakdown.amount == usd(expected)
    assert breakdown.matrix_default is default
    assert breakdown.matrix_cell == (group.get("region"), group.get("size"))


def test_matrix_explains_the_cell() -> None:
    assert MATRIX.price(D(10), {"region": "eu", "size": "large"}).explanation == (
        "matrix cell (region=eu, size=large): 10 units x 0.5 USD = 5 USD"
    )
    assert MATRIX.price(D(3), {"region": "us", "size": "small"}).explanation == (
        "matrix default price (region=us, size=small): 3 units x 0.1 USD = 0.3 USD"
    )


def test_a_matrix_without_default_refuses_unpriced_groups() -> None:
    plan = Matrix(("region",), {("eu",): PerUnit(usd("1"))})
    assert plan.price(D(2), {"region": "eu"}).amount == usd("2")
    with pytest.raises(MatrixCellMissing) as missing:
        plan.price(D(2), {"region": "us"})
    assert missing.value.code == "matrix_cell_missing"
    with pytest.raises(MatrixCellMissing):
        plan.model_for({"region": "us"})


def test_matrix_monotony_follows_its_cells() -> None:
    assert MATRIX.is_monotone
    assert MATRIX.supports_advance
    falling = Matrix(("region",), {("eu",): Volume(STANDARD_TIERS)})
    assert not falling.is_monotone
    assert not falling.supports_advance
    flat = Matrix(("region",), {}, default=FlatFee(usd("1")))
    assert flat.is_monotone
    assert not flat.supports_advance


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "code"),
    [
        ([], "tiers_empty"),
        ([(100, 1000), (0, 100), (1000, None)], "tiers_unsorted"),
        ([(0, 100), (50, None)], "tier_overlap"),
        ([(0, None), (100, None)], "tier_overlap"),  # an open tier before the last
        ([(0, 100), (150, None)], "tiers_not_contiguous"),
        ([(10, 100), (100, None)], "tiers_not_contiguous"),  # must start at 0
        ([(0, 100), (100, 100), (100, None)], "tier_bounds_invalid"),
        ([(0, 100), (100, 1000)], "last_tier_not_open"),
    ],
)
def test_tier_tables_are_validated(rows: list[tuple[int, int | None]], code: str) -> None:
    table = [Tier(D(start), None if end is None else D(end), usd("0.01")) for start, end in rows]
    for model in (Graduated, Volume):
        with pytest.raises(ValidationFailed) as error:
            model(table)
        assert error.value.code == code
        assert error.value.status == 422
    percentage_table = [
        PercentageTier(D(start), None if end is None else D(end), D(1)) for start, end in rows
    ]
    with pytest.raises(ValidationFailed) as error:
        GraduatedPercentage(USD, percentage_table)
    assert error.value.code == code


def test_tier_errors_name_the_tier() -> None:
    with pytest.raises(ValidationFailed) as error:
        Graduated([Tier(D(0), D(100), usd("1")), Tier(D(150), None, usd("1"))])
    assert error.value.extensions == {"tier": 1}
    assert "tier 2 starts at 150 but tier 1 ends at 100" in error.value.detail


@pytest.mark.parametrize(
    "build",
    [
        lambda: Tier(D(0), None, usd("-0.01")),
        lambda: Tier(D(0), None, usd("1"), flat_fee=usd("-1")),
        lambda: PerUnit(usd("-1")),
        lambda: FlatFee(usd("-1")),
        lambda: Package(D(10), usd("-1")),
        lambda: Percentage(USD, D(1), fixed_fee=usd("-1")),
        lambda: Percentage(USD, D(1), minimum_per_transaction=usd("-1")),
        lambda: PercentageTier(D(0), None, D(1), flat_fee=usd("-1")),
    ],
)
def test_negative_prices_are_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValidationFailed) as error:
        build()
    assert error.value.code == "negative_price"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Graduated([Tier(D(0), D(1), usd("1")), Tier(D(1), None, Money.parse("1", EUR))]),
        lambda: Tier(D(0), None, usd("1"), flat_fee=Money.parse("1", EUR)),
        lambda: Percentage(USD, D(1), fixed_fee=Money.parse("1", EUR)),
        lambda: GraduatedPercentage(EUR, [PercentageTier(D(0), None, D(1), usd("1"))]),
        lambda: Matrix(("r",), {("a",): PerUnit(usd("1"))}, default=PerUnit(Money.parse("1", EUR))),
    ],
)
def test_currencies_cannot_mix(build: object) -> None:
    assert callable(build)
    with pytest.raises(CurrencyMismatch) as error:
        build()
    assert error.value.code == "currency_mismatch"


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: Percentage(USD, D(-1)), "invalid_rate"),
        (lambda: Percentage(USD, D("NaN")), "invalid_rate"),
        (lambda: BasisPoints(USD, D(-5)), "invalid_rate"),
        (lambda: PercentageTier(D(0), None, D(-1)), "invalid_rate"),
        (
            lambda: Percentage(
                USD, D(1), minimum_per_transaction=usd("2"), maximum_per_transaction=usd("1")
            ),
            "minimum_above_maximum",
        ),
        (lambda: Percentage(USD, D(1), free_transactions=-1), "invalid_pricing"),
        (lambda: Package(D(0), usd("1")), "invalid_package_size"),
        (lambda: Package(D(10), usd("1"), free_units=D(-1)), "negative_quantity"),
        (lambda: Tier(D(-1), None, usd("1")), "negative_quantity"),
        (lambda: Matrix((), {}, default=PerUnit(usd("1"))), "invalid_matrix"),
        (lambda: Matrix(("a", "a"), {}, default=PerUnit(usd("1"))), "invalid_matrix"),
        (lambda: Matrix(("a", "b"), {("x",): PerUnit(usd("1"))}), "invalid_matrix"),
        (lambda: Matrix(("a",), {}), "invalid_matrix"),
        (
            lambda: Matrix(("a",), {("x",): Percentage(USD, D(1))}),  # type: ignore[dict-item]
            "invalid_matrix",
        ),
    ],
)
def test_other_invalid_prices(build: object, code: str) -> None:
    assert callable(build)
    with pytest.raises(ValidationFailed) as error:
        build()
    assert error.value.code == code


@pytest.mark.parametrize(
    "model",
    [
        FlatFee(usd("1")),
        PerUnit(usd("1")),
        Package(D(10), usd("1")),
        Graduated(STANDARD_TIERS),
        Volume(STANDARD_TIERS),
        GRADUATED_PERCENTAGE,
        BasisPoints(USD, D(1)),
    ],
)
def test_quantities_are_exact_and_never_negative(model: pricing_models.QuantityModel) -> None:
    with pytest.raises(TypeError):
        model.price(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        model.price(True)
    for bad, code in [
        (D(-1), "negative_quantity"),
        (D("NaN"), "invalid_quantity"),
        (D("Infinity"), "invalid_quantity"),
        (D("1E+40"), "invalid_quantity"),
        (D("1E-40"), "invalid_quantity"),
    ]:
        with pytest.raises(ValidationFailed) as error:
            model.price(bad)
        assert error.value.code == code
    assert model.price(7).amount == model.price(D(7)).amount  # an int is exact too


def test_floats_are_refused_in_prices() -> None:
    with pytest.raises(TypeError):
        Tier(0.0, None, usd("1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Percentage(USD, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PerUnit(1.5)  # type: ignore[arg-type]


def test_to_quantity_normalises_negative_zero() -> None:
    assert str(to_quantity(D("-0"))) == "0"


def test_quantities_add_exactly_past_28_digits() -> None:
    big = D("123456789012345678901234567890")
    assert add_quantities(big, D("0.000000000001")) - big != 0
    assert str(add_quantities(big, D("0.000000000001"))) == (
        "123456789012345678901234567890.000000000001"
    )


# -- properties ------------------------------------------------------------------------------

pico_prices = st.integers(min_value=0, max_value=10**14)  # up to 100 major units
quantities = st.decimals(
    min_value=0, max_value=10**7, places=6, allow_nan=False, allow_infinity=False
)


@st.composite
def integer_tier_tables(draw: st.DrawFn) -> list[Tier]:
    """1 to 5 tiers with integer bounds, prices with 12 decimals and optional flat fees."""
    widths = draw(st.lists(st.integers(min_value=1, max_value=30), min_size=0, max_size=4))
    table = []
    start = 0
    for width in [*widths, None]:
        end = None if width is None else start + width
        flat = draw(st.none() | pico_prices)
        table.append(
            Tier(
                D(start),
                None if end is None else D(end),
                Money(draw(pico_prices), USD),
                None if flat is None else Money(flat, USD),
            )
        )
        start = end if end is not None else start
    return table


def unit_by_unit(table: Sequence[Tier], quantity: int) -> int:
    """The graduated amount the slow way: each unit at its tier's price, flat fee on entry."""
    total = 0
    for unit in range(1, quantity + 1):  # unit covers the quantities (unit - 1, unit]
        for tier in table:
            if tier.from_units < unit and (tier.up_to is None or unit <= tier.up_to):
                total += tier.unit_price.amount
                if unit == tier.from_units + 1 and tier.flat_fee is not None:
                    total += tier.flat_fee.amount
    return total


@FAST
@given(table=integer_tier_tables(), quantity=st.integers(min_value=0, max_value=200))
def test_graduated_equals_the_unit_by_unit_reference(table: list[Tier], quantity: int) -> None:
    breakdown = Graduated(table).price(D(quantity))
    assert breakdown.amount.amount == unit_by_unit(table, quantity)
    assert sum(line.amount.amount for line in breakdown.tiers) == breakdown.amount.amount
    assert sum(line.units for line in breakdown.tiers) == quantity


@st.composite
def fractional_tier_tables(draw: st.DrawFn) -> list[Tier]:
    bounds = sorted(set(draw(st.lists(quantities.filter(lambda q: q > 0), min_size=0, max_size=5))))
    starts = [D(0), *bounds]
    ends: list[Decimal | None] = [*bounds, None]
    table = []
    for start, end in zip(starts, ends, strict=True):
        flat = draw(st.none() | pico_prices)
        table.append(
            Tier(
                start,
                end,
                Money(draw(pico_prices), USD),
                None if flat is None else Money(flat, USD),
            )
        )
    return table


@st.composite
def monotone_quantity_models(draw: st.DrawFn) -> pricing_models.QuantityModel:
    """Any quantity model whose price never falls as the quantity grows."""
    kind = draw(st.sampled_from(["per_unit", "package", "graduated", "volume", "pct", "bp"]))
    if kind == "per_unit":
        return PerUnit(Money(draw(pico_prices), USD))
    if kind == "package":
        size = draw(quantities.filter(lambda q: q > 0))
        return Package(size, Money(draw(pico_prices), USD), free_units=draw(quantities))
    if kind == "graduated":
        return Graduated(draw(fractional_tier_tables()))
    if kind == "volume":  # only the tables whose total never falls (else: graduated)
        table = draw(fractional_tier_tables())
        volume = Volume(table)
        return volume if volume.is_monotone else Graduated(table)
    rate = draw(st.decimals(min_value=0, max_value=100, places=4))
    if kind == "pct":
        table = draw(fractional_tier_tables())
        return GraduatedPercentage(
            USD,
            [PercentageTier(t.from_units, t.up_to, rate, t.flat_fee) for t in table],
        )
    return BasisPoints(USD, rate)


@FAST
@given(model=monotone_quantity_models(), first=quantities, second=quantities)
def test_monotone_models_never_charge_less_for_more(
    model: pricing_models.QuantityModel, first: Decimal, second: Decimal
) -> None:
    low, high = sorted([first, second])
    assert model.is_monotone
    assert model.price(low).amount.amount <= model.price(high).amount.amount


@FAST
@given(table=fractional_tier_tables())
def test_volume_is_monotone_exactly_when_no_tier_bound_lowers_the_total(
    table: list[Tier],
) -> None:
    model = Volume(table)
    epsilon = D("1E-30")
    drops = any(
        model.price(add_quantities(tier.up_to, epsilon)).amount.amount
        < model.price(tier.up_to).amount.amount
        for tier in table[:-1]
        if tier.up_to is not None
    )
    assert model.is_monotone is not drops


@FAST
@given(model=monotone_quantity_models(), quantity=quantities)
def test_breakdowns_add_up(model: pricing_models.QuantityModel, quantity: Decimal) -> None:
    breakdown = model.price(quantity)
    if breakdown.tiers and isinstance(model, Graduated | GraduatedPercentage):
        assert sum(line.amount.amount for line in breakdown.tiers) == breakdown.amount.amount
        assert sum(line.units for line in breakdown.tiers) == quantity
    assert breakdown.amount.amount >= 0
    assert isinstance(breakdown.explanation, str)


@st.composite
def percentage_models(draw: st.DrawFn) -> Percentage:
    bound = st.none() | pico_prices.map(lambda pico: Money(pico, USD))
    minimum, maximum = draw(bound), draw(bound)
    if minimum is not None and maximum is not None and minimum.amount > maximum.amount:
        minimum, maximum = maximum, minimum
    return Percentage(
        USD,
        draw(st.decimals(min_value=0, max_value=100, places=3)),
        fixed_fee=draw(bound),
        free_transactions=draw(st.none() | st.integers(min_value=0, max_value=5)),
        free_amount=draw(bound),
        minimum_per_transaction=minimum,
        maximum_per_transaction=maximum,
    )


transaction_amounts = st.decimals(min_value=0, max_value=10**5, places=12)


@FAST
@given(
    model=percentage_models(),
    transactions=st.lists(transaction_amounts, max_size=12),
    extra=transaction_amounts,
)
def test_another_transaction_never_lowers_a_percentage_charge(
    model: Percentage, transactions: list[Decimal], extra: Decimal
) -> None:
    before = model.price_transactions(transactions).amount.amount
    assert model.price_transactions([*transactions, extra]).amount.amount >= before


def test_amounts_are_ordinary_money() -> None:
    # Rating builds Money without re-running its constructor checks (it knows the amount
    # is an int it computed); the result must be indistinguishable from Money(...).
    amount = PerUnit(usd("0.0035")).price(D("1234.5")).amount
    expected = Money(4_320_750_000_000, USD)
    assert type(amount) is Money
    assert amount == expected
    assert hash(amount) == hash(expected)
    assert repr(amount) == repr(expected)
    assert amount + usd("1") == usd("5.32075")
    assert pricing_models._money is pricing_models._build_money  # the fast path is in use
