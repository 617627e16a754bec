"""Rating: a period's usage and a plan's price sheet become rated line items. Pure.

No I/O, no clock, no randomness: `rate_all` is a function of its arguments,
and its output order is fixed (charge id, then group values), so the same
inputs rate to the same lines whatever order they arrive in.

The pricing models themselves (flat fee, per unit, package, graduated, volume,
percentage, graduated percentage, basis points, matrix) live in
`pricing_models`; this module adds what a plan and a period make of them:

- `rate_all(price_sheet, usage, period)`: every charge of the sheet rated
  over the period's usage, one line per charge and group, plus a true-up line
  for each charge whose minimum the usage did not reach;
- `rate_event_in_advance` / `rate_transaction_in_advance`: the fee of one
  event of a pay-in-advance charge, final when rated;
- `compute_true_up`: what a minimum (of a charge, or a plan's commitment)
  adds when billing fell short of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import NamedTuple, cast

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount, ValidationFailed
from billing_common.money import Money, sum_money
from billing_rating.pricing_models import (
    _QUANTITY_MODELS,
    AdvanceNotSupported,
    BasisPoints,
    ChargeBreakdown,
    FlatFee,
    Graduated,
    GraduatedPercentage,
    Matrix,
    MinimumTrueUp,
    NegativePrice,
    Package,
    Percentage,
    PerUnit,
    PricingModel,
    QuantityModel,
    Tier,
    TierLine,
    Volume,
    add_quantities,
    to_pico_units,
    to_quantity,
    transaction_picos,
)

__all__ = [
    "BasisPoints",
    "BillingTiming",
    "Charge",
    "ChargeBreakdown",
    "DuplicateCharge",
    "DuplicateUsage",
    "FlatFee",
    "Graduated",
    "GraduatedPercentage",
    "InvalidCharge",
    "InvalidPeriod",
    "InvalidUsage",
    "LineKind",
    "Matrix",
    "MinimumTrueUp",
    "Package",
    "PerUnit",
    "Percentage",
    "Period",
    "PriceSheet",
    "PricingModel",
    "RatedLineItem",
    "Tier",
    "TierLine",
    "Usage",
    "UsageInconsistent",
    "UsageRecord",
    "Volume",
    "compute_true_up",
    "rate_all",
    "rate_event_in_advance",
    "rate_transaction_in_advance",
    "total_of",
]

_PRICING_MODELS = (*_QUANTITY_MODELS, Percentage, Matrix)
_NOTHING = Decimal(0)


# -- errors ----------------------------------------------------------------------------------


class InvalidPeriod(ValidationFailed):
    code = "invalid_period"
    title = "Invalid billing period"


class InvalidCharge(ValidationFailed):
    code = "invalid_charge"
    title = "Invalid charge"


class DuplicateCharge(ValidationFailed):
    code = "duplicate_charge"
    title = "Two charges of a price sheet share an id"


class DuplicateUsage(ValidationFailed):
    code = "duplicate_usage"
    title = "Two usage records for the same meter and group"


class InvalidUsage(ValidationFailed):
    code = "invalid_usage"
    title = "Invalid usage record"


class UsageInconsistent(ValidationFailed):
    code = "usage_inconsistent"
    title = "Usage quantity and transactions disagree"


# -- inputs ----------------------------------------------------------------------------------


class BillingTiming(StrEnum):
    """When a charge is billed: at the end of the period, or event by event as usage arrives."""

    ARREARS = "arrears"
    IN_ADVANCE = "in_advance"


class LineKind(StrEnum):
    USAGE = "usage"
    """The price of a charge's usage in one group."""
    CHARGE_MINIMUM = "charge_minimum"
    """What a charge's minimum adds when its usage lines fall short of it."""


def _is_aware(instant: datetime) -> bool:
    return instant.tzinfo is not None and instant.utcoffset() is not None


@dataclass(frozen=True, slots=True)
class Period:
    """The billing period `[start, end)`: two aware instants, carried on every line."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.start, datetime) or not isinstance(self.end, datetime):
            raise TypeError("a period's start and end are datetimes")
        if not _is_aware(self.start) or not _is_aware(self.end):
            raise InvalidPeriod("a period's start and end must carry a timezone (UTC)")
        if self.start >= self.end:
            raise InvalidPeriod(f"a period must end after it starts: [{self.start}, {self.end})")


@dataclass(frozen=True, slots=True)
class Charge:
    """One priced meter of a plan.

    `group_by` names the meter's dimensions whose values are rated separately,
    one line each (a matrix always rates by its dimensions); without it all the
    meter's usage of the period is one quantity. `minimum` is the least the
    charge bills for the period (a true-up line makes up the difference).
    A charge billed `IN_ADVANCE` must have a price that never falls as usage
    grows (`supports_advance`), so that no event's fee is negative.
    """

    charge_id: str
    meter_key: str
    model: PricingModel
    timing: BillingTiming = BillingTiming.ARREARS
    minimum: Money | None = None
    group_by: Sequence[str] = ()
    _grouping: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _matrix_positions: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    _price_quantity: Callable[[Decimal], ChargeBreakdown] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.charge_id, str) or not self.charge_id:
            raise InvalidCharge("a charge needs a non-empty charge_id")
        if not isinstance(self.meter_key, str) or not self.meter_key:
            raise InvalidCharge(f"charge {self.charge_id} needs a non-empty meter_key")
        if not isinstance(self.model, _PRICING_MODELS):
            raise TypeError(f"charge {self.charge_id}: {type(self.model).__name__} is no price")
        timing = BillingTiming(self.timing)
        object.__setattr__(self, "timing", timing)
        group_by = tuple(self.group_by)
        if len(set(group_by)) != len(group_by) or not all(
            isinstance(name, str) and name for name in group_by
        ):
            raise InvalidCharge(
                f"charge {self.charge_id}: group_by must name distinct dimensions, "
                f"not {list(group_by)}"
            )
        object.__setattr__(self, "group_by", group_by)
        grouping = group_by
        positions = None
        if isinstance(self.model, Matrix):
            dimensions = tuple(self.model.dimensions)
            grouping = group_by or dimensions
            missing = [name for name in dimensions if name not in grouping]
            if missing:
                raise InvalidCharge(
                    f"charge {self.charge_id}: group_by must include the matrix dimensions "
                    f"{missing}"
                )
            if grouping != dimensions:  # else the group's values are the cell's
                positions = tuple(grouping.index(name) for name in dimensions)
        object.__setattr__(self, "_grouping", grouping)
        object.__setattr__(self, "_matrix_positions", positions)
        # Set when rating is one quantity through one model: rate_all's fast path.
        model = self.model
        simple = None if grouping or isinstance(model, Percentage | Matrix) else model._price
        object.__setattr__(self, "_price_quantity", simple)
        if timing is BillingTiming.IN_ADVANCE and not self.model.supports_advance:
            raise AdvanceNotSupported(
                f"charge {self.charge_id}: a {self.model.kind} price "
                + (
                    "does not depend on events"
                    if isinstance(self.model, FlatFee)
                    else "falls as usage grows at some quantity"
                )
                + ", so it cannot be billed in advance event by event",
                charge_id=self.charge_id,
            )
        if self.minimum is not None:
            if not isinstance(self.minimum, Money):
                raise TypeError("a charge minimum is Money")
            if self.minimum.amount < 0:
                raise NegativePrice(f"charge {self.charge_id}: the minimum cannot be negative")
            if self.minimum.currency != self.model.currency:
                raise CurrencyMismatch(
                    f"charge {self.charge_id}: the minimum is in {self.minimum.currency.code}, "
                    f"the price in {self.model.currency.code}",
                    currencies=[self.model.currency.code, self.minimum.currency.code],
                )


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """A plan's charges in one currency, kept in charge id order."""

    currency: Currency
    charges: Sequence[Charge]

    def __post_init__(self) -> None:
        if not isinstance(self.currency, Currency):
            raise TypeError("a price sheet's currency is a Currency; use Currency.of(code)")
        charges = tuple(sorted(self.charges, key=lambda charge: charge.charge_id))
        for charge in charges:
            if not isinstance(charge, Charge):
                raise TypeError(f"a price sheet holds Charges, not {type(charge).__name__}")
            if charge.model.currency != self.currency:
                raise CurrencyMismatch(
                    f"charge {charge.charge_id} is priced in {charge.model.currency.code}, "
                    f"the sheet in {self.currency.code}",
                    currencies=[self.currency.code, charge.model.currency.code],
                )
        for first, second in pairwise(charges):
            if first.charge_id == second.charge_id:
                raise DuplicateCharge(
                    f"two charges are called {first.charge_id}", charge_id=first.charge_id
                )
        object.__setattr__(self, "charges", charges)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """A meter's aggregate for the period in one group of its dimension values.

    `quantity` is the meter's value (a count, a sum, ...). For a percentage
    charge, `transactions` lists the amount property of each event, in the
    order they occurred (major units of the price's currency), and `quantity`
    must be their sum.
    """

    meter_key: str
    group: Mapping[str, str]
    quantity: Decimal
    transactions: Sequence[Decimal] = ()
    _group_key: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _transaction_picos: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.meter_key, str) or not self.meter_key:
            raise InvalidUsage("a usage record needs a non-empty meter_key")
        group = dict(self.group)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in group.items()):
            raise TypeError("group values are strings, keyed by dimension name")
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "_group_key", tuple(sorted(group.items())))
        object.__setattr__(self, "quantity", to_quantity(self.quantity, "a usage quantity"))
        if not isinstance(self.transactions, tuple):
            object.__setattr__(self, "transactions", tuple(self.transactions))
        # Checked and converted once, here, like the quantity: rating works in pico-units.
        object.__setattr__(self, "_transaction_picos", transaction_picos(self.transactions))


@dataclass(frozen=True, slots=True)
class Usage:
    """The period's usage: at most one record per meter and group."""

    records: Sequence[UsageRecord]
    _by_meter: dict[str, tuple[UsageRecord, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_meter: dict[str, list[UsageRecord]] = {}
        for record in self.records:
            if not isinstance(record, UsageRecord):
                raise TypeError(f"usage holds UsageRecords, not {type(record).__name__}")
            by_meter.setdefault(record.meter_key, []).append(record)
        index: dict[str, tuple[UsageRecord, ...]] = {}
        for meter_key, records in by_meter.items():
            records.sort(key=lambda record: record._group_key)
            for first, second in pairwise(records):
                if first._group_key == second._group_key:
                    raise DuplicateUsage(
                        f"two usage records for meter {meter_key} and group {first.group}",
                        meter_key=meter_key,
                    )
            index[meter_key] = tuple(records)
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "_by_meter", index)

    def for_meter(self, meter_key: str) -> tuple[UsageRecord, ...]:
        """The records of `meter_key`, in group order; none if it had no usage."""
        return self._by_meter.get(meter_key, ())


# -- output ----------------------------------------------------------------------------------


class RatedLineItem(NamedTuple):
    """One rated amount and everything needed to explain it on an invoice.

    `amount` is exact (pico-units), not yet rounded to the currency's minor
    unit: invoicing rounds each line once. `breakdown` says how it was
    computed (tier by tier, packages, transactions); `explanation` says it in
    words. A `CHARGE_MINIMUM` line is priced by a `MinimumTrueUp`.

    A line of an `IN_ADVANCE` charge states the period's price of the charge,
    which its events were already billed (their fees add up to it): invoicing
    reconciles it rather than bill it again.
    """

    charge_id: str
    meter_key: str
    group: dict[str, str]
    period: Period
    timing: BillingTiming
    kind: LineKind
    breakdown: ChargeBreakdown

    @property
    def quantity(self) -> Decimal:
        """The units rated (for a percentage, the amount its transactions add up to)."""
        return self.breakdown.quantity

    @property
    def amount(self) -> Money:
        """The exact amount of the line, in pico-units of the sheet's currency."""
        return self.breakdown.amount

    @property
    def unit_price(self) -> Money | None:
        """The one price every unit got, where there is one (else see `tiers`)."""
        return self.breakdown.unit_price

    @property
    def tiers(self) -> tuple[TierLine, ...]:
        """The tiers usage entered, each with its units, prices and amount."""
        return self.breakdown.tiers

    @property
    def explanation(self) -> str:
        """How `amount` was reached, in one line."""
        return self.breakdown.explanation


# -- rating ----------------------------------------------------------------------------------


def compute_true_up(minimum: Money, billed: Money) -> Money:
    """What a minimum adds to what was billed: `max(0, minimum - billed)`.

    It serves a charge's minimum and a plan's minimum commitment alike.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> compute_true_up(usd("100"), usd("62.5")), compute_true_up(usd("100"), usd("130"))
    (Money.parse('37.5', 'USD'), Money.parse('0', 'USD'))
    """
    if not isinstance(minimum, Money) or not isinstance(billed, Money):
        raise TypeError("compute_true_up takes Money")
    if minimum.amount < 0:
        raise NegativePrice(f"a minimum cannot be negative: {minimum}")
    shortfall = minimum - billed  # CurrencyMismatch across currencies
    return shortfall if shortfall.amount > 0 else Money(0, minimum.currency)


def rate_event_in_advance(
    model: PricingModel,
    already_billed_quantity: Decimal | int,
    event_quantity: Decimal | int,
    group: Mapping[str, str] | None = None,
) -> Money:
    """The fee of one event of a pay-in-advance charge: `price(before + event) - price(before)`.

    `already_billed_quantity` is the period's cumulative usage of the charge (in
    the event's group, for a matrix) before this event. The fee depends on
    nothing later, so it is final when rated, and the fees of a period add up
    to the arrears price of its total quantity. Only prices that never fall as
    usage grows qualify (`supports_advance`): for a volume table whose total
    falls at a tier bound, an event crossing it would get a negative fee.

    Worked example, graduated (0, 100] at 0.10 USD then 0.05 USD: with 90 units
    billed, an event of 20 units costs 10 x 0.10 + 10 x 0.05 = 1.50 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> plan = Graduated([Tier(Decimal(0), Decimal(100), usd("0.10")),
    ...                   Tier(Decimal(100), None, usd("0.05"))])
    >>> rate_event_in_advance(plan, Decimal(90), Decimal(20))
    Money.parse('1.5', 'USD')
    """
    if isinstance(model, Percentage):
        raise AdvanceNotSupported(
            "a percentage price rates transactions: use rate_transaction_in_advance"
        )
    if not isinstance(model, _PRICING_MODELS):
        raise TypeError(f"{type(model).__name__} is no price")
    if not model.supports_advance:
        raise AdvanceNotSupported(
            f"a {model.kind} price that can fall as usage grows cannot be billed in advance"
        )
    before = to_quantity(already_billed_quantity, "the quantity already billed")
    event = to_quantity(event_quantity, "an event's quantity")
    priced: QuantityModel
    if isinstance(model, Matrix):
        if group is None:
            raise TypeError("a matrix price needs the event's group")
        priced = model.model_for(group)
    else:
        priced = model
    after = add_quantities(before, event)
    return priced._price(after).amount - priced._price(before).amount


def rate_transaction_in_advance(
    model: Percentage,
    transactions_before: int,
    amount_before: Decimal | int,
    amount: Decimal | int,
) -> Money:
    """The fee of one transaction of a pay-in-advance percentage charge.

    `transactions_before` and `amount_before` are the count and the sum of the
    period's earlier transactions; the fee is the one `rate_all` gives that
    transaction, so a period's fees add up to its arrears amount.

    >>> plan = Percentage(Currency.of("USD"), Decimal("2.9"), fixed_fee=Money.parse("0.3", "USD"))
    >>> rate_transaction_in_advance(plan, 4, Decimal("120"), Decimal("100"))
    Money.parse('3.2', 'USD')
    """
    if not isinstance(model, Percentage):
        raise TypeError("rate_transaction_in_advance takes a Percentage price")
    return model.fee_of_transaction(transactions_before, amount_before, amount)


def _group_sort_key(values: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, value or "") for value in values)


def _total_quantity(records: Sequence[UsageRecord]) -> Decimal:
    total = _NOTHING
    for record in records:
        total = add_quantities(total, record.quantity)
    return total


def _rate_percentage(
    charge: Charge, model: Percentage, records: Sequence[UsageRecord]
) -> ChargeBreakdown:
    """A percentage charge over the transactions of `records` (in their group order)."""
    if len(records) == 1:
        transactions: Sequence[int] = records[0]._transaction_picos
    else:
        transactions = [amount for record in records for amount in record._transaction_picos]
    quantity = records[0].quantity if len(records) == 1 else _total_quantity(records)
    breakdown = model._price_picos(transactions, quantity)
    assert breakdown.percentage is not None
    try:
        reported = to_pico_units(quantity)
    except InvalidAmount:  # more than 12 decimals: no sum of amounts
        reported = -1
    if breakdown.percentage.total_amount.amount != reported:
        raise UsageInconsistent(
            f"charge {charge.charge_id}: meter {charge.meter_key} reports {quantity} "
            f"but its transactions add up to {breakdown.percentage.total_amount}",
            charge_id=charge.charge_id,
        )
    return breakdown


def rate_all(price_sheet: PriceSheet, usage: Usage, period: Period) -> list[RatedLineItem]:
    """Rate every charge of `price_sheet` over the period's `usage`.

    For each charge (in charge id order): one line per group of its `group_by`
    values that has usage, in order of those values (a charge without group_by
    gets one line, with quantity 0 when it had no usage); then, when the
    charge has a minimum its lines do not reach, a `CHARGE_MINIMUM` line with
    the difference. Records of one meter that fall in the same group are added
    up (right for count and sum meters; metering gives other aggregations at
    the charge's grouping); their transactions are taken record by record in
    group order. Lines of an `IN_ADVANCE` charge state the period's price, which
    the fees its events were billed add up to: invoicing reconciles, not bills, them.

    >>> from datetime import UTC
    >>> usd = lambda text: Money.parse(text, "USD")
    >>> sheet = PriceSheet(Currency.of("USD"), [
    ...     Charge("api", "api_calls", PerUnit(usd("0.002")), minimum=usd("5"))])
    >>> usage = Usage([UsageRecord("api_calls", {}, Decimal(1500))])
    >>> period = Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    >>> [(line.kind.value, str(line.amount)) for line in rate_all(sheet, usage, period)]
    [('usage', '3 USD'), ('charge_minimum', '2 USD')]
    """
    if not isinstance(price_sheet, PriceSheet):
        raise TypeError("rate_all takes a PriceSheet")
    if not isinstance(usage, Usage):
        raise TypeError("rate_all takes Usage")
    if not isinstance(period, Period):
        raise TypeError("rate_all takes a Period")
    lines: list[RatedLineItem] = []
    append = lines.append
    usage_kind = LineKind.USAGE
    by_meter = usage._by_meter
    for charge in price_sheet.charges:
        records = by_meter.get(charge.meter_key, ())
        grouping = charge._grouping
        charge_id, meter_key, timing = charge.charge_id, charge.meter_key, charge.timing
        first_line = len(lines)
        model = charge.model
        price = charge._price_quantity
        if not grouping:
            if price is not None:  # the common case: one quantity, one price
                quantity = records[0].quantity if len(records) == 1 else _total_quantity(records)
                breakdown = price(quantity)
            else:
                assert isinstance(model, Percentage)  # a matrix always groups
                breakdown = (
                    _rate_percentage(charge, model, records) if records else model._price_picos(())
                )
            append(RatedLineItem(charge_id, meter_key, {}, period, timing, usage_kind, breakdown))
        else:
            by_values: dict[tuple[str | None, ...], list[UsageRecord]] = {}
            missing = False
            for record in records:
                group = record.group
                key = tuple(map(group.get, grouping))
                if None in key:
                    missing = True
                found = by_values.get(key)
                if found is None:
                    by_values[key] = [record]
                else:
                    found.append(record)
            positions = charge._matrix_positions
            for values in sorted(by_values, key=_group_sort_key) if missing else sorted(by_values):
                group_records = by_values[values]
                if isinstance(model, Percentage):
                    breakdown = _rate_percentage(charge, model, group_records)
                else:
                    if len(group_records) == 1:
                        quantity = group_records[0].quantity
                    else:
                        quantity = _total_quantity(group_records)
                    if isinstance(model, Matrix):
                        cell = values if positions is None else tuple(values[i] for i in positions)
                        breakdown = model._price(quantity, cell)
                    else:
                        breakdown = model._price(quantity)
                if missing:
                    group = {
                        name: value
                        for name, value in zip(grouping, values, strict=False)
                        if value is not None
                    }
                else:  # the values are all there: no None to leave out
                    group = dict(zip(grouping, cast("tuple[str, ...]", values), strict=False))
                append(
                    RatedLineItem(
                        charge_id, meter_key, group, period, timing, usage_kind, breakdown
                    )
                )
        minimum = charge.minimum
        if minimum is not None:
            rated = sum(line.breakdown.amount.amount for line in lines[first_line:])
            if rated < minimum.amount:  # else compute_true_up would add nothing
                true_up = compute_true_up(minimum, Money(rated, price_sheet.currency))
                append(
                    RatedLineItem(
                        charge_id,
                        meter_key,
                        {},
                        period,
                        timing,
                        LineKind.CHARGE_MINIMUM,
                        MinimumTrueUp(minimum).breakdown(true_up),
                    )
                )
    return lines


def total_of(lines: Iterable[RatedLineItem], currency: Currency) -> Money:
    """The exact sum of `lines`, e.g. to hold against a plan's minimum commitment.

    >>> total_of([], Currency.of("USD"))
    Money.parse('0', 'USD')
    """
    return sum_money((line.amount for line in lines), currency)
