"""Money: an exact integer count of pico-units (10^-12 of the major unit) and a currency.

Python's `int` is exact at any size, so sums never drift and never overflow.
Floats are refused everywhere (`TypeError`). The only rounding below a
pico-unit is `multiply` by a fractional quantity (half-up by default), and at
10^-12 of a dollar it moves nothing anyone will ever invoice. Rounding to the
currency's minor unit (`round_to_minor`) happens once, when a rated amount
becomes an invoice line (ARCHITECTURE.md section 4).

On the wire between services an amount is a JSON string of pico-units
(`MoneyWire`); on the public API it is a decimal string in major units
(`MoneyPublic`).

>>> usd = Currency.of("USD")
>>> price = Money.parse("0.0035", usd)
>>> (price * 1000).to_decimal_string()
'3.5'
>>> (price * Decimal("1234.5")).round_to_minor().format_minor()
'4.32'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from math import lcm
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import core_schema

from billing_common.currency import MAX_MINOR_UNITS, Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount

__all__ = [
    "MAX_PICO_DIGITS",
    "PICO",
    "Currency",
    "Money",
    "MoneyPublic",
    "MoneyWire",
    "PicoAmount",
    "RoundingMode",
    "divide_rounded",
    "sum_money",
]

#: Pico-units in one major unit.
PICO = 10**MAX_MINOR_UNITS

#: The most digits of pico-units an amount read or written as text may have (below
#: 10^26 major units). It fits SQL `NUMERIC(39,0)` and ClickHouse `Int128`, and stops a
#: hostile `1E+999999999` from eating memory. Arithmetic inside a process is not capped.
MAX_PICO_DIGITS = 38
_PICO_LIMIT = 10**MAX_PICO_DIGITS

_MAX_INPUT_CHARS = 64
_MAJOR_DECIMAL = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
_PICO_INTEGER = re.compile(r"-?[0-9]+")
_MAX_QUANTITY_EXPONENT = 1000

Quantity = int | Decimal | Fraction


class RoundingMode(StrEnum):
    """How to round to a coarser unit. Values read well in settings: `half_up`.

    >>> Money.parse("0.125", "USD").round_to_minor(RoundingMode.HALF_EVEN).format_minor()
    '0.12'
    """

    HALF_UP = "half_up"
    """Nearest; a tie goes away from zero (0.125 -> 0.13, -0.125 -> -0.13)."""
    HALF_EVEN = "half_even"
    """Nearest; a tie goes to the even neighbour (0.125 -> 0.12, 0.135 -> 0.14)."""
    DOWN = "down"
    """Toward zero (0.129 -> 0.12, -0.129 -> -0.12)."""
    UP = "up"
    """Away from zero (0.121 -> 0.13, -0.121 -> -0.13)."""
    CEILING = "ceiling"
    """Toward positive infinity (0.121 -> 0.13, -0.129 -> -0.12)."""
    FLOOR = "floor"
    """Toward negative infinity (0.129 -> 0.12, -0.121 -> -0.13)."""


def divide_rounded(numerator: int, denominator: int, mode: RoundingMode) -> int:
    """`numerator / denominator` rounded to an integer by `mode`, in exact integer arithmetic.

    >>> divide_rounded(5, 2, RoundingMode.HALF_UP), divide_rounded(-5, 2, RoundingMode.HALF_UP)
    (3, -3)
    >>> divide_rounded(5, 2, RoundingMode.HALF_EVEN), divide_rounded(7, 2, RoundingMode.FLOOR)
    (2, 3)
    """
    if denominator <= 0:
        raise ValueError("the denominator must be positive")
    mode = RoundingMode(mode)
    floor, remainder = divmod(numerator, denominator)
    if remainder == 0:
        return floor
    ceiling = floor + 1
    away_from_zero = ceiling if numerator > 0 else floor
    toward_zero = floor if numerator > 0 else ceiling
    if mode is RoundingMode.FLOOR:
        return floor
    if mode is RoundingMode.CEILING:
        return ceiling
    if mode is RoundingMode.DOWN:
        return toward_zero
    if mode is RoundingMode.UP:
        return away_from_zero
    twice = 2 * remainder
    if twice < denominator:
        return floor
    if twice > denominator:
        return ceiling
    if mode is RoundingMode.HALF_UP:
        return away_from_zero
    return floor if floor % 2 == 0 else ceiling  # HALF_EVEN


def _reject_non_integer(value: object, what: str) -> int:
    """`value` as an `int`; `TypeError` for floats, bools and anything else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int(value)


def _as_fraction(quantity: object, what: str) -> Fraction:
    """An exact `Fraction` from an int, a finite Decimal or a Fraction; never a float."""
    if isinstance(quantity, Fraction):
        return quantity
    if isinstance(quantity, Decimal):
        if not quantity.is_finite():
            raise InvalidAmount(f"{what} must be finite, not {quantity}")
        exponent = quantity.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        if abs(exponent) > _MAX_QUANTITY_EXPONENT and not quantity.is_zero():
            raise InvalidAmount(f"{what} {quantity} is out of range")
        return Fraction(quantity)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(
            f"{what} must be an int, Decimal or Fraction, not {type(quantity).__name__}"
        )
    return Fraction(quantity)


def _check_pico_range(pico: int) -> int:
    if abs(pico) >= _PICO_LIMIT:
        raise InvalidAmount(
            f"amount out of range: at most {MAX_PICO_DIGITS} digits of pico-units "
            f"(less than 10^{MAX_PICO_DIGITS - MAX_MINOR_UNITS} major units)"
        )
    return pico


def _format_pico(pico: int) -> str:
    """Pico-units as the canonical major-unit string: `"12.5"`, `"0"`, `"-0.000000000001"`."""
    whole, fraction = divmod(abs(pico), PICO)
    sign = "-" if pico < 0 else ""
    decimals = f"{fraction:0{MAX_MINOR_UNITS}d}".rstrip("0")
    return f"{sign}{whole}.{decimals}" if decimals else f"{sign}{whole}"


def _pico_from_decimal(value: Decimal) -> int:
    """Exact pico-units of a finite Decimal in major units; `InvalidAmount` if inexact."""
    if not value.is_finite():
        raise InvalidAmount(f"{value} is not a finite amount", amount=str(value))
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0:
        return 0
    shift = exponent + MAX_MINOR_UNITS
    if shift >= 0:
        if len(str(coefficient)) + shift > MAX_PICO_DIGITS:
            _check_pico_range(_PICO_LIMIT)  # raises, before building a huge int
        pico = coefficient * 10**shift
    else:
        # A point left of every digit (`1E-99`) cannot leave whole pico-units.
        pico, remainder = (0, 1) if -shift > len(digits) else divmod(coefficient, 10**-shift)
        if remainder:
            raise InvalidAmount(
                f"{value} has more than {MAX_MINOR_UNITS} decimals", amount=str(value)
            )
    return _check_pico_range(-pico if sign else pico)


def _pico_from_major_string(text: str) -> int:
    """Pico-units of a plain decimal string in major units: `"12.5"`, `"-0.000000000001"`."""
    if len(text) > _MAX_INPUT_CHARS:
        raise InvalidAmount(f"amount is longer than {_MAX_INPUT_CHARS} characters")
    match = _MAJOR_DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidAmount(
            f"{text!r} is not a decimal amount: expected digits with an optional sign and "
            f"up to {MAX_MINOR_UNITS} decimals after a point, like '12.5' (no exponent, "
            "no spaces, no thousands separators)",
            amount=text,
        )
    sign, whole, fraction = match.groups()
    fraction = fraction or ""
    if len(fraction) > MAX_MINOR_UNITS:
        raise InvalidAmount(
            f"{text!r} has {len(fraction)} decimals; at most {MAX_MINOR_UNITS} are allowed",
            amount=text,
        )
    pico = int(whole) * PICO + int(fraction.ljust(MAX_MINOR_UNITS, "0"))
    return _check_pico_range(-pico if sign == "-" else pico)


def _pico_from_wire_string(text: str) -> int:
    """Pico-units of the wire form: an integer string, `"12500000000000"`."""
    if len(text) > _MAX_INPUT_CHARS or _PICO_INTEGER.fullmatch(text) is None:
        raise InvalidAmount(
            f"{text[:_MAX_INPUT_CHARS]!r} is not an integer count of pico-units", amount=text
        )
    return _check_pico_range(int(text))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: `amount` pico-units (10^-12 of a major unit) of `currency`.

    >>> Money(12_500_000_000_000, Currency.of("USD")).to_decimal_string()
    '12.5'
    """

    amount: int
    currency: Currency

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _reject_non_integer(self.amount, "a money amount"))
        if not isinstance(self.currency, Currency):
            raise TypeError(
                f"currency must be a Currency, not {type(self.currency).__name__}; "
                "use Currency.of(code)"
            )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: Currency | str) -> Money:
        """Nothing, in `currency`.

        >>> Money.zero("EUR")
        Money.parse('0', 'EUR')
        """
        return cls(0, Currency.of(currency))

    @classmethod
    def of_minor(cls, units: int, currency: Currency | str) -> Money:
        """`units` minor units (cents, fils, yen) of `currency`.

        >>> Money.of_minor(1250, "USD").to_decimal_string(), Money.of_minor(5, "KWD").amount
        ('12.5', 5000000000)
        """
        currency = Currency.of(currency)
        whole_units = _reject_non_integer(units, "a count of minor units")
        return cls(whole_units * currency.pico_per_minor_unit, currency)

    @classmethod
    def parse(cls, value: str | Decimal | int, currency: Currency | str) -> Money:
        """An amount in major units from a decimal string, a `Decimal` or an `int`; exact.

        A string is digits with an optional sign and at most 12 decimals: no exponent,
        no spaces, no NaN or Infinity. Anything else is `InvalidAmount`.

        >>> Money.parse("12.5", "USD").amount
        12500000000000
        >>> Money.parse(Decimal("-0.000000000001"), "EUR").amount, Money.parse(3, "JPY").amount
        (-1, 3000000000000)
        """
        currency = Currency.of(currency)
        if isinstance(value, str):
            return cls(_pico_from_major_string(value), currency)
        if isinstance(value, Decimal):
            return cls(_pico_from_decimal(value), currency)
        whole = _reject_non_integer(value, "an amount (a str, Decimal or int)")
        return cls(_check_pico_range(whole * PICO), currency)

    @classmethod
    def from_decimal(cls, value: Decimal, currency: Currency | str) -> Money:
        """Exactly `value` major units; `InvalidAmount` if it needs more than 12 decimals.

        Trailing zeros do not count: `Decimal("1.50000000000000")` is 1.5.

        >>> Money.from_decimal(Decimal("0.1"), "USD").amount
        100000000000
        """
        if not isinstance(value, Decimal):
            raise TypeError(f"from_decimal takes a Decimal, not {type(value).__name__}")
        return cls(_pico_from_decimal(value), Currency.of(currency))

    # -- arithmetic -----------------------------------------------------------------------

    def _same_currency(self, other: Money, operation: str) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot {operation} {self.currency.code} and {other.currency.code}",
                currencies=[self.currency.code, other.currency.code],
            )

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def multiply(self, quantity: Quantity, rounding: RoundingMode = RoundingMode.HALF_UP) -> Money:
        """This amount times `quantity` (int, Decimal or Fraction), rounded to the pico-unit.

        The product is exact before the one rounding to a whole pico-unit; an `int`
        quantity never rounds. Floats are refused.

        >>> Money.parse("0.000000000001", "USD").multiply(Decimal("0.5")).amount
        1
        >>> Money.parse("0.000000000001", "USD").multiply(Fraction(1, 2), RoundingMode.DOWN).amount
        0
        """
        rounding = RoundingMode(rounding)
        if isinstance(quantity, int) and not isinstance(quantity, bool):
            return Money(self.amount * quantity, self.currency)
        exact = _as_fraction(quantity, "a quantity")
        pico = divide_rounded(self.amount * exact.numerator, exact.denominator, rounding)
        return Money(pico, self.currency)

    def __mul__(self, quantity: Quantity) -> Money:
        """`money * quantity` is `money.multiply(quantity)`: half-up to the pico-unit.

        That is the only rounding below a pico-unit anywhere, and at 10^-12 of a
        major unit it never shows in a cent.
        """
        if isinstance(quantity, float):
            raise TypeError("money is never multiplied by a float: use int, Decimal or Fraction")
        if not isinstance(quantity, int | Decimal | Fraction) or isinstance(quantity, bool):
            return NotImplemented
        return self.multiply(quantity)

    __rmul__ = __mul__

    # -- comparison -----------------------------------------------------------------------

    def _ordered(self, other: object) -> Money | None:
        if not isinstance(other, Money):
            return None
        self._same_currency(other, "compare")
        return other

    def __lt__(self, other: Money) -> bool:
        if (checked := self._ordered(other)) is None:
            return NotImplemented
        return self.amount < checked.amount

    def __le__(self, other: Money) -> bool:
        if (checked := self._ordered(other)) is None:
            return NotImplemented
        return self.amount <= checked.amount

    def __gt__(self, other: Money) -> bool:
        if (checked := self._ordered(other)) is None:
            return NotImplemented
        return self.amount > checked.amount

    def __ge__(self, other: Money) -> bool:
        if (checked := self._ordered(other)) is None:
            return NotImplemented
        return self.amount >= checked.amount

    def is_zero(self) -> bool:
        """Whether this is exactly nothing.

        >>> Money.zero("USD").is_zero(), Money.parse("0.000000000001", "USD").is_zero()
        (True, False)
        """
        return self.amount == 0

    def is_negative(self) -> bool:
        """Whether this is below zero (a credit, a refund).

        >>> Money.parse("-0.01", "USD").is_negative()
        True
        """
        return self.amount < 0

    def is_positive(self) -> bool:
        """Whether this is above zero.

        >>> Money.zero("USD").is_positive()
        False
        """
        return self.amount > 0

    # -- splitting and rounding -----------------------------------------------------------

    def allocate(self, weights: Sequence[Quantity]) -> list[Money]:
        """Split this amount over `weights` without losing or creating a pico-unit.

        Largest remainder: every share is the exact proportional share rounded
        toward zero, and the pico-units left over go one each to the shares with
        the largest remainders, the earlier position first on a tie.

        >>> [m.amount for m in Money(10, Currency.of("USD")).allocate([1, 1, 1])]
        [4, 3, 3]
        >>> [m.amount for m in Money(-10, Currency.of("USD")).allocate([1, Decimal("2")])]
        [-3, -7]
        """
        shares = _allocate_units(self.amount, weights)
        return [Money(share, self.currency) for share in shares]

    def allocate_minor(self, weights: Sequence[Quantity]) -> list[Money]:
        """Split this amount over `weights` in whole minor units (cents), losing none.

        The amount must already be a whole number of minor units (`round_to_minor`).

        >>> [m.format_minor() for m in Money.parse("100", "USD").allocate_minor([1, 1, 1])]
        ['33.34', '33.33', '33.33']
        """
        unit = self.currency.pico_per_minor_unit
        shares = _allocate_units(self.minor_units_amount(), weights)
        return [Money(share * unit, self.currency) for share in shares]

    def round_to_minor(self, mode: RoundingMode = RoundingMode.HALF_UP) -> Money:
        """This amount rounded to the currency's minor unit by `mode`.

        >>> Money.parse("12.345", "USD").round_to_minor().to_decimal_string()
        '12.35'
        >>> Money.parse("-12.345", "USD").round_to_minor(RoundingMode.FLOOR).to_decimal_string()
        '-12.35'
        >>> Money.parse("12.5", "JPY").round_to_minor(RoundingMode.HALF_EVEN).to_decimal_string()
        '12'
        """
        unit = self.currency.pico_per_minor_unit
        return Money(divide_rounded(self.amount, unit, mode) * unit, self.currency)

    # -- formatting -----------------------------------------------------------------------

    def to_decimal(self) -> Decimal:
        """The exact amount in major units.

        >>> Money.parse("12.50", "USD").to_decimal()
        Decimal('12.5')
        """
        return Decimal(self.to_decimal_string())

    def to_decimal_string(self) -> str:
        """The canonical major-unit string: no exponent, no trailing zeros.

        >>> [Money.parse(s, "USD").to_decimal_string() for s in ["12.50", "0.00", "100"]]
        ['12.5', '0', '100']
        >>> Money(-1, Currency.of("USD")).to_decimal_string()
        '-0.000000000001'
        """
        return _format_pico(self.amount)

    def format_minor(self) -> str:
        """The amount rounded half-up to the minor unit, with exactly that many decimals.

        >>> Money.parse("12.5", "USD").format_minor(), Money.parse("12.5", "JPY").format_minor()
        ('12.50', '13')
        >>> Money.parse("-0.0004", "KWD").format_minor()
        '0.000'
        """
        currency = self.currency
        units = divide_rounded(self.amount, currency.pico_per_minor_unit, RoundingMode.HALF_UP)
        sign = "-" if units < 0 else ""
        if currency.minor_units == 0:
            return f"{sign}{abs(units)}"
        whole, fraction = divmod(abs(units), 10**currency.minor_units)
        return f"{sign}{whole}.{fraction:0{currency.minor_units}d}"

    def minor_units_amount(self) -> int:
        """The amount as a count of minor units; `InvalidAmount` if it is not a whole count.

        >>> Money.parse("12.5", "USD").minor_units_amount()
        1250
        """
        units, remainder = divmod(self.amount, self.currency.pico_per_minor_unit)
        if remainder:
            raise InvalidAmount(
                f"{self.to_decimal_string()} {self.currency.code} is not a whole number of "
                f"minor units; round_to_minor() it first",
                amount=self.to_decimal_string(),
            )
        return units

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency.code}"

    def __repr__(self) -> str:
        return f"Money.parse({self.to_decimal_string()!r}, {self.currency.code!r})"

    # -- wire forms -----------------------------------------------------------------------

    def to_wire(self) -> MoneyWire:
        """The form services exchange: pico-units as a string (`InvalidAmount` past 38 digits).

        >>> Money.parse("12.5", "USD").to_wire().model_dump()
        {'amount': '12500000000000', 'currency': 'USD'}
        """
        return MoneyWire(amount=_check_pico_range(self.amount), currency=self.currency)

    def to_public(self) -> MoneyPublic:
        """The form of the public API: major units as a decimal string.

        >>> Money.parse("12.50", "USD").to_public().model_dump()
        {'amount': '12.5', 'currency': 'USD'}
        """
        return MoneyPublic(amount=self.to_decimal_string(), currency=self.currency)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        wire_schema = handler.generate_schema(MoneyWire)

        def accept_instance(
            value: Any, validate_wire: core_schema.ValidatorFunctionWrapHandler
        ) -> Money:
            if isinstance(value, Money):
                return value
            wire: MoneyWire = validate_wire(value)
            return wire.to_money()

        return core_schema.no_info_wrap_validator_function(
            accept_instance,
            wire_schema,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda money: money.to_wire(), return_schema=wire_schema
            ),
        )


def sum_money(items: Iterable[Money], currency: Currency | str) -> Money:
    """The total of `items`, all in `currency`; zero when there are none.

    >>> sum_money([], "USD")
    Money.parse('0', 'USD')
    >>> sum_money([Money.parse("1.25", "USD"), Money.parse("2", "USD")], "USD")
    Money.parse('3.25', 'USD')
    """
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def _allocate_units(total: int, weights: Sequence[Quantity]) -> list[int]:
    """Split the integer `total` over `weights` by largest remainder (ties: earlier first)."""
    if isinstance(weights, str | bytes) or not weights:
        raise ValueError("allocate needs at least one weight")
    fractions = [_as_fraction(weight, "a weight") for weight in weights]
    if any(weight < 0 for weight in fractions):
        raise ValueError("weights must not be negative")
    denominator = lcm(*(weight.denominator for weight in fractions))
    integer_weights = [
        weight.numerator * (denominator // weight.denominator) for weight in fractions
    ]
    weight_sum = sum(integer_weights)
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    magnitude = abs(total)
    shares: list[int] = []
    remainders: list[int] = []
    for weight in integer_weights:
        share, remainder = divmod(magnitude * weight, weight_sum)
        shares.append(share)
        remainders.append(remainder)
    left_over = magnitude - sum(shares)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:left_over]:
        shares[i] += 1
    return [-share for share in shares] if total < 0 else shares


def _validate_pico_amount(value: Any) -> int:
    if isinstance(value, str):
        try:
            return _pico_from_wire_string(value)
        except InvalidAmount as exc:
            raise ValueError(exc.detail) from exc
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _check_pico_range(int(value))
        except InvalidAmount as exc:
            raise ValueError(exc.detail) from exc
    raise ValueError(
        f"an amount of pico-units is an integer string like '12500000000000', "
        f"not {type(value).__name__}"
    )


def _validate_major_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"an amount is a decimal string in major units like '12.5', not {type(value).__name__}"
        )
    try:
        pico = _pico_from_major_string(value)
    except InvalidAmount as exc:
        raise ValueError(exc.detail) from exc
    return _format_pico(pico)


#: An `int` of pico-units that travels as a decimal string: `12500000000000` <-> `"12500000000000"`.
#: Validates from such a string or an int, never a float or a bool.
PicoAmount = Annotated[
    int,
    PlainValidator(_validate_pico_amount),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?[0-9]{1,38}$",
            "description": "an amount in pico-units (10^-12 of the major unit), as a string",
            "examples": ["12500000000000"],
        }
    ),
]


class MoneyWire(BaseModel):
    """Money between services: `{"amount": "12500000000000", "currency": "USD"}` is 12.5 USD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: PicoAmount
    currency: Currency

    def to_money(self) -> Money:
        """The `Money` this carries.

        >>> MoneyWire.model_validate({"amount": "12500000000000", "currency": "USD"}).to_money()
        Money.parse('12.5', 'USD')
        """
        return Money(self.amount, self.currency)


class MoneyPublic(BaseModel):
    """Money on the public API: `{"amount": "12.5", "currency": "USD"}`, in major units.

    The amount is kept in its canonical form: `"12.50"` reads as `"12.5"`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Annotated[
        str,
        PlainValidator(_validate_major_string),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^[+-]?[0-9]+(\.[0-9]{1,12})?$",
                "description": "an amount in major units, up to 12 decimals",
                "examples": ["12.5"],
            }
        ),
    ]
    currency: Currency

    def to_money(self) -> Money:
        """The `Money` this describes.

        >>> MoneyPublic.model_validate({"amount": "12.50", "currency": "usd"}).to_money()
        Money.parse('12.5', 'USD')
        """
        return Money.parse(self.amount, self.currency)

    @classmethod
    def from_money(cls, money: Money) -> MoneyPublic:
        """The public form of `money`.

        >>> MoneyPublic.from_money(Money.of_minor(1999, "USD")).amount
        '19.99'
        """
        return money.to_public()
