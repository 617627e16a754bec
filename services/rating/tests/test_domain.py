"""rate_all, pay-in-advance fees and true-ups: exact amounts worked out by hand, and properties."""

from __future__ import annotations

import doctest
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, ValidationFailed
from billing_common.money import Money
from billing_rating import domain
from billing_rating.domain import (
    BasisPoints,
    BillingTiming,
    Charge,
    FlatFee,
    Graduated,
    GraduatedPercentage,
    LineKind,
    Matrix,
    Package,
    Percentage,
    Period,
    PerUnit,
    PriceSheet,
    RatedLineItem,
    Tier,
    Usage,
    UsageRecord,
    Volume,
    compute_true_up,
    rate_all,
    rate_event_in_advance,
    rate_transaction_in_advance,
    total_of,
)
from billing_rating.pricing_models import (
    MatrixCellMissing,
    MinimumTrueUp,
    PercentageTier,
    QuantityModel,
)

FAST = settings(database=None, deadline=None, max_examples=150)

USD = Currency.of("USD")
EUR = Currency.of("EUR")
D = Decimal
JANUARY = Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def tiers(*rows: tuple[int | None, str, str | None]) -> list[Tier]:
    """Tiers from (up_to, unit price, flat fee) rows; each starts where the previous ends."""
    result = []
    start = 0
    for up_to, price, flat in rows:
        result.append(
            Tier(
                D(start),
                None if up_to is None else D(up_to),
                usd(price),
                None if flat is None else usd(flat),
            )
        )
        start = up_to if up_to is not None else start
    return result


# (0, 100] at 0.10; (100, 1000] at 0.08 + flat 2; (1000, inf) at 0.05 + flat 10.
STANDARD_TIERS = tiers((100, "0.10", None), (1000, "0.08", "2"), (None, "0.05", "10"))
REGION_SIZE = Matrix(
    ("region", "size"),
    {("eu", "large"): PerUnit(usd("0.50")), ("us", "large"): PerUnit(usd("0.40"))},
    default=PerUnit(usd("0.10")),
)
CARD_FEES = Percentage(USD, D("2.9"), fixed_fee=usd("0.30"))


def summary(lines: list[RatedLineItem]) -> list[tuple[str, dict[str, str], str, str, str]]:
    return [
        (
            line.charge_id,
            line.group,
            str(line.quantity),
            line.amount.to_decimal_string(),
            line.kind.value,
        )
        for line in lines
    ]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(domain, raise_on_error=False).failed == 0


# -- rate_all --------------------------------------------------------------------------------


def test_rate_all_rates_a_whole_price_sheet() -> None:
    sheet = PriceSheet(
        USD,
        [  # deliberately out of order: lines come out by charge id
            Charge("f_platform", "nothing", FlatFee(usd("49"))),
            Charge("e_payments", "payments", CARD_FEES),
            Charge("d_compute", "compute_hours", REGION_SIZE),
            Charge("c_seats", "seats", Package(D(10), usd("5"))),
            Charge("b_storage", "storage_gb", Graduated(STANDARD_TIERS)),
            Charge("a_api", "api_calls", PerUnit(usd("0.002")), minimum=usd("5")),
        ],
    )
    usage = Usage(
        [
            UsageRecord("api_calls", {}, D(1500)),
            UsageRecord("storage_gb", {}, D(101)),
            UsageRecord("compute_hours", {"region": "us", "size": "small"}, D(3)),
            UsageRecord("compute_hours", {"size": "large", "region": "eu"}, D(10)),
            UsageRecord("payments", {}, D(150), transactions=[D(100), D(50)]),
        ]
    )
    lines = rate_all(sheet, usage, JANUARY)
    assert summary(lines) == [
        ("a_api", {}, "1500", "3", "usage"),  # 1500 x 0.002
        ("a_api", {}, "1", "2", "charge_minimum"),  # minimum 5 - 3
        ("b_storage", {}, "101", "12.08", "usage"),  # 100 x 0.10 + 1 x 0.08 + flat 2
        ("c_seats", {}, "0", "0", "usage"),  # no usage: zero units, zero packages
        ("d_compute", {"region": "eu", "size": "large"}, "10", "5", "usage"),  # 10 x 0.50
        ("d_compute", {"region": "us", "size": "small"}, "3", "0.3", "usage"),  # default 0.10
        ("e_payments", {}, "150", "4.95", "usage"),  # 2.90 + 0.30 + 1.45 + 0.30
        ("f_platform", {}, "0", "49", "usage"),  # a flat fee, usage or not
    ]
    assert all(line.period == JANUARY for line in lines)
    assert all(line.timing is BillingTiming.ARREARS for line in lines)
    storage = lines[2]
    assert [tier.amount for tier in storage.tiers] == [usd("10"), usd("2.08")]
    assert storage.unit_price is None
    assert lines[0].unit_price == usd("0.002")
    assert lines[1].explanation == "charge minimum 5 USD: usage rated 3 USD, true-up 2 USD"
    assert lines[4].explanation == (
        "matrix cell (region=eu, size=large): 10 units x 0.5 USD = 5 USD"
    )
    assert total_of(lines, USD) == usd("76.33")


def test_group_by_rates_each_group_on_its_own() -> None:
    # Graduated tiers apply to each region separately: 150 in eu, 50 in us.
    sheet = PriceSheet(
        USD, [Charge("storage", "gb", Graduated(STANDARD_TIERS), group_by=("region",))]
    )
    usage = Usage(
        [
            UsageRecord("gb", {"region": "us", "tier": "hot"}, D(50)),
            UsageRecord("gb", {"region": "eu", "tier": "hot"}, D(100)),
            UsageRecord("gb", {"region": "eu", "tier": "cold"}, D(50)),
            UsageRecord("gb", {"tier": "cold"}, D(1)),  # no region: its own group, last
        ]
    )
    assert summary(rate_all(sheet, usage, JANUARY)) == [
        ("storage", {"region": "eu"}, "150", "16", "usage"),  # 10 + 50 x 0.08 + 2
        ("storage", {"region": "us"}, "50", "5", "usage"),  # 50 x 0.10
        ("storage", {}, "1", "0.1", "usage"),
    ]


def test_an_ungrouped_charge_adds_up_all_its_meter_groups() -> None:
    sheet = PriceSheet(USD, [Charge("api", "calls", Graduated(STANDARD_TIERS))])
    usage = Usage(
        [
            UsageRecord("calls", {"region": "eu"}, D("60.5")),
            UsageRecord("calls", {"region": "us"}, D("40.5")),
            UsageRecord("other", {}, D(1000)),
        ]
    )
    # 101 units together, not 60.5 and 40.5 apart: 10 + 0.08 + 2
    assert summary(rate_all(sheet, usage, JANUARY)) == [("api", {}, "101.0", "12.08", "usage")]


def test_a_matrix_can_group_by_more_than_its_dimensions() -> None:
    sheet = PriceSheet(
        USD,
        [Charge("compute", "hours", REGION_SIZE, group_by=("zone", "region", "size"))],
    )
    usage = Usage(
        [
            UsageRecord("hours", {"zone": "b", "region": "eu", "size": "large"}, D(2)),
            UsageRecord("hours", {"zone": "a", "region": "eu", "size": "large"}, D(4)),
            UsageRecord("hours", {"zone": "a", "region": "us", "size": "large"}, D(1)),
        ]
    )
    assert summary(rate_all(sheet, usage, JANUARY)) == [
        ("compute", {"zone": "a", "region": "eu", "size": "large"}, "4", "2", "usage"),
        ("compute", {"zone": "a", "region": "us", "size": "large"}, "1", "0.4", "usage"),
        ("compute", {"zone": "b", "region": "eu", "size": "large"}, "2", "1", "usage"),
    ]


def test_a_matrix_without_default_fails_on_unpriced_usage() -> None:
    sheet = PriceSheet(
        USD, [Charge("compute", "hours", Matrix(("region",), {("eu",): PerUnit(usd("1"))}))]
    )
    usage = Usage([UsageRecord("hours", {"region": "mars"}, D(1))])
    with pytest.raises(MatrixCellMissing):
        rate_all(sheet, usage, JANUARY)


def test_a_grouped_charge_without_usage_has_no_lines() -> None:
    sheet = PriceSheet(USD, [Charge("compute", "hours", REGION_SIZE)])
    assert rate_all(sheet, Usage([]), JANUARY) == []


def test_percentage_transactions_across_groups_follow_group_order() -> None:
    # One free transaction: the first in group order ({"card": "amex"} before "visa").
    sheet = PriceSheet(
        USD, [Charge("fees", "payments", Percentage(USD, D(1), free_transactions=1))]
    )
    usage = Usage(
        [
            UsageRecord("payments", {"card": "visa"}, D(300), transactions=[D(100), D(200)]),
            UsageRecord("payments", {"card": "amex"}, D(1000), transactions=[D(1000)]),
        ]
    )
    (line,) = rate_all(sheet, usage, JANUARY)
    assert line.amount == usd("3")  # 1000 free; 1 % of 100 and of 200
    assert line.quantity == D(1300)
    assert line.breakdown.percentage is not None
    assert line.breakdown.percentage.free_transactions == 1


def test_percentage_usage_must_agree_with_its_transactions() -> None:
    sheet = PriceSheet(USD, [Charge("fees", "payments", CARD_FEES)])
    for reported in [D(999), D("100.0000000000001")]:
        usage = Usage([UsageRecord("payments", {}, reported, transactions=[D(100)])])
        with pytest.raises(ValidationFailed) as error:
            rate_all(sheet, usage, JANUARY)
        assert error.value.code == "usage_inconsistent"
    usage = Usage([UsageRecord("payments", {}, D("100.000"), transactions=[D(100)])])
    assert rate_all(sheet, usage, JANUARY)[0].amount == usd("3.2")


def test_charge_minimums() -> None:
    sheet = PriceSheet(
        USD,
        [
            Charge("over", "calls", PerUnit(usd("1")), minimum=usd("5")),
            Charge(
                "grouped",
                "calls",
                PerUnit(usd("1")),
                minimum=usd("20"),
                group_by=("region",),
            ),
            Charge("exact", "calls", PerUnit(usd("1")), minimum=usd("15")),
            Charge("none", "nothing", PerUnit(usd("1")), minimum=usd("7.5")),
        ],
    )
    usage = Usage(
        [
            UsageRecord("calls", {"region": "eu"}, D(10)),
            UsageRecord("calls", {"region": "us"}, D(5)),
        ]
    )
    assert summary(rate_all(sheet, usage, JANUARY)) == [
        ("exact", {}, "15", "15", "usage"),  # 15 reaches the minimum: no true-up
        ("grouped", {"region": "eu"}, "10", "10", "usage"),
        ("grouped", {"region": "us"}, "5", "5", "usage"),
        ("grouped", {}, "1", "5", "charge_minimum"),  # 20 - (10 + 5), over all its groups
        ("none", {}, "0", "0", "usage"),
        ("none", {}, "1", "7.5", "charge_minimum"),
        ("over", {}, "15", "15", "usage"),
    ]


def test_lines_of_advance_charges_say_so() -> None:
    sheet = PriceSheet(
        USD, [Charge("api", "calls", PerUnit(usd("1")), timing=BillingTiming.IN_ADVANCE)]
    )
    (line,) = rate_all(sheet, Usage([UsageRecord("calls", {}, D(3))]), JANUARY)
    assert line.timing is BillingTiming.IN_ADVANCE
    assert line.amount == usd("3")


def test_every_model_rates_through_rate_all() -> None:
    models: list[QuantityModel] = [
        FlatFee(usd("1")),
        PerUnit(usd("1")),
        Package(D(10), usd("1")),
        Graduated(STANDARD_TIERS),
        Volume(STANDARD_TIERS),
        GraduatedPercentage(USD, [PercentageTier(D(0), None, D(10))]),
        BasisPoints(USD, D(100)),
    ]
    sheet = PriceSheet(USD, [Charge(f"c{index}", "m", model) for index, model in enumerate(models)])
    lines = rate_all(sheet, Usage([UsageRecord("m", {}, D(15))]), JANUARY)
    # flat 1; 15 x 1; 2 packages (1.5 rounded up); graduated and volume both stay in
    # tier 1: 15 x 0.10; 10 % of 15; 100 bp = 1 % of 15
    assert [line.amount.to_decimal_string() for line in lines] == [
        "1",
        "15",
        "2",
        "1.5",
        "1.5",
        "1.5",
        "0.15",
    ]
    assert [line.amount for line in lines] == [model.price(D(15)).amount for model in models]
    assert all(isinstance(line.explanation, str) and line.explanation for line in lines)


# -- inputs are validated -------------------------------------------------------------------


def test_price_sheets_are_validated() -> None:
    with pytest.raises(ValidationFailed) as duplicate:
        PriceSheet(USD, [Charge("a", "m", PerUnit(usd("1"))), Charge("a", "n", PerUnit(usd("2")))])
    assert duplicate.value.code == "duplicate_charge"
    with pytest.raises(CurrencyMismatch):
        PriceSheet(EUR, [Charge("a", "m", PerUnit(usd("1")))])


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: Charge("", "m", PerUnit(usd("1"))), "invalid_charge"),
        (lambda: Charge("a", "", PerUnit(usd("1"))), "invalid_charge"),
        (lambda: Charge("a", "m", PerUnit(usd("1")), group_by=("x", "x")), "invalid_charge"),
        (lambda: Charge("a", "m", REGION_SIZE, group_by=("region",)), "invalid_charge"),
        (lambda: Charge("a", "m", PerUnit(usd("1")), minimum=usd("-1")), "negative_price"),
        (
            lambda: Charge("a", "m", FlatFee(usd("1")), timing=BillingTiming.IN_ADVANCE),
            "advance_not_supported",
        ),
        (
            lambda: Charge("a", "m", Volume(STANDARD_TIERS), timing=BillingTiming.IN_ADVANCE),
            "advance_not_supported",
        ),
    ],
)
def test_charges_are_validated(build: Callable[[], Charge], code: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        build()
    assert error.value.code == code


def test_charge_minimums_share_the_price_currency() -> None:
    with pytest.raises(CurrencyMismatch):
        Charge("a", "m", PerUnit(usd("1")), minimum=Money.parse("1", EUR))


def test_advance_timing_reads_from_a_string() -> None:
    charge = Charge("a", "m", PerUnit(usd("1")), timing="in_advance")  # type: ignore[arg-type]
    assert charge.timing is BillingTiming.IN_ADVANCE


def test_usage_is_validated() -> None:
    with pytest.raises(ValidationFailed) as duplicate:
        Usage([UsageRecord("m", {"a": "1"}, D(1)), UsageRecord("m", {"a": "1"}, D(2))])
    assert duplicate.value.code == "duplicate_usage"
    with pytest.raises(TypeError):
        UsageRecord("m", {}, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed) as negative:
        UsageRecord("m", {}, D(-1))
    assert negative.value.code == "negative_quantity"
    with pytest.raises(TypeError):
        UsageRecord("m", {"a": 1}, D(1))  # type: ignore[dict-item]


def test_periods_are_validated() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationFailed) as naive:
        Period(datetime(2025, 1, 1), datetime(2025, 2, 1))
    assert naive.value.code == "invalid_period"
    with pytest.raises(ValidationFailed):
        Period(start, start)
    with pytest.raises(ValidationFailed):
        Period(start, start - timedelta(days=1))
    paris = timezone(timedelta(hours=1))
    assert Period(start, datetime(2025, 2, 1, tzinfo=paris)).end.utcoffset() == timedelta(hours=1)


# -- true-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minimum", "billed", "expected"),
    [
        ("100", "62.5", "37.5"),
        ("100", "100", "0"),
        ("100", "130", "0"),
        ("0", "0", "0"),
        ("100", "-10", "110"),  # credits count against the minimum too
        ("0.000000000001", "0", "0.000000000001"),
    ],
)
def test_compute_true_up(minimum: str, billed: str, expected: str) -> None:
    assert compute_true_up(usd(minimum), usd(billed)) == usd(expected)


def test_compute_true_up_refuses_mixed_currencies_and_negative_minimums() -> None:
    with pytest.raises(CurrencyMismatch):
        compute_true_up(usd("1"), Money.parse("1", EUR))
    with pytest.raises(ValidationFailed) as error:
        compute_true_up(usd("-1"), usd("0"))
    assert error.value.code == "negative_price"


def test_a_true_up_breakdown_explains_itself() -> None:
    breakdown = MinimumTrueUp(usd("100")).breakdown(usd("37.5"))
    assert (breakdown.quantity, breakdown.amount, breakdown.unit_price) == (
        D(1),
        usd("37.5"),
        usd("37.5"),
    )


amounts_pico = st.integers(min_value=-(10**15), max_value=10**15)


@FAST
@given(minimum=amounts_pico.map(abs), billed=amounts_pico)
def test_true_up_tops_billing_up_to_the_minimum(minimum: int, billed: int) -> None:
    true_up = compute_true_up(Money(minimum, USD), Money(billed, USD)).amount
    assert true_up >= 0
    assert billed + true_up >= minimum
    assert true_up == 0 or billed + true_up == minimum


# -- pay in advance --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "event", "expected"),
    [
        ("0", "0", "0"),
        ("0", "100", "10"),  # the whole first tier
        ("90", "20", "3.8"),  # 10 x 0.10, then 10 x 0.08 + flat 2 on entering tier 2
        ("100", "1", "2.08"),  # the flat fee is billed by the event that enters the tier
        ("101", "1", "0.08"),  # and never again
        ("999.5", "1", "10.065"),  # 0.5 x 0.08 + 0.5 x 0.05 + flat 10
    ],
)
def test_rate_event_in_advance(before: str, event: str, expected: str) -> None:
    model = Graduated(STANDARD_TIERS)
    assert rate_event_in_advance(model, D(before), D(event)) == usd(expected)


def test_rate_event_in_advance_refuses_what_it_cannot_bill() -> None:
    for model in (Volume(STANDARD_TIERS), FlatFee(usd("1")), CARD_FEES):
        with pytest.raises(ValidationFailed) as error:
            rate_event_in_advance(model, D(0), D(1))
        assert error.value.code == "advance_not_supported"
    with pytest.raises(TypeError):
        rate_event_in_advance(REGION_SIZE, D(0), D(1))  # a matrix needs the group
    with pytest.raises(TypeError):
        rate_event_in_advance(PerUnit(usd("1")), D(0), 1.0)  # type: ignore[arg-type]


def test_a_falling_volume_price_would_need_negative_fees() -> None:
    # Why volume tiers whose total falls cannot be billed in advance: the event that
    # takes usage from 1000 to 1001 units lowers the price from 82 to 60.05 USD.
    # The differences still add up to the arrears price (they telescope), but one of
    # them is a refund, and an advance fee is final when billed.
    model = Volume(STANDARD_TIERS)
    cumulative = [D(0), D(1000), D(1001)]
    fees = [
        model.price(after).amount - model.price(before).amount
        for before, after in pairwise(cumulative)
    ]
    assert fees == [usd("82"), usd("-21.95")]
    assert sum(fee.amount for fee in fees) == model.price(D(1001)).amount.amount


def test_rate_transaction_in_advance() -> None:
    plan = Percentage(USD, D(2), fixed_fee=usd("0.3"), free_transactions=1)
    assert rate_transaction_in_advance(plan, 0, D(0), D(100)) == usd("0")  # the free one
    assert rate_transaction_in_advance(plan, 1, D(100), D(100)) == usd("2.3")
    with pytest.raises(TypeError):
        rate_transaction_in_advance(PerUnit(usd("1")), 0, D(0), D(1))  # type: ignore[arg-type]


@st.composite
def monotone_models(draw: st.DrawFn) -> QuantityModel:
    price = st.integers(min_value=0, max_value=10**14).map(lambda pico: Money(pico, USD))
    bounds = sorted(
        set(draw(st.lists(st.integers(min_value=1, max_value=500), min_size=0, max_size=4)))
    )
    starts, ends = [0, *bounds], [*bounds, None]
    table = [
        Tier(D(start), None if end is None else D(end), draw(price), draw(st.none() | price))
        for start, end in zip(starts, ends, strict=True)
    ]
    candidates: list[QuantityModel] = [
        PerUnit(draw(price)),
        Package(D(draw(st.integers(min_value=1, max_value=50))), draw(price), free_units=D(7)),
        Graduated(table),
        GraduatedPercentage(
            USD, [PercentageTier(t.from_units, t.up_to, D("1.5"), t.flat_fee) for t in table]
        ),
        BasisPoints(USD, D(draw(st.integers(min_value=0, max_value=10_000)))),
    ]
    volume = Volume(table)
    if volume.is_monotone:
        candidates.append(volume)
    return draw(st.sampled_from(candidates))


event_quantities = st.decimals(min_value=0, max_value=300, places=4)


@FAST
@given(model=monotone_models(), events=st.lists(event_quantities, max_size=25))
def test_advance_fees_add_up_to_the_arrears_price(
    model: QuantityModel, events: list[Decimal]
) -> None:
    billed = D(0)
    fees = []
    for event in events:
        fee = rate_event_in_advance(model, billed, event)
        assert fee.amount >= 0  # final when billed: never a refund
        fees.append(fee.amount)
        billed += event
    assert sum(fees) == model.price(billed).amount.amount


@FAST
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["eu", "us"]), st.sampled_from(["large", "small"]), event_quantities
        ),
        max_size=25,
    )
)
def test_advance_fees_of_a_matrix_add_up_to_rate_all(
    events: list[tuple[str, str, Decimal]],
) -> None:
    billed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    fees = 0
    for region, size, quantity in events:
        group = {"region": region, "size": size}
        fees += rate_event_in_advance(REGION_SIZE, billed[region, size], quantity, group).amount
        billed[region, size] += quantity
    sheet = PriceSheet(
        USD, [Charge("compute", "hours", REGION_SIZE, timing=BillingTiming.IN_ADVANCE)]
    )
    usage = Usage(
        [
            UsageRecord("hours", {"region": region, "size": size}, quantity)
            for (region, size), quantity in billed.items()
        ]
    )
    assert fees == sum(line.amount.amount for line in rate_all(sheet, usage, JANUARY))


@st.composite
def percentage_models(draw: st.DrawFn) -> Percentage:
    bound = st.none() | st.integers(min_value=0, max_value=10**13).map(lambda p: Money(p, USD))
    minimum, maximum = draw(bound), draw(bound)
    if minimum is not None and maximum is not None and minimum.amount > maximum.amount:
        minimum, maximum = maximum, minimum
    return Percentage(
        USD,
        draw(st.decimals(min_value=0, max_value=100, places=3)),
        fixed_fee=draw(bound),
        free_transactions=draw(st.none() | st.integers(min_value=0, max_value=4)),
        free_amount=draw(bound),
        minimum_per_transaction=minimum,
        maximum_per_transaction=maximum,
    )


@FAST
@given(
    model=percentage_models(),
    transactions=st.lists(st.decimals(min_value=0, max_value=10**4, places=12), max_size=15),
)
def test_advance_transaction_fees_add_up_to_the_arrears_amount(
    model: Percentage, transactions: list[Decimal]
) -> None:
    total = D(0)
    fees = 0
    for index, amount in enumerate(transactions):
        fee = rate_transaction_in_advance(model, index, total, amount)
        assert fee.amount >= 0
        fees += fee.amount
        total += amount
    assert fees == model.price_transactions(transactions).amount.amount


# -- no amount depends on the order of unrelated inputs -------------------------------------

CHARGES = [
    Charge("a_calls", "calls", PerUnit(usd("0.002")), minimum=usd("1")),
    Charge("b_calls_by_region", "calls", Graduated(STANDARD_TIERS), group_by=("region",)),
    Charge("c_compute", "hours", REGION_SIZE),
    Charge("d_fees", "payments", Percentage(USD, D(3), fixed_fee=usd("0.1"), free_transactions=2)),
    Charge("e_fees_by_size", "payments", CARD_FEES, group_by=("size",), minimum=usd("2")),
    Charge("f_seats", "hours", Package(D(10), usd("5"), free_units=D(5))),
    Charge("g_platform", "none", FlatFee(usd("49"))),
]
GROUPS = [
    {"region": region, "size": size}
    for region in ["eu", "us", None]
    for size in ["large", "small", None]
]


@st.composite
def usage_records(draw: st.DrawFn) -> list[UsageRecord]:
    records = []
    for meter in ["calls", "hours", "payments"]:
        for group in GROUPS:
            if not draw(st.booleans()):
                continue
            clean = {key: value for key, value in group.items() if value is not None}
            if meter == "payments":
                transactions = draw(
                    st.lists(st.decimals(min_value=0, max_value=1000, places=2), max_size=4)
                )
                records.append(
                    UsageRecord(meter, clean, sum(transactions, D(0)), transactions=transactions)
                )
            else:
                records.append(
                    UsageRecord(
                        meter, clean, draw(st.decimals(min_value=0, max_value=5000, places=3))
                    )
                )
    return records


@FAST
@given(
    charges=st.lists(st.sampled_from(CHARGES), unique_by=lambda c: c.charge_id, min_size=1),
    records=usage_records(),
    data=st.data(),
)
def test_no_amount_depends_on_the_order_of_unrelated_inputs(
    charges: list[Charge], records: list[UsageRecord], data: st.DataObject
) -> None:
    expected = rate_all(PriceSheet(USD, charges), Usage(records), JANUARY)
    shuffled_charges = data.draw(st.permutations(charges))
    shuffled_records = [
        UsageRecord(
            record.meter_key,
            dict(reversed(list(record.group.items()))),  # other key order, same group
            record.quantity,
            record.transactions,
        )
        for record in data.draw(st.permutations(records))
    ]
    lines = rate_all(PriceSheet(USD, shuffled_charges), Usage(shuffled_records), JANUARY)
    assert lines == expected
    assert [list(line.group.items()) for line in lines] == [
        list(line.group.items()) for line in expected
    ]
    # and the lines come out in charge id order, groups in order of their values
    keys = [line.charge_id for line in lines]
    assert keys == sorted(keys)
    for line in lines:
        if line.kind is LineKind.CHARGE_MINIMUM:
            assert line.amount.amount > 0
