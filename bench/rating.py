"""How fast the pure rating engine rates: `rate_all` lines per second per core.

Run: `.venv/bin/python bench/rating.py` (about 10 s; `--quick` for a smoke run).

It prints:

1. the realistic mix: 10,000 customers, each on a plan of 8 charges giving 10
   lines a period (4 per-unit, 1 graduated with 5 tiers = 10 % of lines,
   1 package, 1 card-fee percentage with min/max over 10 transactions = 100,000
   transactions in all, 1 matrix of 20 cells used in 3 groups), rated one
   customer at a time; the figure is lines per CPU-second of this one process,
   i.e. per core (the wall clock is shown beside it);
2. how the time of one line grows with the number of tiers, with the size of
   the quantity, with the transactions of a percentage line, and with the
   groups of a matrix charge.

Inputs (price sheets, usage) are built before the clock starts: rating is what
is measured. Every figure is the best of a few repeats.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from billing_common.currency import Currency
from billing_common.money import Money
from billing_rating.domain import (
    Charge,
    Graduated,
    Matrix,
    Package,
    Percentage,
    Period,
    PerUnit,
    PriceSheet,
    Tier,
    Usage,
    UsageRecord,
    rate_all,
)
from billing_rating.pricing_models import QuantityModel

USD = Currency.of("USD")
PERIOD = Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
REGIONS = ("us-east", "us-west", "eu-west", "ap-south")
SIZES = ("nano", "small", "medium", "large", "xlarge")


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def graduated(tier_count: int, linear: bool = False) -> Graduated:
    """`tier_count` tiers up to 100, 1,000, 10,000... units (100, 200, 300... if `linear`),
    each 20 % cheaper than the one before; a flat fee of 5 USD on entering tier 2."""
    tiers = []
    start = Decimal(0)
    price = Decimal("0.1")
    for index in range(tier_count):
        bound = 100 * (index + 1) if linear else 10 ** (index + 2)
        up_to = None if index == tier_count - 1 else Decimal(bound)
        flat = usd("5") if index == 1 else None
        tiers.append(Tier(start, up_to, Money.from_decimal(price, USD), flat))
        start = up_to if up_to is not None else start
        price = (price * Decimal("0.8")).quantize(Decimal("1E-12"))
    return Graduated(tiers)


def matrix() -> Matrix:
    """Region x instance size: 4 x 5 = 20 cells, and a default."""
    cells: dict[tuple[str, ...], QuantityModel] = {}
    for region_index, region in enumerate(REGIONS):
        for size_index, size in enumerate(SIZES):
            price = Decimal("0.0116") * (2**size_index) * (1 + Decimal(region_index) / 10)
            cells[region, size] = PerUnit(Money.from_decimal(price.quantize(Decimal("1E-6")), USD))
    return Matrix(("region", "size"), cells, default=PerUnit(usd("0.05")))


def mix_plan() -> PriceSheet:
    return PriceSheet(
        USD,
        [
            Charge("api_requests", "api_requests", PerUnit(usd("0.0004"))),
            Charge("bandwidth_gb", "bandwidth_gb", PerUnit(usd("0.09"))),
            Charge("emails", "emails_sent", PerUnit(usd("0.001"))),
            Charge("storage_gb_hours", "storage_gb_hours", PerUnit(usd("0.000032"))),
            Charge("events", "events", graduated(5), minimum=usd("10")),
            Charge("seats", "active_seats", Package(Decimal(5), usd("40"), free_units=Decimal(2))),
            Charge(
                "card_fees",
                "payments",
                Percentage(
                    USD,
                    Decimal("2.9"),
                    fixed_fee=usd("0.30"),
                    free_transactions=1,
                    minimum_per_transaction=usd("0.50"),
                    maximum_per_transaction=usd("25"),
                ),
            ),
            Charge("compute_hours", "compute_hours", matrix()),
        ],
    )


def quantity(rng: random.Random, low: int, high: int, places: int = 0) -> Decimal:
    return Decimal(rng.randint(low * 10**places, high * 10**places)).scaleb(-places)


RawRecord = tuple[str, dict[str, str], Decimal, list[Decimal]]


def mix_raw_usage(rng: random.Random, transactions: int) -> list[RawRecord]:
    """One customer's usage of the period, as metering would report it."""
    amounts = [quantity(rng, 1, 2000, 2) for _ in range(transactions)]
    groups = rng.sample([(r, s) for r in REGIONS for s in SIZES], 3)
    return [
        ("api_requests", {}, quantity(rng, 0, 5_000_000), []),
        ("bandwidth_gb", {}, quantity(rng, 0, 5_000, 3), []),
        ("emails_sent", {}, quantity(rng, 0, 200_000), []),
        ("storage_gb_hours", {}, quantity(rng, 0, 10_000_000, 2), []),
        ("events", {}, quantity(rng, 0, 50_000_000), []),
        ("active_seats", {}, quantity(rng, 0, 120), []),
        ("payments", {}, sum(amounts, Decimal(0)), amounts),
        *(
            ("compute_hours", {"region": region, "size": size}, quantity(rng, 0, 744, 4), [])
            for region, size in groups
        ),
    ]


def build_usage(records: list[RawRecord]) -> Usage:
    return Usage([UsageRecord(*record) for record in records])


def best_of(repeats: int, work: Callable[[], int]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, lines) of the fastest of `repeats` runs of `work`."""
    best: tuple[float, float, int] | None = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        lines = work()
        result = (time.process_time() - cpu, time.perf_counter() - wall, lines)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    return best


def per_line_micros(sheet: PriceSheet, usage: Usage, repeats: int, loops: int) -> float:
    """CPU microseconds per rated line of `rate_all(sheet, usage)`."""

    def work() -> int:
        lines = 0
        for _ in range(loops):
            lines += len(rate_all(sheet, usage, PERIOD))
        return lines

    cpu, _, lines = best_of(repeats, work)
    return cpu / lines * 1e6


def bench_mix(customers: int, repeats: int) -> None:
    rng = random.Random(4)
    plan = mix_plan()
    raw = [mix_raw_usage(rng, transactions=10) for _ in range(customers)]
    built = time.process_time()
    usages = [build_usage(records) for records in raw]
    built = time.process_time() - built

    def work() -> int:
        return sum(len(rate_all(plan, usage, PERIOD)) for usage in usages)

    cpu, wall, lines = best_of(repeats, work)
    transactions = sum(
        len(record.transactions) for usage in usages for record in usage.for_meter("payments")
    )
    print("1. Realistic mix")
    print(
        f"   {customers:,} customers x 8 charges = {lines:,} lines, "
        f"{transactions:,} card transactions"
    )
    print(
        f"   lines/s per core (CPU time): {lines / cpu:>12,.0f}   ({cpu * 1e6 / lines:.2f} us/line)"
    )
    print(f"   lines/s wall clock:          {lines / wall:>12,.0f}")
    print(f"   customers rated/s per core:  {customers / cpu:>12,.0f}")
    print(
        f"   (not in the figures above: building the Usage inputs, which checks quantities\n"
        f"   and converts transaction amounts to pico-units once, took "
        f"{built * 1e6 / customers:.1f} us per customer)"
    )
    print()


def bench_tiers(repeats: int, loops: int) -> None:
    print("2. Graduated: one line, by tier count (quantity in the last tier, and in tier 1)")
    print(f"   {'tiers':>6} {'us/line (last)':>15} {'us/line (first)':>16}")
    for count in (1, 2, 5, 10, 20, 50, 100):
        sheet = PriceSheet(USD, [Charge("g", "m", graduated(count, linear=True))])
        deep = Usage([UsageRecord("m", {}, Decimal(100 * count) + Decimal("0.5"))])
        shallow = Usage([UsageRecord("m", {}, Decimal(50))])
        print(
            f"   {count:>6} {per_line_micros(sheet, deep, repeats, loops):>15.2f}"
            f" {per_line_micros(sheet, shallow, repeats, loops):>16.2f}"
        )
    print()


def bench_quantity_size(repeats: int, loops: int) -> None:
    print("3. By size of the quantity (per-unit and 5-tier graduated)")
    print(f"   {'quantity':>26} {'per-unit us/line':>17} {'graduated us/line':>18}")
    per_unit = PriceSheet(USD, [Charge("p", "m", PerUnit(usd("0.000123456789")))])
    tiered = PriceSheet(USD, [Charge("g", "m", graduated(5))])
    for text in ("7", "1000", "1234567", "123456789.5", "1234567890123.123456", "0.000001"):
        usage = Usage([UsageRecord("m", {}, Decimal(text))])
        print(
            f"   {text:>26} {per_line_micros(per_unit, usage, repeats, loops):>17.2f}"
            f" {per_line_micros(tiered, usage, repeats, loops):>18.2f}"
        )
    print()


def bench_transactions(repeats: int, quick: bool) -> None:
    print("4. Percentage (2.9 % + 0.30, min/max per transaction): one line, by transactions")
    print(f"   {'transactions':>12} {'ms/line':>10} {'transactions/s per core':>24}")
    sheet = mix_plan()
    rng = random.Random(7)
    sizes = (1, 10, 100, 1_000, 10_000) if quick else (1, 10, 100, 1_000, 10_000, 100_000)
    for size in sizes:
        amounts = [quantity(rng, 1, 2000, 2) for _ in range(size)]
        usage = Usage([UsageRecord("payments", {}, sum(amounts, Decimal(0)), transactions=amounts)])
        only_fees = PriceSheet(USD, [c for c in sheet.charges if c.charge_id == "card_fees"])
        loops = max(1, 2_000 // size)
        micros = per_line_micros(only_fees, usage, repeats, loops)
        print(f"   {size:>12,} {micros / 1000:>10.3f} {size / micros * 1e6:>24,.0f}")
    print()


def bench_matrix_groups(repeats: int, loops: int) -> None:
    print("5. Matrix of 20 cells: one charge, by groups with usage (lines)")
    print(f"   {'groups':>6} {'us/line':>9}")
    sheet = PriceSheet(USD, [Charge("compute", "hours", matrix())])
    cells = [(region, size) for region in REGIONS for size in SIZES]
    for groups in (1, 3, 10, 20):
        usage = Usage(
            [
                UsageRecord("hours", {"region": region, "size": size}, Decimal("730.5"))
                for region, size in cells[:groups]
            ]
        )
        micros = per_line_micros(sheet, usage, repeats, max(1, loops // groups))
        print(f"   {groups:>6} {micros:>9.2f}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    args = parser.parse_args()
    customers, repeats, loops = (1_000, 2, 500) if args.quick else (10_000, 3, 5_000)
    started = time.perf_counter()
    bench_mix(customers, repeats)
    bench_tiers(repeats, loops)
    bench_quantity_size(repeats, loops)
    bench_transactions(repeats, args.quick)
    bench_matrix_groups(repeats, loops)
    print(f"(benchmark ran in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
