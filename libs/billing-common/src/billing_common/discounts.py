"""Coupons: what they take off a subtotal, and in which periods. Pure arithmetic.

One implementation for the whole platform: pricing checks and previews coupons with
it (`apply_coupons`), invoicing takes them off each period's invoice with it
(`discount_amounts`), so the two can never drift apart.

The order, and why:

1. Coupons discount the subtotal *before tax* (tax is then computed on the
   discounted amount, as Stripe does): a discount lowers the price sold, and
   tax follows the price.
2. Coupons not active in a period (`once` after the first period, `repeating`
   after its N periods) take nothing and get no line (`CouponTerms.applies_in_period`).
3. Percentage coupons first, in the order given, each on what the previous
   left: 10 % then 20 % of 100 is 100 -> 90 -> 72. Compounding makes the
   result the same in any order (up to rounding), so attaching order does not
   change what a customer pays.
4. Fixed amounts after every percentage, in the order given, so that a
   percentage never scales a fixed discount: "10 off" is worth exactly 10.
   This is also the order more favourable to the customer (100, 10 % and 10
   off: 100 -> 90 -> 80, where fixed first would give 100 -> 90 -> 81).
5. Each discount is rounded once to the currency's minor unit (`rounding`,
   half-up by default), because it becomes an invoice line and lines are
   rounded amounts; a fixed amount with sub-cent digits is rounded too. A
   discount never exceeds what is left, so the total never goes below zero.
   What a fixed coupon cannot use in a period is lost, not carried.
6. A fixed coupon in another currency than the subtotal is `CurrencyMismatch`.
   A subtotal of zero or less (a credit) is not discounted: its lines are zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Protocol, TypeVar

from billing_common.errors import CurrencyMismatch, ValidationFailed
from billing_common.money import Money, RoundingMode, divide_rounded

__all__ = [
    "CouponApplication",
    "CouponDiscountInvalid",
    "CouponDuration",
    "CouponDurationInvalid",
    "CouponTerms",
    "Discount",
    "DiscountLine",
    "InvalidCoupon",
    "apply_coupons",
    "check_discount",
    "discount_amounts",
]


class CouponDuration(StrEnum):
    ONCE = "once"
    """The first billing period only."""
    REPEATING = "repeating"
    """The first `duration_periods` billing periods."""
    FOREVER = "forever"


class InvalidCoupon(ValidationFailed):
    code = "invalid_coupon"
    title = "Invalid coupon"


class CouponDiscountInvalid(InvalidCoupon):
    code = "invalid_coupon_discount"
    title = "A coupon takes percent_off in (0, 100] or a positive amount_off, exactly one"


class CouponDurationInvalid(InvalidCoupon):
    code = "invalid_coupon_duration"
    title = "duration_periods is required by, and only by, a repeating coupon"


class Discount(Protocol):
    """What the arithmetic reads of a coupon: its code and exactly one of the two terms."""

    @property
    def code(self) -> str: ...
    @property
    def percent_off(self) -> Decimal | None: ...
    @property
    def amount_off(self) -> Money | None: ...


D = TypeVar("D", bound=Discount)


def check_discount(code: str, percent_off: Decimal | None, amount_off: Money | None) -> None:
    """Raise `CouponDiscountInvalid` unless exactly one of `percent_off` (in (0, 100]) and
    `amount_off` (positive) is given."""
    if (percent_off is None) == (amount_off is None):
        raise CouponDiscountInvalid(
            f"coupon {code!r}: give exactly one of percent_off and amount_off"
        )
    if percent_off is not None and not (
        isinstance(percent_off, Decimal) and percent_off.is_finite() and 0 < percent_off <= 100
    ):
        raise CouponDiscountInvalid(
            f"coupon {code!r}: percent_off must be above 0 and at most 100, not {percent_off}"
        )
    if amount_off is not None and not amount_off.is_positive():
        raise CouponDiscountInvalid(
            f"coupon {code!r}: amount_off must be positive, not {amount_off}"
        )


def discount_amounts(
    subtotal: Money, coupons: Sequence[D], rounding: RoundingMode = RoundingMode.HALF_UP
) -> tuple[tuple[D, Money], ...]:
    """Each coupon (all taken as active) with what it takes off `subtotal`, in the order
    applied (percentages, then fixed amounts; see the module).

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> taken = discount_amounts(usd("200"), [
    ...     CouponTerms("WELCOME", None, usd("15"), CouponDuration.ONCE),
    ...     CouponTerms("TEN", Decimal(10), None, CouponDuration.FOREVER)])
    >>> [(coupon.code, str(amount)) for coupon, amount in taken]
    [('TEN', '20 USD'), ('WELCOME', '15 USD')]
    """
    currency = subtotal.currency
    for coupon in coupons:
        if coupon.amount_off is not None and coupon.amount_off.currency != currency:
            raise CurrencyMismatch(
                f"coupon {coupon.code!r} takes off {coupon.amount_off}; the subtotal is in "
                f"{currency.code}",
                currencies=[currency.code, coupon.amount_off.currency.code],
            )
    ordered = [c for c in coupons if c.percent_off is not None] + [
        c for c in coupons if c.amount_off is not None
    ]
    unit = currency.pico_per_minor_unit
    remaining = max(subtotal.amount, 0)
    taken: list[tuple[D, Money]] = []
    for coupon in ordered:
        if coupon.percent_off is not None:
            share = Fraction(coupon.percent_off) / 100
            minor = divide_rounded(remaining * share.numerator, share.denominator * unit, rounding)
            discount = min(minor * unit, remaining)
        else:
            assert coupon.amount_off is not None
            discount = min(coupon.amount_off.round_to_minor(rounding).amount, remaining)
        remaining -= discount
        taken.append((coupon, Money(discount, currency)))
    return tuple(taken)


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """What a coupon takes off, and for how many billing periods.

    Exactly one of `percent_off` (in (0, 100]) and `amount_off` (positive);
    `duration_periods` for `repeating` coupons only.
    """

    code: str
    percent_off: Decimal | None
    amount_off: Money | None
    duration: CouponDuration
    duration_periods: int | None = None

    def __post_init__(self) -> None:
        check_discount(self.code, self.percent_off, self.amount_off)
        object.__setattr__(self, "duration", CouponDuration(self.duration))
        repeating = self.duration is CouponDuration.REPEATING
        if repeating != (self.duration_periods is not None):
            raise CouponDurationInvalid(
                f"coupon {self.code!r}: duration_periods is required by a repeating coupon "
                "and refused by the others"
            )
        if self.duration_periods is not None and self.duration_periods < 1:
            raise CouponDurationInvalid(f"coupon {self.code!r}: duration_periods must be >= 1")

    def applies_in_period(self, period_index: int) -> bool:
        """Whether it discounts the `period_index`-th billing period since it was applied
        (0 is the first).

        >>> terms = CouponTerms("X", Decimal(10), None, CouponDuration.REPEATING, 3)
        >>> [terms.applies_in_period(i) for i in range(4)]
        [True, True, True, False]
        """
        if period_index < 0:
            raise ValueError(f"a period index is >= 0, not {period_index}")
        if self.duration is CouponDuration.ONCE:
            return period_index == 0
        if self.duration is CouponDuration.REPEATING:
            assert self.duration_periods is not None  # checked at construction
            return period_index < self.duration_periods
        return True


@dataclass(frozen=True, slots=True)
class DiscountLine:
    coupon_code: str
    amount: Money


@dataclass(frozen=True, slots=True)
class CouponApplication:
    """A subtotal, the discounts taken off it in the order applied, and what is left."""

    subtotal: Money
    discounts: tuple[DiscountLine, ...]
    total: Money


def apply_coupons(
    subtotal: Money,
    coupons: Sequence[CouponTerms],
    *,
    period_index: int,
    rounding: RoundingMode = RoundingMode.HALF_UP,
) -> CouponApplication:
    """Take the coupons active in the `period_index`-th period off `subtotal` (the order is
    the module's).

    Worked example: 200 USD, coupons 10 % (forever) and 15 USD (once), first period:
    10 % of 200 = 20, then 15: total 165 USD.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> result = apply_coupons(usd("200"), [
    ...     CouponTerms("TEN", Decimal(10), None, CouponDuration.FOREVER),
    ...     CouponTerms("WELCOME", None, usd("15"), CouponDuration.ONCE),
    ... ], period_index=0)
    >>> [(line.coupon_code, str(line.amount)) for line in result.discounts], str(result.total)
    ([('TEN', '20 USD'), ('WELCOME', '15 USD')], '165 USD')
    """
    active = [coupon for coupon in coupons if coupon.applies_in_period(period_index)]
    lines = tuple(
        DiscountLine(coupon.code, amount)
        for coupon, amount in discount_amounts(subtotal, active, rounding)
    )
    taken = sum(line.amount.amount for line in lines)
    return CouponApplication(subtotal, lines, Money(subtotal.amount - taken, subtotal.currency))
