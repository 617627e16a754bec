"""Pricing models: how much a quantity of usage costs. Pure functions, no I/O.

Every model is a frozen dataclass validated when it is built, with a `price`
method that returns a `ChargeBreakdown`: the amount and how it was reached
(tier by tier), so an invoice can explain every amount.

Numbers:

- Quantities are exact `Decimal`s (an `int` is accepted; a float is a
  `TypeError`), never negative, at most 30 digits either side of the point.
- Prices are `Money`: integer pico-units (10^-12 of the major unit), so a unit
  price can have 12 decimals.
- Amounts are *not* rounded to the currency's minor unit here: invoicing rounds
  each line once. The only rounding is to the pico-unit, half-up, where a
  product has digits below it (a unit price times a fractional quantity, a
  percentage of an amount); it happens once per tier line, package count or
  transaction, so a breakdown always adds up to its amount.

Tier tables state both bounds of every tier: a tier covers the quantities
above `from_units` up to and including `up_to`; the first starts at 0, each next
one starts where the previous ends, the last is open-ended (`up_to=None`).
A tier's flat fee is charged once, as soon as usage enters the tier (goes
above its `from_units`), so zero usage costs nothing.
"""

from __future__ import annotations

import decimal
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from itertools import pairwise
from typing import ClassVar, NamedTuple, TypeAlias

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount, ValidationFailed
from billing_common.money import PICO, Money

__all__ = [
    "AdvanceNotSupported",
    "BasisPoints",
    "ChargeBreakdown",
    "FlatFee",
    "Graduated",
    "GraduatedPercentage",
    "InvalidMatrix",
    "InvalidPackageSize",
    "InvalidPricing",
    "InvalidQuantity",
    "InvalidRate",
    "LastTierNotOpen",
    "Matrix",
    "MatrixCellMissing",
    "MinimumAboveMaximum",
    "MinimumTrueUp",
    "NegativePrice",
    "NegativeQuantity",
    "Package",
    "PerUnit",
    "Percentage",
    "PercentageDetail",
    "PercentageTier",
    "PricingModel",
    "QuantityModel",
    "Tier",
    "TierBoundsInvalid",
    "TierLine",
    "TierOverlap",
    "TiersEmpty",
    "TiersNotContiguous",
    "TiersUnsorted",
    "Volume",
    "add_quantities",
    "to_pico_units",
    "to_quantity",
    "transaction_picos",
]

# -- errors ---------------------------------------------------------------------------------


class InvalidPricing(ValidationFailed):
    """A price that cannot be used as given; each subclass names the condition."""

    code = "invalid_pricing"
    title = "Invalid pricing"


class TiersEmpty(InvalidPricing):
    code = "tiers_empty"
    title = "A tier table needs at least one tier"


class TiersUnsorted(InvalidPricing):
    code = "tiers_unsorted"
    title = "Tiers are not in increasing order"


class TierOverlap(InvalidPricing):
    code = "tier_overlap"
    title = "Tiers overlap"


class TiersNotContiguous(InvalidPricing):
    code = "tiers_not_contiguous"
    title = "Tiers leave a gap"


class TierBoundsInvalid(InvalidPricing):
    code = "tier_bounds_invalid"
    title = "A tier ends at or below its start"


class LastTierNotOpen(InvalidPricing):
    code = "last_tier_not_open"
    title = "The last tier must be open-ended"


class NegativePrice(InvalidPricing):
    code = "negative_price"
    title = "Prices, fees and minimums cannot be negative"


class InvalidRate(InvalidPricing):
    code = "invalid_rate"
    title = "Invalid rate"


class MinimumAboveMaximum(InvalidPricing):
    code = "minimum_above_maximum"
    title = "The minimum per transaction is above the maximum"


class InvalidPackageSize(InvalidPricing):
    code = "invalid_package_size"
    title = "A package must hold more than zero units"


class InvalidMatrix(InvalidPricing):
    code = "invalid_matrix"
    title = "Invalid price matrix"


class AdvanceNotSupported(InvalidPricing):
    code = "advance_not_supported"
    title = "This price cannot be billed in advance, event by event"


class InvalidQuantity(ValidationFailed):
    code = "invalid_quantity"
    title = "Invalid quantity"


class NegativeQuantity(InvalidQuantity):
    code = "negative_quantity"
    title = "Quantities cannot be negative"


class MatrixCellMissing(ValidationFailed):
    """Usage in a group that no cell of the matrix prices, and the matrix has no default."""

    code = "matrix_cell_missing"
    title = "No price for these dimension values"


# -- exact numbers ---------------------------------------------------------------------------

#: Additions and subtractions of quantities are exact: any rounding would raise.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.Overflow],
)
_MAX_DIGITS = 30
_PICO: int = PICO
_ZERO = Decimal(0)
_PERCENT = 100  # a percentage's denominator
_BASIS_POINTS = 10_000


def to_quantity(value: object, what: str = "a quantity") -> Decimal:
    """`value` as an exact, non-negative `Decimal`; an `int` is accepted, a float is not.

    >>> to_quantity(Decimal("12.50")), to_quantity(3)
    (Decimal('12.50'), Decimal('3'))
    """
    if isinstance(value, Decimal):
        quantity = value
    elif isinstance(value, int) and not isinstance(value, bool):
        quantity = Decimal(value)
    else:
        raise TypeError(f"{what} must be a Decimal or an int, not {type(value).__name__}")
    if not quantity.is_finite():
        raise InvalidQuantity(f"{what} must be finite, not {quantity}")
    if quantity.is_zero():
        return _ZERO
    if quantity < 0:
        raise NegativeQuantity(f"{what} cannot be negative: {quantity}")
    exponent = quantity.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -_MAX_DIGITS or quantity.adjusted() >= _MAX_DIGITS:
        raise InvalidQuantity(
            f"{what} {quantity} is out of range: at most {_MAX_DIGITS} digits before "
            f"and {_MAX_DIGITS} after the point"
        )
    return quantity


def add_quantities(first: Decimal, second: Decimal) -> Decimal:
    """`first + second`, exactly (the default decimal context would round past 28 digits).

    >>> add_quantities(Decimal("1E+29"), Decimal("0.000000000001"))
    Decimal('100000000000000000000000000000.000000000001')
    """
    return _EXACT.add(first, second)


_new_object = object.__new__
_set_field = object.__setattr__


def _build_money(pico: int, currency: Currency) -> Money:
    """`Money(pico, currency)` for an `int` computed here and a `Currency` already checked.

    The same value, built without the constructor re-validating both: 2.5 times
    faster, and rating builds one per line and per tier line.
    """
    money: Money = _new_object(Money)
    _set_field(money, "amount", pico)
    _set_field(money, "currency", currency)
    return money


#: Falls back to the constructor should `Money` ever gain a field.
_money: Callable[[int, Currency], Money] = (
    _build_money
    if tuple(money_field.name for money_field in fields(Money)) == ("amount", "currency")
    else Money
)


def _times(pico: int, quantity: Decimal) -> int:
    """`pico * quantity` rounded half-up to a whole pico-unit (both are non-negative)."""
    numerator, denominator = quantity.as_integer_ratio()
    if denominator == 1:
        return pico * numerator
    whole, rest = divmod(pico * numerator, denominator)
    return whole + 1 if 2 * rest >= denominator else whole


def _share(base: int, numerator: int, denominator: int) -> int:
    """`base * numerator / denominator` rounded half-up (all non-negative)."""
    whole, rest = divmod(base * numerator, denominator)
    return whole + 1 if 2 * rest >= denominator else whole


def _percent_of(amount: Decimal, rate: tuple[int, int]) -> int:
    """Pico-units of `amount` (major units) times the rate `numerator / denominator`, half-up."""
    numerator, denominator = amount.as_integer_ratio()
    return _share(numerator, rate[0], denominator * rate[1])


def to_pico_units(amount: object) -> int:
    """Pico-units of a non-negative amount in major units (a Decimal or int, <= 12 decimals).

    >>> to_pico_units(Decimal("0.05")), to_pico_units(2)
    (50000000000, 2000000000000)
    """
    if isinstance(amount, Decimal):
        if not amount.is_finite() or amount.adjusted() >= _MAX_DIGITS:
            raise InvalidAmount(f"transaction amount {amount} is not a finite amount in range")
        scaled = amount.scaleb(12, _EXACT)
        pico = int(scaled)
        if pico != scaled:
            raise InvalidAmount(f"transaction amount {amount} has more than 12 decimals")
    elif isinstance(amount, int) and not isinstance(amount, bool):
        pico = amount * _PICO
    else:
        raise TypeError(
            f"a transaction amount must be a Decimal or an int, not {type(amount).__name__}"
        )
    if pico < 0:
        raise NegativeQuantity(f"a transaction amount cannot be negative: {amount}")
    return pico


def transaction_picos(amounts: Sequence[Decimal | int]) -> tuple[int, ...]:
    """Transaction amounts in major units as pico-units: exact, checked, never negative.

    >>> transaction_picos([Decimal("12.5"), 3])
    (12500000000000, 3000000000000)
    """
    return tuple(map(to_pico_units, amounts))


def _decimal_of_pico(pico: int) -> Decimal:
    """An amount of pico-units as a Decimal in major units, without trailing zeros.

    >>> _decimal_of_pico(1_500_000_000_000), _decimal_of_pico(1_250_000_000_000)
    (Decimal('1.5'), Decimal('1.25'))
    """
    whole, fraction = divmod(pico, _PICO)
    if not fraction:
        return Decimal(whole)
    digits = f"{fraction:012d}".rstrip("0")
    return Decimal(f"{whole}.{digits}")


def _rate(value: object, what: str) -> Decimal:
    """A rate (a percentage, basis points): an exact non-negative Decimal, like a quantity."""
    try:
        return to_quantity(value, what)
    except InvalidQuantity as exc:
        raise InvalidRate(exc.detail) from exc


def _price_pico(price: object, currency: Currency | None, what: str) -> int:
    """The pico-units of a non-negative price in `currency` (checked when given)."""
    if not isinstance(price, Money):
        raise TypeError(f"{what} must be Money, not {type(price).__name__}")
    if currency is not None and price.currency != currency:
        raise CurrencyMismatch(
            f"{what} is in {price.currency.code}, the price is in {currency.code}",
            currencies=[currency.code, price.currency.code],
        )
    if price.amount < 0:
        raise NegativePrice(f"{what} cannot be negative: {price}")
    return price.amount


def _text(quantity: Decimal) -> str:
    """A quantity as plain digits: `Decimal("1E+3")` reads 1000."""
    return f"{quantity:f}"


def _bound(up_to: Decimal | None) -> str:
    return "inf" if up_to is None else _text(up_to)


# -- breakdowns ------------------------------------------------------------------------------
# Named tuples, not frozen dataclasses: equally immutable and typed, and several times
# cheaper to build (a frozen dataclass sets each field through object.__setattr__),
# which matters at hundreds of thousands of rated lines a second.


class TierLine(NamedTuple):
    """What one tier contributed: `units` in (from_units, up_to] at its price, plus its flat fee.

    For a percentage tier `units` is the part of the amount inside the tier and
    `rate` the percentage charged on it (`unit_price` is None).
    """

    tier_index: int
    from_units: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_price: Money | None
    rate: Decimal | None
    flat_fee: Money | None
    amount: Money

    @property
    def explanation(self) -> str:
        """`tier 2 (100, 1000]: 50 x 0.008 USD + flat 2 USD = 2.4 USD`."""
        head = f"tier {self.tier_index + 1} ({_text(self.from_units)}, {_bound(self.up_to)}]: "
        if self.rate is not None:
            body = f"{_text(self.rate)}% of {_text(self.units)}"
        else:
            body = f"{_text(self.units)} x {self.unit_price}"
        flat = f" + flat {self.flat_fee}" if self.flat_fee is not None else ""
        return f"{head}{body}{flat} = {self.amount}"


class PercentageDetail(NamedTuple):
    """How a percentage charge treated its transactions (amounts in pico-units of `currency`;
    the properties give them as Money)."""

    transactions: int
    free_transactions: int
    raised_to_minimum: int
    capped_at_maximum: int
    currency: Currency
    total_pico: int
    paid_pico: int
    percentage_pico: int
    fixed_pico: int

    @property
    def total_amount(self) -> Money:
        """The amount of all the transactions."""
        return Money(self.total_pico, self.currency)

    @property
    def paid_amount(self) -> Money:
        """The part of it beyond the free allowance, on which the percentage was charged."""
        return Money(self.paid_pico, self.currency)

    @property
    def percentage_fees(self) -> Money:
        """The percentage of each paying transaction, before minimums and maximums."""
        return Money(self.percentage_pico, self.currency)

    @property
    def fixed_fees(self) -> Money:
        """The fixed fee of each paying transaction, before minimums and maximums."""
        return Money(self.fixed_pico, self.currency)


class ChargeBreakdown(NamedTuple):
    """The price of a quantity under one model, and how it was computed.

    `unit_price` is the single price applied to every unit where there is one
    (per-unit, volume, package: per package); `tiers` lists the tiers usage
    entered; `packages`, `percentage` and `matrix_cell` carry the details of
    their models. `explanation` puts it in words.
    """

    model: PricingModel | MinimumTrueUp
    quantity: Decimal
    amount: Money
    unit_price: Money | None = None
    tiers: tuple[TierLine, ...] = ()
    packages: int | None = None
    percentage: PercentageDetail | None = None
    matrix_cell: tuple[str | None, ...] | None = None
    matrix_default: bool = False

    @property
    def explanation(self) -> str:
        """How the amount was reached, in one line of text."""
        return self.model.explain(self)


@dataclass(frozen=True, slots=True)
class MinimumTrueUp:
    """What prices a charge minimum's true-up line: the minimum less what usage was rated.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> MinimumTrueUp(usd("100")).breakdown(usd("37.5")).explanation
    'charge minimum 100 USD: usage rated 62.5 USD, true-up 37.5 USD'
    """

    kind: ClassVar[str] = "charge_minimum"
    minimum: Money

    def breakdown(self, true_up: Money) -> ChargeBreakdown:
        """The breakdown of a true-up of `true_up`: one unit at that amount."""
        return ChargeBreakdown(self, Decimal(1), true_up, true_up)

    def explain(self, breakdown: ChargeBreakdown) -> str:
        rated = self.minimum - breakdown.amount
        return f"charge minimum {self.minimum}: usage rated {rated}, true-up {breakdown.amount}"


# -- tier tables -----------------------------------------------------------------------------


def _validate_bounds(bounds: Sequence[tuple[Decimal, Decimal | None]]) -> None:
    """Check a tier table's bounds: sorted, from 0, contiguous, no overlap, last open."""
    if not bounds:
        raise TiersEmpty("a tier table needs at least one tier")
    for index, (start, up_to) in enumerate(bounds):
        if up_to is not None and up_to <= start:
            raise TierBoundsInvalid(
                f"tier {index + 1} ends at {up_to}, not above its start {start}", tier=index
            )
    for index in range(1, len(bounds)):
        if bounds[index][0] < bounds[index - 1][0]:
            raise TiersUnsorted(
                f"tier {index + 1} starts at {bounds[index][0]}, before tier {index} "
                f"({bounds[index - 1][0]}): list tiers in increasing order",
                tier=index,
            )
    if bounds[0][0] != 0:
        raise TiersNotContiguous(f"the first tier must start at 0, not {bounds[0][0]}", tier=0)
    for index in range(1, len(bounds)):
        start = bounds[index][0]
        previous_end = bounds[index - 1][1]
        if previous_end is None:
            raise TierOverlap(
                f"tier {index} is open-ended but tier {index + 1} follows it", tier=index
            )
        if start < previous_end:
            raise TierOverlap(
                f"tier {index + 1} starts at {start}, inside tier {index} "
                f"(which runs up to {previous_end})",
                tier=index,
            )
        if start > previous_end:
            raise TiersNotContiguous(
                f"tier {index + 1} starts at {start} but tier {index} ends at {previous_end}: "
                "each tier must start where the previous one ends",
                tier=index,
            )
    if bounds[-1][1] is not None:
        raise LastTierNotOpen(
            f"the last tier ends at {bounds[-1][1]}; it must be open-ended (up_to=None)",
            tier=len(bounds) - 1,
        )


@dataclass(frozen=True, slots=True)
class Tier:
    """One row of a unit-price tier table: quantities in (from_units, up_to] cost `unit_price`.

    `up_to` is inclusive; `None` means no upper bound (only the last tier).
    `flat_fee` is charged once when usage enters the tier.
    """

    from_units: Decimal
    up_to: Decimal | None
    unit_price: Money
    flat_fee: Money | None = None
    _price: int = field(init=False, repr=False, compare=False)
    _flat: int = field(init=False, repr=False, compare=False)
    _width: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = to_quantity(self.from_units, "a tier's from_units")
        up_to = None if self.up_to is None else to_quantity(self.up_to, "a tier's up_to")
        object.__setattr__(self, "from_units", start)
        object.__setattr__(self, "up_to", up_to)
        currency = self.unit_price.currency if isinstance(self.unit_price, Money) else None
        object.__setattr__(self, "_price", _price_pico(self.unit_price, None, "a unit price"))
        flat = 0 if self.flat_fee is None else _price_pico(self.flat_fee, currency, "a flat fee")
        object.__setattr__(self, "_flat", flat)
        # The units of a tier that usage has gone past (unused for the open last tier).
        width = _ZERO if up_to is None or up_to <= start else _EXACT.subtract(up_to, start)
        object.__setattr__(self, "_width", width)


@dataclass(frozen=True, slots=True)
class PercentageTier:
    """One row of a graduated percentage table: `rate` % of the amount in (from_amount, up_to].

    Bounds are amounts in major units of the price's currency; `flat_fee` is
    charged once when the amount enters the tier.
    """

    from_amount: Decimal
    up_to: Decimal | None
    rate: Decimal
    flat_fee: Money | None = None
    _rate: tuple[int, int] = field(init=False, repr=False, compare=False)
    _flat: int = field(init=False, repr=False, compare=False)
    _width: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = to_quantity(self.from_amount, "a tier's from_amount")
        up_to = None if self.up_to is None else to_quantity(self.up_to, "a tier's up_to")
        object.__setattr__(self, "from_amount", start)
        object.__setattr__(self, "up_to", up_to)
        rate = _rate(self.rate, "a tier's rate")
        object.__setattr__(self, "rate", rate)
        numerator, denominator = rate.as_integer_ratio()
        object.__setattr__(self, "_rate", (numerator * _PICO, denominator * _PERCENT))
        flat = 0 if self.flat_fee is None else _price_pico(self.flat_fee, None, "a flat fee")
        object.__setattr__(self, "_flat", flat)
        # The units of a tier that usage has gone past (unused for the open last tier).
        width = _ZERO if up_to is None or up_to <= start else _EXACT.subtract(up_to, start)
        object.__setattr__(self, "_width", width)


def _tier_ends(tiers: Sequence[Tier] | Sequence[PercentageTier]) -> tuple[Decimal, ...]:
    """The `up_to` of every tier but the open last one: `bisect_left(ends, q)` is the tier
    holding a quantity `q` > 0 (bounds are inclusive)."""
    ends = tuple(tier.up_to for tier in tiers[:-1])
    assert all(end is not None for end in ends)  # validated: only the last tier is open
    return ends  # type: ignore[return-value]


def _single_currency(moneys: Sequence[Money | None], currency: Currency | None) -> Currency:
    """The one currency of `moneys` (and of `currency` when given); CurrencyMismatch if not."""
    found = currency
    for money in moneys:
        if money is None:
            continue
        if found is None:
            found = money.currency
        elif money.currency != found:
            raise CurrencyMismatch(
                f"a price mixes {found.code} and {money.currency.code}",
                currencies=[found.code, money.currency.code],
            )
    if found is None:
        raise TypeError("a price without any Money needs a currency")
    return found


# -- quantity models -------------------------------------------------------------------------


class PricedByQuantity:
    """What the models priced by one quantity share: `price` validates the quantity once.

    Monotone and billable in advance unless a model says otherwise; each model
    implements `_price` on an already-validated quantity.
    """

    __slots__ = ()
    quantity_label: ClassVar[str] = "a quantity"

    @property
    def is_monotone(self) -> bool:
        return True

    @property
    def supports_advance(self) -> bool:
        return True

    def price(self, quantity: Decimal | int) -> ChargeBreakdown:
        """The price of `quantity` (validated: exact, non-negative, never a float)."""
        return self._price(to_quantity(quantity, self.quantity_label))

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FlatFee(PricedByQuantity):
    """A fixed amount for the period, whatever the usage.

    >>> fee = FlatFee(Money.parse("49", "USD"))
    >>> fee.price(Decimal(0)).amount, fee.price(Decimal(1200)).amount
    (Money.parse('49', 'USD'), Money.parse('49', 'USD'))

    It cannot be billed in advance event by event (no event changes it); a fee
    due at the start of a period belongs to the subscription.
    """

    kind: ClassVar[str] = "flat_fee"
    fee: Money

    def __post_init__(self) -> None:
        _price_pico(self.fee, None, "a flat fee")

    @property
    def currency(self) -> Currency:
        return self.fee.currency

    @property
    def is_monotone(self) -> bool:
        return True

    @property
    def supports_advance(self) -> bool:
        return False

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        return ChargeBreakdown(self, quantity, self.fee, self.fee)

    def explain(self, breakdown: ChargeBreakdown) -> str:
        return f"flat fee {breakdown.amount} for the period"


@dataclass(frozen=True, slots=True)
class PerUnit(PricedByQuantity):
    """The same price for every unit.

    Worked example: 1,234.5 API calls at 0.0035 USD = 4.32075 USD.

    >>> PerUnit(Money.parse("0.0035", "USD")).price(Decimal("1234.5")).amount
    Money.parse('4.32075', 'USD')
    """

    kind: ClassVar[str] = "per_unit"
    unit_price: Money
    _price_pico: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_price_pico", _price_pico(self.unit_price, None, "a unit price"))

    @property
    def currency(self) -> Currency:
        return self.unit_price.currency

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        amount = _money(_times(self._price_pico, quantity), self.unit_price.currency)
        return ChargeBreakdown(self, quantity, amount, self.unit_price)

    def explain(self, breakdown: ChargeBreakdown) -> str:
        return f"{_text(breakdown.quantity)} units x {self.unit_price} = {breakdown.amount}"


@dataclass(frozen=True, slots=True)
class Package(PricedByQuantity):
    """A price per package of `package_size` units; partial packages round up.

    The first `free_units` are free; the rest is counted in whole packages.
    Worked example: packages of 100 units at 5 USD, 100 free units, 1,050 units
    used: 950 paid units make 9.5 packages, rounded up to 10: 50 USD.

    >>> plan = Package(Decimal(100), Money.parse("5", "USD"), free_units=Decimal(100))
    >>> plan.price(Decimal(1050)).amount, plan.price(Decimal(1050)).packages
    (Money.parse('50', 'USD'), 10)
    """

    kind: ClassVar[str] = "package"
    package_size: Decimal
    package_price: Money
    free_units: Decimal = _ZERO
    _price_pico: int = field(init=False, repr=False, compare=False)
    _size: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = to_quantity(self.package_size, "a package size")
        if size.is_zero():
            raise InvalidPackageSize("a package must hold more than zero units")
        object.__setattr__(self, "package_size", size)
        object.__setattr__(self, "_size", size.as_integer_ratio())
        object.__setattr__(self, "free_units", to_quantity(self.free_units, "free units"))
        price = _price_pico(self.package_price, None, "a package price")
        object.__setattr__(self, "_price_pico", price)

    @property
    def currency(self) -> Currency:
        return self.package_price.currency

    def packages_for(self, quantity: Decimal | int) -> int:
        """How many packages `quantity` units take, after the free units.

        >>> Package(Decimal(100), Money.parse("5", "USD")).packages_for(Decimal("100.5"))
        2
        """
        return self._packages(to_quantity(quantity))

    def _packages(self, quantity: Decimal) -> int:
        if quantity <= self.free_units:
            return 0
        numerator, denominator = _EXACT.subtract(quantity, self.free_units).as_integer_ratio()
        size_numerator, size_denominator = self._size
        return -(-(numerator * size_denominator) // (denominator * size_numerator))

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        packages = self._packages(quantity)
        amount = _money(packages * self._price_pico, self.package_price.currency)
        return ChargeBreakdown(self, quantity, amount, self.package_price, (), packages)

    def explain(self, breakdown: ChargeBreakdown) -> str:
        free = f", {_text(self.free_units)} free" if self.free_units else ""
        return (
            f"{_text(breakdown.quantity)} units{free}: {breakdown.packages} packages of "
            f"{_text(self.package_size)} units x {self.package_price} = {breakdown.amount}"
        )


@dataclass(frozen=True, slots=True)
class Graduated(PricedByQuantity):
    """Each unit at the price of the tier it falls in; a tier's flat fee once it is entered.

    Worked example, tiers (0, 100] at 0.10 USD, (100, 1000] at 0.08 USD plus a
    flat 2 USD, (1000, inf) at 0.05 USD; 1,500 units:
    100 x 0.10 = 10, then 900 x 0.08 + 2 = 74, then 500 x 0.05 = 25: 109 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> plan = Graduated([
    ...     Tier(Decimal(0), Decimal(100), usd("0.10")),
    ...     Tier(Decimal(100), Decimal(1000), usd("0.08"), flat_fee=usd("2")),
    ...     Tier(Decimal(1000), None, usd("0.05")),
    ... ])
    >>> plan.price(Decimal(1500)).amount
    Money.parse('109', 'USD')
    >>> [line.amount.to_decimal_string() for line in plan.price(Decimal(1500)).tiers]
    ['10', '74', '25']
    """

    kind: ClassVar[str] = "graduated"
    tiers: Sequence[Tier]
    _currency: Currency = field(init=False, repr=False, compare=False)
    _ends: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _full_lines: tuple[TierLine, ...] = field(init=False, repr=False, compare=False)
    _amount_before: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        _validate_bounds([(tier.from_units, tier.up_to) for tier in tiers])
        currency = _single_currency(
            [money for tier in tiers for money in (tier.unit_price, tier.flat_fee)], None
        )
        object.__setattr__(self, "_currency", currency)
        # Usage past a tier always fills it the same way: its line and the running total
        # before each tier are computed once, here; pricing only finds the tier usage ends
        # in (a binary search over the bounds) and prices the units inside it.
        full_lines: list[TierLine] = []
        amount_before = [0]
        for index, tier in enumerate(tiers[:-1]):
            amount = _times(tier._price, tier._width) + tier._flat
            full_lines.append(
                TierLine(
                    index,
                    tier.from_units,
                    tier.up_to,
                    tier._width,
                    tier.unit_price,
                    None,
                    tier.flat_fee,
                    Money(amount, currency),
                )
            )
            amount_before.append(amount_before[-1] + amount)
        object.__setattr__(self, "_ends", _tier_ends(tiers))
        object.__setattr__(self, "_full_lines", tuple(full_lines))
        object.__setattr__(self, "_amount_before", tuple(amount_before))

    @property
    def currency(self) -> Currency:
        return self._currency

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        currency = self._currency
        if quantity.is_zero():
            return ChargeBreakdown(self, quantity, _money(0, currency), None, ())
        index = bisect_left(self._ends, quantity)
        tier = self.tiers[index]
        units = _EXACT.subtract(quantity, tier.from_units)
        amount = _times(tier._price, units) + tier._flat
        last = TierLine(
            index,
            tier.from_units,
            tier.up_to,
            units,
            tier.unit_price,
            None,
            tier.flat_fee,
            _money(amount, currency),
        )
        total = _money(self._amount_before[index] + amount, currency)
        return ChargeBreakdown(self, quantity, total, None, (*self._full_lines[:index], last))

    def explain(self, breakdown: ChargeBreakdown) -> str:
        if not breakdown.tiers:
            return f"graduated: {_text(breakdown.quantity)} units, no tier entered = 0"
        parts = "; ".join(line.explanation for line in breakdown.tiers)
        return f"graduated: {_text(breakdown.quantity)} units: {parts}; total {breakdown.amount}"


@dataclass(frozen=True, slots=True)
class Volume(PricedByQuantity):
    """Every unit at the price of the tier the whole quantity reaches, plus that tier's flat fee.

    Worked example, tiers (0, 100] at 0.10 USD, (100, 1000] at 0.08 USD plus a
    flat 2 USD, (1000, inf) at 0.05 USD; 500 units reach tier 2:
    500 x 0.08 + 2 = 42 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> plan = Volume([
    ...     Tier(Decimal(0), Decimal(100), usd("0.10")),
    ...     Tier(Decimal(100), Decimal(1000), usd("0.08"), flat_fee=usd("2")),
    ...     Tier(Decimal(1000), None, usd("0.05")),
    ... ])
    >>> plan.price(Decimal(500)).amount, plan.price(Decimal(100)).amount
    (Money.parse('42', 'USD'), Money.parse('10', 'USD'))

    When a higher tier's lower price makes the total fall (here 1,000 units cost
    82 USD, 1,001 cost 50.05 USD) the price is not monotone in the quantity:
    `is_monotone` says so, and such a price cannot be billed in advance.
    """

    kind: ClassVar[str] = "volume"
    tiers: Sequence[Tier]
    _currency: Currency = field(init=False, repr=False, compare=False)
    _monotone: bool = field(init=False, repr=False, compare=False)
    _ends: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        _validate_bounds([(tier.from_units, tier.up_to) for tier in tiers])
        currency = _single_currency(
            [money for tier in tiers for money in (tier.unit_price, tier.flat_fee)], None
        )
        object.__setattr__(self, "_currency", currency)
        # Inside a tier the amount grows with the quantity; it can only fall where the
        # quantity crosses into the next tier. Just above a bound the next tier charges
        # what it would charge at the bound (half-up rounding is continuous from the
        # right), so compare both tiers' amounts at each bound, in pico-units.
        monotone = True
        for lower, upper in pairwise(tiers):
            assert lower.up_to is not None  # validated: only the last tier is open
            end = lower.up_to
            if _times(upper._price, end) + upper._flat < _times(lower._price, end) + lower._flat:
                monotone = False
        object.__setattr__(self, "_monotone", monotone)
        object.__setattr__(self, "_ends", _tier_ends(tiers))

    @property
    def currency(self) -> Currency:
        return self._currency

    @property
    def is_monotone(self) -> bool:
        return self._monotone

    @property
    def supports_advance(self) -> bool:
        return self._monotone

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        currency = self._currency
        if quantity.is_zero():
            return ChargeBreakdown(self, quantity, _money(0, currency))
        index = bisect_left(self._ends, quantity)
        tier = self.tiers[index]
        amount = _money(_times(tier._price, quantity) + tier._flat, currency)
        line = TierLine(
            index,
            tier.from_units,
            tier.up_to,
            quantity,
            tier.unit_price,
            None,
            tier.flat_fee,
            amount,
        )
        return ChargeBreakdown(self, quantity, amount, tier.unit_price, (line,))

    def explain(self, breakdown: ChargeBreakdown) -> str:
        if not breakdown.tiers:
            return f"volume: {_text(breakdown.quantity)} units, no tier reached = 0"
        return f"volume: all units at the tier reached: {breakdown.tiers[0].explanation}"


@dataclass(frozen=True, slots=True)
class GraduatedPercentage(PricedByQuantity):
    """Tiers of percentages over an amount (the sum of an amount property): each part at its rate.

    Worked example, 3 % of the first 1,000 USD, 2 % of (1,000, 10,000] plus a flat
    5 USD, 1 % above; 12,000 USD of transactions: 30 + (180 + 5) + 20 = 235 USD.

    >>> plan = GraduatedPercentage(Currency.of("USD"), [
    ...     PercentageTier(Decimal(0), Decimal(1000), Decimal(3)),
    ...     PercentageTier(Decimal(1000), Decimal(10000), Decimal(2), Money.parse("5", "USD")),
    ...     PercentageTier(Decimal(10000), None, Decimal(1)),
    ... ])
    >>> plan.price(Decimal(12000)).amount
    Money.parse('235', 'USD')
    """

    kind: ClassVar[str] = "graduated_percentage"
    quantity_label: ClassVar[str] = "an amount"
    currency: Currency
    tiers: Sequence[PercentageTier]
    _ends: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _full_lines: tuple[TierLine, ...] = field(init=False, repr=False, compare=False)
    _amount_before: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.currency, Currency):
            raise TypeError("currency must be a Currency; use Currency.of(code)")
        tiers = tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        _validate_bounds([(tier.from_amount, tier.up_to) for tier in tiers])
        _single_currency([tier.flat_fee for tier in tiers], self.currency)
        full_lines: list[TierLine] = []  # as in Graduated: full tiers are priced once
        amount_before = [0]
        for index, tier in enumerate(tiers[:-1]):
            amount = _percent_of(tier._width, tier._rate) + tier._flat
            full_lines.append(
                TierLine(
                    index,
                    tier.from_amount,
                    tier.up_to,
                    tier._width,
                    None,
                    tier.rate,
                    tier.flat_fee,
                    Money(amount, self.currency),
                )
            )
            amount_before.append(amount_before[-1] + amount)
        object.__setattr__(self, "_ends", _tier_ends(tiers))
        object.__setattr__(self, "_full_lines", tuple(full_lines))
        object.__setattr__(self, "_amount_before", tuple(amount_before))

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        currency = self.currency
        if quantity.is_zero():
            return ChargeBreakdown(self, quantity, _money(0, currency), None, ())
        index = bisect_left(self._ends, quantity)
        tier = self.tiers[index]
        part = _EXACT.subtract(quantity, tier.from_amount)
        amount = _percent_of(part, tier._rate) + tier._flat
        last = TierLine(
            index,
            tier.from_amount,
            tier.up_to,
            part,
            None,
            tier.rate,
            tier.flat_fee,
            _money(amount, currency),
        )
        total = _money(self._amount_before[index] + amount, currency)
        return ChargeBreakdown(self, quantity, total, None, (*self._full_lines[:index], last))

    def explain(self, breakdown: ChargeBreakdown) -> str:
        if not breakdown.tiers:
            return f"graduated percentage of {_text(breakdown.quantity)}: no tier entered = 0"
        parts = "; ".join(line.explanation for line in breakdown.tiers)
        return (
            f"graduated percentage of {_text(breakdown.quantity)} {self.currency.code}: "
            f"{parts}; total {breakdown.amount}"
        )


@dataclass(frozen=True, slots=True)
class BasisPoints(PricedByQuantity):
    """`basis_points` hundredths of a percent of an amount (the sum of an amount property).

    Worked example: 25 bp of 12,345.67 USD = 30.864175 USD.

    >>> BasisPoints(Currency.of("USD"), Decimal(25)).price(Decimal("12345.67")).amount
    Money.parse('30.864175', 'USD')
    """

    kind: ClassVar[str] = "basis_points"
    quantity_label: ClassVar[str] = "an amount"
    currency: Currency
    basis_points: Decimal
    _rate: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.currency, Currency):
            raise TypeError("currency must be a Currency; use Currency.of(code)")
        rate = _rate(self.basis_points, "basis points")
        object.__setattr__(self, "basis_points", rate)
        numerator, denominator = rate.as_integer_ratio()
        object.__setattr__(self, "_rate", (numerator * _PICO, denominator * _BASIS_POINTS))

    def _price(self, quantity: Decimal) -> ChargeBreakdown:
        numerator, denominator = quantity.as_integer_ratio()
        rate_numerator, rate_denominator = self._rate
        amount = _share(numerator, rate_numerator, denominator * rate_denominator)
        return ChargeBreakdown(self, quantity, _money(amount, self.currency))

    def explain(self, breakdown: ChargeBreakdown) -> str:
        return (
            f"{_text(self.basis_points)} bp of {_text(breakdown.quantity)} "
            f"{self.currency.code} = {breakdown.amount}"
        )


QuantityModel: TypeAlias = (
    FlatFee | PerUnit | Package | Graduated | Volume | GraduatedPercentage | BasisPoints
)
_QUANTITY_MODELS = (FlatFee, PerUnit, Package, Graduated, Volume, GraduatedPercentage, BasisPoints)


# -- percentage over transactions ------------------------------------------------------------

# What `Percentage._fee` says of one transaction.
_PAID, _FREE, _RAISED, _CAPPED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Percentage:
    """`rate` % of each transaction's amount plus a fixed fee per transaction, within limits.

    - The free allowance covers the first `free_transactions` transactions and the
      first `free_amount` of amount, whichever runs out first (either may be None:
      no limit of that kind; both None: nothing is free). A transaction that starts
      and ends inside the allowance costs nothing; one that crosses the end of the
      free amount pays the percentage on the part beyond it, and the fixed fee.
    - Each paying transaction's fee, `rate` % of its paid part (rounded half-up to
      the pico-unit) plus `fixed_fee`, is raised to `minimum_per_transaction` and
      capped at `maximum_per_transaction` when those are set.
    - Transactions are taken in the order given (the order they occurred).

    The amount of a period is the sum of its transactions' fees, so billing each
    transaction as it arrives (`fee_of_transaction`) adds up to the same amount.

    Worked example: 2.9 % + 0.30 USD, minimum 0.50 USD, maximum 5 USD, first 2
    transactions free; transactions 10, 20, 5, 100, 1000 USD:
    10 and 20 are free; 5 -> 0.145 + 0.30 = 0.445, raised to 0.50;
    100 -> 2.90 + 0.30 = 3.20; 1000 -> 29 + 0.30 = 29.30, capped at 5: 8.70 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> plan = Percentage(Currency.of("USD"), Decimal("2.9"), fixed_fee=usd("0.30"),
    ...     free_transactions=2, minimum_per_transaction=usd("0.50"),
    ...     maximum_per_transaction=usd("5"))
    >>> plan.price_transactions([Decimal(n) for n in (10, 20, 5, 100, 1000)]).amount
    Money.parse('8.7', 'USD')
    """

    kind: ClassVar[str] = "percentage"
    currency: Currency
    rate: Decimal
    fixed_fee: Money | None = None
    free_transactions: int | None = None
    free_amount: Money | None = None
    minimum_per_transaction: Money | None = None
    maximum_per_transaction: Money | None = None
    _rate: tuple[int, int] = field(init=False, repr=False, compare=False)
    _fixed: int = field(init=False, repr=False, compare=False)
    _minimum: int | None = field(init=False, repr=False, compare=False)
    _maximum: int | None = field(init=False, repr=False, compare=False)
    _free_amount: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.currency, Currency):
            raise TypeError("currency must be a Currency; use Currency.of(code)")
        currency = self.currency
        rate = _rate(self.rate, "a percentage rate")
        object.__setattr__(self, "rate", rate)
        numerator, denominator = rate.as_integer_ratio()
        object.__setattr__(self, "_rate", (numerator, denominator * _PERCENT))
        fixed = (
            0 if self.fixed_fee is None else _price_pico(self.fixed_fee, currency, "a fixed fee")
        )
        object.__setattr__(self, "_fixed", fixed)
        free = self.free_transactions
        if free is not None and (not isinstance(free, int) or isinstance(free, bool) or free < 0):
            raise InvalidPricing(f"free_transactions must be a non-negative int, not {free!r}")
        free_amount = (
            None
            if self.free_amount is None
            else _price_pico(self.free_amount, currency, "a free amount")
        )
        object.__setattr__(self, "_free_amount", free_amount)
        minimum = (
            None
            if self.minimum_per_transaction is None
            else _price_pico(self.minimum_per_transaction, currency, "a minimum per transaction")
        )
        maximum = (
            None
            if self.maximum_per_transaction is None
            else _price_pico(self.maximum_per_transaction, currency, "a maximum per transaction")
        )
        if minimum is not None and maximum is not None and minimum > maximum:
            raise MinimumAboveMaximum(
                f"the minimum per transaction {self.minimum_per_transaction} is above "
                f"the maximum {self.maximum_per_transaction}"
            )
        object.__setattr__(self, "_minimum", minimum)
        object.__setattr__(self, "_maximum", maximum)

    @property
    def is_monotone(self) -> bool:
        """Another transaction never lowers the amount: every fee is >= 0."""
        return True

    @property
    def supports_advance(self) -> bool:
        return True

    def _allowance_runs(self, index: int, before: int) -> bool:
        """Whether the free allowance still covers transaction `index` (from 0), after
        `before` pico-units of earlier transactions. Once over, it stays over."""
        free_count = self.free_transactions
        free_amount = self._free_amount
        if free_count is None and free_amount is None:
            return False
        return (free_count is None or index < free_count) and (
            free_amount is None or before < free_amount
        )

    def _fee(self, index: int, before: int, amount: int) -> tuple[int, int, int, int]:
        """(fee, paid part, percentage part, what happened) of transaction `index` (from 0)
        of `amount` pico-units, after `before` pico-units of earlier transactions."""
        paid = amount
        if self._allowance_runs(index, before):
            free_amount = self._free_amount
            if free_amount is None or before + amount <= free_amount:
                return 0, 0, 0, _FREE
            paid = before + amount - free_amount  # the part beyond the free amount
        rate_numerator, rate_denominator = self._rate
        whole, rest = divmod(paid * rate_numerator, rate_denominator)
        percentage = whole + 1 if 2 * rest >= rate_denominator else whole
        fee = percentage + self._fixed
        if self._minimum is not None and fee < self._minimum:
            return self._minimum, paid, percentage, _RAISED
        if self._maximum is not None and fee > self._maximum:
            return self._maximum, paid, percentage, _CAPPED
        return fee, paid, percentage, _PAID

    def fee_of_transaction(
        self, index: int, amount_before: Decimal | int, amount: Decimal | int
    ) -> Money:
        """The fee of one transaction: the `index`-th of the period (from 0), after
        `amount_before` of earlier transactions. It depends on nothing else, so it is
        final when the transaction is rated.

        >>> plan = Percentage(Currency.of("USD"), Decimal(2), free_amount=Money.parse("50", "USD"))
        >>> plan.fee_of_transaction(1, Decimal(40), Decimal(30))  # 20 above the free 50
        Money.parse('0.4', 'USD')
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidQuantity(f"a transaction index is a non-negative int, not {index!r}")
        fee, _, _, _ = self._fee(index, to_pico_units(amount_before), to_pico_units(amount))
        return Money(fee, self.currency)

    def price_transactions(self, amounts: Sequence[Decimal | int]) -> ChargeBreakdown:
        """The amount for a period's transactions, in the order they occurred."""
        return self._price_picos(transaction_picos(amounts))

    def _price_picos(
        self, amounts: Sequence[int], quantity: Decimal | None = None
    ) -> ChargeBreakdown:
        """`price_transactions` of amounts already in pico-units; `quantity`, when given, is
        their sum in major units (the caller checks it)."""
        total = paid_total = percentage_total = before = 0
        outcomes = [0, 0, 0, 0]  # how many transactions were paid, free, raised, capped
        count = len(amounts)
        index = 0
        while index < count and self._allowance_runs(index, before):
            amount = amounts[index]
            fee, paid, percentage, outcome = self._fee(index, before, amount)
            before += amount
            total += fee
            paid_total += paid
            percentage_total += percentage
            outcomes[outcome] += 1
            index += 1
        # The allowance is over for the rest: each pays its percentage and fixed fee within
        # the limits. This is `_fee` without the allowance, inlined because it runs for
        # nearly every transaction (the advance-billing tests hold the two to each other).
        rate_numerator, rate_denominator = self._rate
        fixed, low, high = self._fixed, self._minimum, self._maximum
        for amount in amounts[index:]:
            whole, rest = divmod(amount * rate_numerator, rate_denominator)
            percentage = whole + 1 if 2 * rest >= rate_denominator else whole
            fee = percentage + fixed
            if low is not None and fee < low:
                fee = low
                outcomes[_RAISED] += 1
            elif high is not None and fee > high:
                fee = high
                outcomes[_CAPPED] += 1
            total += fee
            percentage_total += percentage
            before += amount
            paid_total += amount
        free, raised, capped = outcomes[_FREE], outcomes[_RAISED], outcomes[_CAPPED]
        paying = count - free
        currency = self.currency
        detail = PercentageDetail(  # positional: keywords cost a named tuple 3 times more
            count,
            free,
            raised,
            capped,
            currency,
            before,
            paid_total,
            percentage_total,
            paying * self._fixed,
        )
        if quantity is None:
            quantity = _decimal_of_pico(before)
        return ChargeBreakdown(self, quantity, _money(total, currency), None, (), None, detail)

    def explain(self, breakdown: ChargeBreakdown) -> str:
        detail = breakdown.percentage
        assert detail is not None
        parts = [
            f"{_text(self.rate)}% of {detail.paid_amount} paid "
            f"(of {detail.total_amount} over {detail.transactions} transactions, "
            f"{detail.free_transactions} free) = {detail.percentage_fees}"
        ]
        if self.fixed_fee is not None:
            paying = detail.transactions - detail.free_transactions
            parts.append(f"fixed fee {paying} x {self.fixed_fee} = {detail.fixed_fees}")
        if detail.raised_to_minimum:
            parts.append(
                f"{detail.raised_to_minimum} raised to the minimum {self.minimum_per_transaction}"
            )
        if detail.capped_at_maximum:
            parts.append(
                f"{detail.capped_at_maximum} capped at the maximum {self.maximum_per_transaction}"
            )
        return f"percentage: {'; '.join(parts)}; total {breakdown.amount}"


# -- matrix ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matrix:
    """A price per combination of the meter's group-by dimension values, with a default.

    `cells` maps a tuple of values, one per dimension in `dimensions` order, to
    the quantity model that prices usage with those values; `default` prices any
    other combination (without one, such usage is `MatrixCellMissing`).

    Worked example: region x size; 10 units in (eu, large) at 0.50 USD = 5 USD,
    3 units in (us, small), no cell, at the default 0.10 USD = 0.30 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> plan = Matrix(("region", "size"), {("eu", "large"): PerUnit(usd("0.50"))},
    ...               default=PerUnit(usd("0.10")))
    >>> plan.price(Decimal(10), {"region": "eu", "size": "large"}).amount
    Money.parse('5', 'USD')
    >>> plan.price(Decimal(3), {"region": "us", "size": "small"}).amount
    Money.parse('0.3', 'USD')
    """

    kind: ClassVar[str] = "matrix"
    dimensions: Sequence[str]
    cells: Mapping[tuple[str, ...], QuantityModel]
    default: QuantityModel | None = None
    _currency: Currency = field(init=False, repr=False, compare=False)
    _cells: dict[tuple[str | None, ...], QuantityModel] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        dimensions = tuple(self.dimensions)
        if not dimensions or any(not isinstance(d, str) or not d for d in dimensions):
            raise InvalidMatrix("a matrix needs at least one dimension, each a non-empty name")
        if len(set(dimensions)) != len(dimensions):
            raise InvalidMatrix(f"dimensions repeat: {list(dimensions)}")
        object.__setattr__(self, "dimensions", dimensions)
        cells: dict[tuple[str | None, ...], QuantityModel] = {}
        for key, model in dict(self.cells).items():
            if (
                not isinstance(key, tuple)
                or len(key) != len(dimensions)
                or not all(isinstance(value, str) for value in key)
            ):
                raise InvalidMatrix(
                    f"cell {key!r} must be a tuple of {len(dimensions)} strings, "
                    f"one value per dimension {list(dimensions)}"
                )
            if not isinstance(model, _QUANTITY_MODELS):
                raise InvalidMatrix(f"cell {key!r} must be priced by a quantity model")
            cells[key] = model
        if self.default is not None and not isinstance(self.default, _QUANTITY_MODELS):
            raise InvalidMatrix("the default must be a quantity model")
        if not cells and self.default is None:
            raise InvalidMatrix("a matrix needs at least one cell or a default")
        object.__setattr__(self, "cells", dict(cells))
        object.__setattr__(self, "_cells", cells)
        models = self._models()
        currency = models[0].currency
        for model in models:
            if model.currency != currency:
                raise CurrencyMismatch(
                    f"a matrix mixes {currency.code} and {model.currency.code}",
                    currencies=[currency.code, model.currency.code],
                )
        object.__setattr__(self, "_currency", currency)

    @property
    def currency(self) -> Currency:
        return self._currency

    @property
    def is_monotone(self) -> bool:
        return all(model.is_monotone for model in self._models())

    @property
    def supports_advance(self) -> bool:
        return all(model.supports_advance for model in self._models())

    def _models(self) -> list[QuantityModel]:
        return [*self._cells.values(), *([self.default] if self.default is not None else [])]

    def values_of(self, group: Mapping[str, str]) -> tuple[str | None, ...]:
        """The dimension values of `group`, in `dimensions` order (None where absent)."""
        return tuple(group.get(dimension) for dimension in self.dimensions)

    def model_for(self, group: Mapping[str, str]) -> QuantityModel:
        """The model that prices usage in `group`: its cell, else the default."""
        model = self._cells.get(self.values_of(group), self.default)
        if model is None:
            raise MatrixCellMissing(f"no price for {dict(group)} and no default", group=dict(group))
        return model

    def price(self, quantity: Decimal | int, group: Mapping[str, str]) -> ChargeBreakdown:
        return self._price(to_quantity(quantity), self.values_of(group))

    def _price(self, quantity: Decimal, values: tuple[str | None, ...]) -> ChargeBreakdown:
        model = self._cells.get(values)
        is_default = model is None
        if model is None:
            model = self.default
            if model is None:
                group = dict(zip(self.dimensions, values, strict=True))
                raise MatrixCellMissing(f"no price for {group} and no default", group=group)
        inner = model._price(quantity)
        return ChargeBreakdown(
            self,
            quantity,
            inner.amount,
            inner.unit_price,
            inner.tiers,
            inner.packages,
            None,
            values,
            is_default,
        )

    def explain(self, breakdown: ChargeBreakdown) -> str:
        values = breakdown.matrix_cell or ()
        where = ", ".join(
            f"{dimension}={value}"
            for dimension, value in zip(self.dimensions, values, strict=False)
            if value is not None
        )
        model = self.default if breakdown.matrix_default else self._cells[values]
        assert model is not None
        which = "default price" if breakdown.matrix_default else "cell"
        return f"matrix {which} ({where}): {model.explain(breakdown)}"


PricingModel: TypeAlias = QuantityModel | Percentage | Matrix
