"""Invoices: what a customer owes for a period, line by line. Pure: no I/O, no clock.

An invoice is computed from its *inputs* (`InvoiceInputs`): the customer's own
charges and those of the children it is billed for (`ChargeSet`: base fees,
usage, proration), the one-off lines added to the draft, the coupons and the
minimum commitment. `build_invoice` makes a draft; editing a draft
(`add_one_off_line`, `refresh_usage`) changes the inputs and recomputes every
line, so a derived line (true-up, discount, tax) is never stale.

Lines, in this order:

1. the customer's own base fees, usage lines, proration lines (credits negative);
2. the same for each child, in the order given, each line labelled by the child;
3. the minimum-commitment true-up: `max(0, minimum - billed)` where `billed` is
   the sum of the rounded base-fee, usage and proration lines above (own and
   children's), before discounts; one-off lines do not count toward a commitment;
4. the one-off lines, in the order they were added.

Money rules:

- **Rounding happens once per amount**, to the currency's minor unit, by the
  invoice's `rounding` (half-up by default, ARCHITECTURE.md section 4): each
  line's exact amount, each coupon's discount, each line's tax. Subtotal,
  discount, tax and total are sums of those rounded amounts, never rounded
  again, so the lines always add up to the totals.
- **Discounts** (`AppliedCoupon`) are billing-common's `discounts.discount_amounts`,
  the one implementation pricing's `apply_coupons` uses too (its module writes the
  order down): on the subtotal before tax; percentages first, in the order given,
  each on what the previous left; fixed amounts after, in the order given; each
  discount rounded once (a sub-cent fixed amount too) and never more than what is
  left; a subtotal of zero or less is not discounted. The coupons passed are those
  active in this period (`CouponTerms.applies_in_period` decides, see `service`).
- **Tax** is computed per line on the line's amount less its share of the
  discounts (the discount total spread over the positive lines in proportion
  to their amounts, in whole minor units, by largest remainder), through a
  `TaxAdapter`; each line's tax is rounded once.

Lifecycle (`TRANSITIONS`):

```
 draft ──finalize──► finalized ──mark_paid──► paid
   │                     │
   └───────void──────────┴──────► void
```

A draft is the only editable state; `finalize` assigns the number (see
`numbering`), and an invoice whose total is zero or less is marked paid at
once (a negative total is a credit for the customer's balance, `credit_balance`).
A paid invoice is corrected by a credit note, never voided. Anything else
raises `InvalidInvoiceTransition` (409); editing anything but a draft raises
`InvoiceNotEditable` (409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from billing_common.currency import Currency
from billing_common.discounts import CouponDiscountInvalid, check_discount, discount_amounts
from billing_common.errors import Conflict, CurrencyMismatch, ValidationFailed
from billing_common.ids import CustomerId, InvoiceId
from billing_common.money import Money, RoundingMode, sum_money
from billing_common.tax import TaxableLine, TaxAdapter, TaxRequest, TaxTreatment
from billing_invoicing.numbering import parse_number

__all__ = [
    "TRANSITIONS",
    "AppliedCoupon",
    "BaseFeeCharge",
    "ChargeSet",
    "ChildRef",
    "CouponInvalid",
    "DiscountLine",
    "FeeEffect",
    "FeeTiming",
    "InvalidInvoiceLine",
    "InvalidInvoiceTransition",
    "Invoice",
    "InvoiceAction",
    "InvoiceInputs",
    "InvoiceLine",
    "InvoiceNotEditable",
    "InvoiceStatus",
    "LineKind",
    "MinimumCommitment",
    "OneOffCharge",
    "ProrationCharge",
    "RatedLine",
    "RatedTier",
    "TaxContext",
    "TierDetail",
    "UnknownChild",
    "UsageCharge",
    "UsageDetail",
    "add_one_off_line",
    "apply_discounts",
    "build_invoice",
    "charges_from_effects",
    "finalize",
    "mark_paid",
    "refresh_usage",
    "usage_charges",
    "void",
]


# -- errors ----------------------------------------------------------------------------------


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"


class InvoiceAction(StrEnum):
    FINALIZE = "finalize"
    MARK_PAID = "mark_paid"
    VOID = "void"


_S = InvoiceStatus

#: Every allowed `(from, to)` per action; anything else is `InvalidInvoiceTransition`.
TRANSITIONS: Mapping[InvoiceAction, frozenset[tuple[InvoiceStatus, InvoiceStatus]]] = (
    MappingProxyType(
        {
            InvoiceAction.FINALIZE: frozenset({(_S.DRAFT, _S.FINALIZED), (_S.DRAFT, _S.PAID)}),
            InvoiceAction.MARK_PAID: frozenset({(_S.FINALIZED, _S.PAID)}),
            InvoiceAction.VOID: frozenset({(_S.DRAFT, _S.VOID), (_S.FINALIZED, _S.VOID)}),
        }
    )
)


class InvalidInvoiceTransition(Conflict):
    """The invoice's status does not allow what was asked."""

    code = "invalid_invoice_transition"
    title = "Invalid invoice transition"

    def __init__(
        self, action: InvoiceAction, from_status: InvoiceStatus, to_status: InvoiceStatus
    ) -> None:
        super().__init__(
            f"cannot {action.value.replace('_', ' ')} a {from_status.value} invoice "
            f"({from_status.value} -> {to_status.value})",
            action=action.value,
            from_status=from_status.value,
            to_status=to_status.value,
        )
        self.action = action
        self.from_status = from_status
        self.to_status = to_status


class InvoiceNotEditable(Conflict):
    """Only a draft can change; a finalized invoice is corrected by a credit note."""

    code = "invoice_not_editable"
    title = "The invoice is not a draft and cannot be edited"


class InvalidInvoiceLine(ValidationFailed):
    code = "invalid_invoice_line"
    title = "Invalid invoice line"


class UnknownChild(ValidationFailed):
    code = "invoice_child_unknown"
    title = "The customer is not a child consolidated on this invoice"


#: A coupon's terms are invalid (billing-common's error, code `invalid_coupon_discount`).
CouponInvalid = CouponDiscountInvalid


# -- what other services hand over (structural, so invoicing imports neither) -----------------


class _Span(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


class RatedTier(Protocol):
    """What invoicing reads of one tier of a rated line (rating's `TierLine`)."""

    @property
    def tier_index(self) -> int: ...
    @property
    def from_units(self) -> Decimal: ...
    @property
    def up_to(self) -> Decimal | None: ...
    @property
    def units(self) -> Decimal: ...
    @property
    def unit_price(self) -> Money | None: ...
    @property
    def rate(self) -> Decimal | None: ...
    @property
    def flat_fee(self) -> Money | None: ...
    @property
    def amount(self) -> Money: ...
    @property
    def explanation(self) -> str: ...


class RatedLine(Protocol):
    """What invoicing reads of a rated line item (rating's `RatedLineItem`)."""

    @property
    def charge_id(self) -> str: ...
    @property
    def meter_key(self) -> str: ...
    @property
    def group(self) -> Mapping[str, str]: ...
    @property
    def period(self) -> _Span: ...
    @property
    def timing(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def amount(self) -> Money: ...
    @property
    def unit_price(self) -> Money | None: ...
    @property
    def tiers(self) -> Sequence[RatedTier]: ...
    @property
    def explanation(self) -> str: ...


class FeeEffect(Protocol):
    """What invoicing reads of a subscription's `BillingEffect`."""

    @property
    def reason(self) -> str: ...
    @property
    def plan_id(self) -> str: ...
    @property
    def amount(self) -> Money: ...
    @property
    def service_start(self) -> datetime: ...
    @property
    def service_end(self) -> datetime: ...


# -- inputs ----------------------------------------------------------------------------------


class LineKind(StrEnum):
    BASE_FEE = "base_fee"
    USAGE = "usage"
    PRORATION = "proration"
    MINIMUM_COMMITMENT = "minimum_commitment"
    ONE_OFF = "one_off"


class FeeTiming(StrEnum):
    IN_ADVANCE = "in_advance"
    """The fee of the period that starts (the subscription bills base fees this way)."""
    ARREARS = "arrears"
    """The fee of the period that ended."""


_COMMITTED_KINDS = frozenset({LineKind.BASE_FEE, LineKind.USAGE, LineKind.PRORATION})


def _require_aware(instant: datetime, what: str) -> None:
    if not isinstance(instant, datetime) or instant.utcoffset() is None:
        raise InvalidInvoiceLine(f"{what} must be an aware datetime (UTC), not {instant!r}")


def _require_span(start: datetime, end: datetime, what: str) -> None:
    _require_aware(start, f"{what} start")
    _require_aware(end, f"{what} end")
    if start >= end:
        raise InvalidInvoiceLine(f"{what} must end after it starts: [{start}, {end})")


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A child customer whose lines a parent's invoice consolidates, and how to label them."""

    customer_id: CustomerId
    label: str

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise InvalidInvoiceLine("a child's label cannot be empty")


@dataclass(frozen=True, slots=True)
class BaseFeeCharge:
    """A plan's base fee for a service period, billed in advance or in arrears."""

    plan_id: str
    amount: Money
    service_start: datetime
    service_end: datetime
    timing: FeeTiming = FeeTiming.IN_ADVANCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "timing", FeeTiming(self.timing))
        _require_span(self.service_start, self.service_end, "a base fee's service period")
        if self.amount.is_negative():
            raise InvalidInvoiceLine(f"a base fee cannot be negative: {self.amount}")


@dataclass(frozen=True, slots=True)
class ProrationCharge:
    """A mid-period change: a charge for remaining time, or a credit (negative) for unused time."""

    plan_id: str
    reason: str
    amount: Money
    service_start: datetime
    service_end: datetime

    def __post_init__(self) -> None:
        _require_span(self.service_start, self.service_end, "a proration's service period")


@dataclass(frozen=True, slots=True)
class TierDetail:
    """One tier of a usage line, kept so the amount can be explained."""

    tier_index: int
    from_units: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_price: Money | None
    rate: Decimal | None
    flat_fee: Money | None
    amount: Money
    explanation: str


@dataclass(frozen=True, slots=True)
class UsageDetail:
    """Where a usage line's amount came from: the charge, its quantity, its tiers."""

    charge_id: str
    meter_key: str
    group: tuple[tuple[str, str], ...]
    rating_kind: str
    quantity: Decimal
    unit_price: Money | None
    tiers: tuple[TierDetail, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """A rated usage amount (exact) over its period, with how it was rated."""

    detail: UsageDetail
    amount: Money
    period_start: datetime
    period_end: datetime

    def __post_init__(self) -> None:
        _require_span(self.period_start, self.period_end, "a usage line's period")


@dataclass(frozen=True, slots=True)
class ChargeSet:
    """One customer's charges for the period: the invoice's own customer (`child` None) or a
    child billed to it."""

    base_fees: tuple[BaseFeeCharge, ...] = ()
    usage: tuple[UsageCharge, ...] = ()
    prorations: tuple[ProrationCharge, ...] = ()
    child: ChildRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_fees", tuple(self.base_fees))
        object.__setattr__(self, "usage", tuple(self.usage))
        object.__setattr__(self, "prorations", tuple(self.prorations))


@dataclass(frozen=True, slots=True)
class OneOffCharge:
    """A line added by hand to a draft: `quantity` x `unit_amount` (negative for a credit)."""

    description: str
    unit_amount: Money
    quantity: Decimal = Decimal(1)
    tax_code: str | None = None

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise InvalidInvoiceLine("a one-off line needs a description")
        raw: object = self.quantity
        if isinstance(raw, bool) or not isinstance(raw, Decimal | int):
            raise TypeError("a one-off quantity is a Decimal or an int, never a float")
        quantity = Decimal(raw)
        if not quantity.is_finite() or quantity <= 0:
            raise InvalidInvoiceLine(f"a one-off quantity must be positive, not {quantity}")
        object.__setattr__(self, "quantity", quantity)

    @property
    def amount(self) -> Money:
        """`unit_amount` x `quantity`, exact to the pico-unit (rounded when it becomes a line)."""
        return self.unit_amount.multiply(self.quantity)


@dataclass(frozen=True, slots=True)
class MinimumCommitment:
    """The least the period bills; a true-up line makes up the shortfall."""

    amount: Money
    description: str = "Minimum commitment"

    def __post_init__(self) -> None:
        if self.amount.is_negative():
            raise InvalidInvoiceLine(f"a minimum commitment cannot be negative: {self.amount}")


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    """A coupon active in the invoiced period: `percent_off` in (0, 100] or `amount_off`."""

    code: str
    percent_off: Decimal | None = None
    amount_off: Money | None = None

    def __post_init__(self) -> None:
        check_discount(self.code, self.percent_off, self.amount_off)

    @property
    def label(self) -> str:
        if self.percent_off is not None:
            return f"{self.code} ({self.percent_off.normalize():f}% off)"
        return f"{self.code} ({self.amount_off} off)"


@dataclass(frozen=True, slots=True)
class InvoiceInputs:
    """Everything an invoice is computed from; a draft's edits replace parts of it."""

    own: ChargeSet = field(default_factory=ChargeSet)
    children: tuple[ChargeSet, ...] = ()
    one_offs: tuple[OneOffCharge, ...] = ()
    coupons: tuple[AppliedCoupon, ...] = ()
    minimum_commitment: MinimumCommitment | None = None

    def __post_init__(self) -> None:
        children = tuple(self.children)
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "one_offs", tuple(self.one_offs))
        object.__setattr__(self, "coupons", tuple(self.coupons))
        if self.own.child is not None:
            raise InvalidInvoiceLine("the invoice's own charges carry no child")
        seen: set[str] = set()
        for child_set in children:
            if child_set.child is None:
                raise InvalidInvoiceLine("a child's charges must name the child")
            if child_set.child.customer_id in seen:
                raise InvalidInvoiceLine(f"child {child_set.child.customer_id} appears twice")
            seen.add(child_set.child.customer_id)


@dataclass(frozen=True, slots=True)
class TaxContext:
    """Where and who the customer is, for the tax adapter."""

    country: str
    region: str | None = None
    tax_ids: tuple[str, ...] = ()
    exempt: bool = False
    reverse_charge: bool = False


# -- converting other services' outputs ------------------------------------------------------


def usage_charges(items: Sequence[RatedLine]) -> tuple[UsageCharge, ...]:
    """Rated line items as usage charges, their tier breakdown kept.

    Lines of an `in_advance` charge are billed too, at the period's close: nothing bills
    their events one by one yet, and the period's price equals the sum of the per-event
    fees wherever the price grows with the quantity (`rating.domain`).
    """
    charges: list[UsageCharge] = []
    for item in items:
        tiers = tuple(
            TierDetail(
                tier.tier_index,
                tier.from_units,
                tier.up_to,
                tier.units,
                tier.unit_price,
                tier.rate,
                tier.flat_fee,
                tier.amount,
                tier.explanation,
            )
            for tier in item.tiers
        )
        detail = UsageDetail(
            item.charge_id,
            item.meter_key,
            tuple(sorted(item.group.items())),
            str(item.kind),
            item.quantity,
            item.unit_price,
            tiers,
            item.explanation,
        )
        charges.append(UsageCharge(detail, item.amount, item.period.start, item.period.end))
    return tuple(charges)


def charges_from_effects(
    effects: Sequence[FeeEffect], timing: FeeTiming = FeeTiming.IN_ADVANCE
) -> tuple[tuple[BaseFeeCharge, ...], tuple[ProrationCharge, ...]]:
    """A subscription's billing effects as base fees (`period_fee`) and prorations (the rest).

    `timing` says whether the base fees are billed for the period that starts
    (in advance, the subscription's rule) or the one that ended (arrears).
    """
    fees: list[BaseFeeCharge] = []
    prorations: list[ProrationCharge] = []
    for effect in effects:
        if effect.reason == "period_fee":
            fees.append(
                BaseFeeCharge(
                    effect.plan_id,
                    effect.amount,
                    effect.service_start,
                    effect.service_end,
                    timing,
                )
            )
        else:
            prorations.append(
                ProrationCharge(
                    effect.plan_id,
                    str(effect.reason),
                    effect.amount,
                    effect.service_start,
                    effect.service_end,
                )
            )
    return tuple(fees), tuple(prorations)


# -- output ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line: its exact amount, the amount rounded once, and what discount and tax it bears.

    `discount` is this line's share of the invoice's discounts (zero or positive,
    taken off); `tax` is computed on `amount - discount`. `details` explain the
    amount in words (tiers, proration span, discount).
    """

    line_id: str
    kind: LineKind
    description: str
    exact_amount: Money
    amount: Money
    quantity: Decimal | None
    period_start: datetime | None
    period_end: datetime | None
    details: tuple[str, ...]
    child: ChildRef | None = None
    usage: UsageDetail | None = None
    proration: ProrationCharge | None = None
    base_fee: BaseFeeCharge | None = None
    tax_code: str | None = None
    discount: Money | None = None
    tax: Money | None = None
    tax_rate: Decimal = Decimal(0)
    tax_treatment: TaxTreatment = TaxTreatment.NOT_COLLECTED

    @property
    def discount_amount(self) -> Money:
        return self.discount if self.discount is not None else Money.zero(self.amount.currency)

    @property
    def tax_amount(self) -> Money:
        return self.tax if self.tax is not None else Money.zero(self.amount.currency)

    @property
    def taxable_amount(self) -> Money:
        """What tax was computed on: the line less its share of the discounts."""
        return self.amount - self.discount_amount

    @property
    def total(self) -> Money:
        return self.taxable_amount + self.tax_amount


@dataclass(frozen=True, slots=True)
class DiscountLine:
    """What one coupon took off (a positive amount, shown negative), rounded once."""

    coupon_code: str
    description: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice and its lines. Build with `build_invoice`; change with the functions here."""

    invoice_id: InvoiceId
    customer_id: CustomerId
    currency: Currency
    period_start: datetime
    period_end: datetime
    status: InvoiceStatus
    inputs: InvoiceInputs
    tax_context: TaxContext
    rounding: RoundingMode
    lines: tuple[InvoiceLine, ...]
    discounts: tuple[DiscountLine, ...]
    tax_jurisdiction: str
    number: str | None = None
    finalized_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None

    @property
    def subtotal(self) -> Money:
        """The sum of the lines' rounded amounts."""
        return sum_money((line.amount for line in self.lines), self.currency)

    @property
    def discount_total(self) -> Money:
        """The sum of the discount lines (positive: taken off)."""
        return sum_money((line.amount for line in self.discounts), self.currency)

    @property
    def tax_total(self) -> Money:
        """The sum of the lines' rounded tax."""
        return sum_money((line.tax_amount for line in self.lines), self.currency)

    @property
    def total(self) -> Money:
        """`subtotal - discount_total + tax_total`: a sum of rounded amounts, never rounded."""
        return self.subtotal - self.discount_total + self.tax_total

    @property
    def amount_due(self) -> Money:
        """What the customer pays: the total, or nothing when it is a credit."""
        total = self.total
        return total if total.is_positive() else Money.zero(self.currency)

    @property
    def credit_balance(self) -> Money:
        """What a negative total leaves to the customer's credit balance (zero otherwise)."""
        total = self.total
        return -total if total.is_negative() else Money.zero(self.currency)

    def line(self, line_id: str) -> InvoiceLine | None:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        return None


# -- computing -------------------------------------------------------------------------------


def _day(instant: datetime) -> str:
    if (instant.hour, instant.minute, instant.second, instant.microsecond) == (0, 0, 0, 0):
        return instant.date().isoformat()
    return instant.isoformat(timespec="seconds")


def _span(start: datetime, end: datetime) -> str:
    return f"{_day(start)} to {_day(end)}"


def _check_currency(amount: Money, currency: Currency, what: str) -> None:
    if amount.currency != currency:
        raise CurrencyMismatch(
            f"{what} is in {amount.currency.code}, the invoice in {currency.code}",
            currencies=[currency.code, amount.currency.code],
        )


def _labelled(child: ChildRef | None, text: str) -> str:
    return f"{child.label}: {text}" if child is not None else text


@dataclass(frozen=True, slots=True)
class _Draft:
    """A line before its id, discount and tax are known."""

    kind: LineKind
    description: str
    exact: Money
    quantity: Decimal | None
    period_start: datetime | None
    period_end: datetime | None
    details: tuple[str, ...]
    child: ChildRef | None = None
    usage: UsageDetail | None = None
    proration: ProrationCharge | None = None
    base_fee: BaseFeeCharge | None = None
    tax_code: str | None = None


def _charge_set_lines(charges: ChargeSet, currency: Currency) -> list[_Draft]:
    child = charges.child
    drafts: list[_Draft] = []
    for fee in charges.base_fees:
        _check_currency(fee.amount, currency, f"the base fee of {fee.plan_id}")
        when = "in advance" if fee.timing is FeeTiming.IN_ADVANCE else "in arrears"
        span = _span(fee.service_start, fee.service_end)
        drafts.append(
            _Draft(
                LineKind.BASE_FEE,
                _labelled(child, f"Base fee, plan {fee.plan_id}"),
                fee.amount,
                Decimal(1),
                fee.service_start,
                fee.service_end,
                (f"billed {when} for {span}",),
                child=child,
                base_fee=fee,
            )
        )
    for usage in charges.usage:
        _check_currency(usage.amount, currency, f"the usage of {usage.detail.charge_id}")
        detail = usage.detail
        group = ", ".join(f"{key}={value}" for key, value in detail.group)
        name = f"Usage, {detail.charge_id}" + (f" ({group})" if group else "")
        if detail.rating_kind == "charge_minimum":
            name = f"Charge minimum, {detail.charge_id}"
        details = (
            f"{_span(usage.period_start, usage.period_end)}: {detail.explanation}",
            *(f"  {tier.explanation}" for tier in detail.tiers),
        )
        drafts.append(
            _Draft(
                LineKind.USAGE,
                _labelled(child, name),
                usage.amount,
                detail.quantity,
                usage.period_start,
                usage.period_end,
                details,
                child=child,
                usage=detail,
            )
        )
    for proration in charges.prorations:
        _check_currency(proration.amount, currency, f"the proration of {proration.plan_id}")
        credit = proration.amount.is_negative()
        what = "Unused time" if credit else "Remaining time"
        span = _span(proration.service_start, proration.service_end)
        drafts.append(
            _Draft(
                LineKind.PRORATION,
                _labelled(child, f"{what} on plan {proration.plan_id}"),
                proration.amount,
                None,
                proration.service_start,
                proration.service_end,
                (
                    f"prorated {'credit' if credit else 'charge'} ({proration.reason}) "
                    f"for {span}: {proration.amount}",
                ),
                child=child,
                proration=proration,
            )
        )
    return drafts


def apply_discounts(
    subtotal: Money, coupons: Sequence[AppliedCoupon], rounding: RoundingMode
) -> tuple[DiscountLine, ...]:
    """The coupons' discounts on `subtotal`, in billing-common's order (`discount_amounts`,
    shared with pricing's `apply_coupons`): percentages first (each on what the previous
    left), then fixed amounts, each in the order given; each rounded once to the minor
    unit and never above what is left. Worked example: 200 USD, 10 % and 15 USD: 20 then 15.

    >>> usd = lambda text: Money.parse(text, "USD")
    >>> lines = apply_discounts(usd("200"), [AppliedCoupon("WELCOME", amount_off=usd("15")),
    ...     AppliedCoupon("TEN", percent_off=Decimal(10))], RoundingMode.HALF_UP)
    >>> [(line.coupon_code, str(line.amount)) for line in lines]
    [('TEN', '20 USD'), ('WELCOME', '15 USD')]
    """
    return tuple(
        DiscountLine(coupon.code, coupon.label, amount)
        for coupon, amount in discount_amounts(subtotal, coupons, rounding)
    )


def _spread_discount(total: Money, amounts: Sequence[Money]) -> list[Money]:
    """`total` (whole minor units) over the positive `amounts`, in proportion, largest remainder.

    Each share is at most its line's amount, because `total` is at most the
    subtotal, which is at most the sum of the positive lines.
    """
    currency = total.currency
    if total.is_zero():
        return [Money.zero(currency) for _ in amounts]
    weights = [line.minor_units_amount() if line.is_positive() else 0 for line in amounts]
    return total.allocate_minor(weights)


def _compute(
    inputs: InvoiceInputs,
    currency: Currency,
    tax_context: TaxContext,
    tax: TaxAdapter,
    rounding: RoundingMode,
) -> tuple[tuple[InvoiceLine, ...], tuple[DiscountLine, ...], str]:
    drafts = _charge_set_lines(inputs.own, currency)
    for child_set in inputs.children:
        drafts.extend(_charge_set_lines(child_set, currency))
    commitment = inputs.minimum_commitment
    if commitment is not None:
        _check_currency(commitment.amount, currency, "the minimum commitment")
        billed = sum_money(
            (d.exact.round_to_minor(rounding) for d in drafts if d.kind in _COMMITTED_KINDS),
            currency,
        )
        shortfall = commitment.amount - billed
        if shortfall.is_positive():
            drafts.append(
                _Draft(
                    LineKind.MINIMUM_COMMITMENT,
                    f"{commitment.description} true-up",
                    shortfall,
                    None,
                    None,
                    None,
                    (
                        f"minimum {commitment.amount}: charges billed {billed}, "
                        f"true-up {shortfall.round_to_minor(rounding)}",
                    ),
                )
            )
    for one_off in inputs.one_offs:
        _check_currency(one_off.unit_amount, currency, f"one-off line {one_off.description!r}")
        drafts.append(
            _Draft(
                LineKind.ONE_OFF,
                one_off.description,
                one_off.amount,
                one_off.quantity,
                None,
                None,
                (f"{one_off.quantity.normalize():f} x {one_off.unit_amount}",),
                tax_code=one_off.tax_code,
            )
        )

    amounts = [draft.exact.round_to_minor(rounding) for draft in drafts]
    subtotal = sum_money(amounts, currency)
    discounts = apply_discounts(subtotal, inputs.coupons, rounding)
    discount_total = sum_money((line.amount for line in discounts), currency)
    shares = _spread_discount(discount_total, amounts)
    ids = [f"line_{index + 1}" for index in range(len(drafts))]
    request = TaxRequest(
        country=tax_context.country,
        region=tax_context.region,
        currency=currency,
        tax_ids=tax_context.tax_ids,
        exempt=tax_context.exempt,
        lines=tuple(
            TaxableLine(line_id, amount - share, draft.tax_code, tax_context.reverse_charge)
            for line_id, amount, share, draft in zip(ids, amounts, shares, drafts, strict=True)
        ),
    )
    result = tax.calculate(request)
    lines: list[InvoiceLine] = []
    for line_id, draft, amount, share, line_tax in zip(
        ids, drafts, amounts, shares, result.lines, strict=True
    ):
        assert line_tax.line_id == line_id
        details = draft.details
        if share.is_positive():
            details = (*details, f"discount {share} (share of the invoice's coupons)")
        lines.append(
            InvoiceLine(
                line_id=line_id,
                kind=draft.kind,
                description=draft.description,
                exact_amount=draft.exact,
                amount=amount,
                quantity=draft.quantity,
                period_start=draft.period_start,
                period_end=draft.period_end,
                details=details,
                child=draft.child,
                usage=draft.usage,
                proration=draft.proration,
                base_fee=draft.base_fee,
                tax_code=draft.tax_code,
                discount=share,
                tax=line_tax.tax.round_to_minor(rounding),
                tax_rate=line_tax.rate,
                tax_treatment=line_tax.treatment,
            )
        )
    return tuple(lines), discounts, result.jurisdiction


def build_invoice(
    *,
    invoice_id: InvoiceId,
    customer_id: CustomerId,
    currency: Currency,
    period_start: datetime,
    period_end: datetime,
    inputs: InvoiceInputs,
    tax_context: TaxContext,
    tax: TaxAdapter,
    rounding: RoundingMode = RoundingMode.HALF_UP,
) -> Invoice:
    """A draft invoice for `customer_id` and `[period_start, period_end)` from `inputs`."""
    _require_span(period_start, period_end, "an invoice's period")
    rounding = RoundingMode(rounding)
    lines, discounts, jurisdiction = _compute(inputs, currency, tax_context, tax, rounding)
    return Invoice(
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        status=InvoiceStatus.DRAFT,
        inputs=inputs,
        tax_context=tax_context,
        rounding=rounding,
        lines=lines,
        discounts=discounts,
        tax_jurisdiction=jurisdiction,
    )


# -- editing a draft -------------------------------------------------------------------------


def _require_draft(invoice: Invoice, what: str) -> None:
    if invoice.status is not InvoiceStatus.DRAFT:
        raise InvoiceNotEditable(
            f"cannot {what}: invoice {invoice.invoice_id} is {invoice.status.value}, "
            "only a draft can change (issue a credit note instead)",
            invoice_id=str(invoice.invoice_id),
            invoice_status=invoice.status.value,
        )


def _recompute(invoice: Invoice, inputs: InvoiceInputs, tax: TaxAdapter) -> Invoice:
    lines, discounts, jurisdiction = _compute(
        inputs, invoice.currency, invoice.tax_context, tax, invoice.rounding
    )
    return replace(
        invoice, inputs=inputs, lines=lines, discounts=discounts, tax_jurisdiction=jurisdiction
    )


def add_one_off_line(invoice: Invoice, charge: OneOffCharge, tax: TaxAdapter) -> Invoice:
    """The draft with `charge` added after the other one-off lines; everything recomputed."""
    _require_draft(invoice, "add a line")
    inputs = replace(invoice.inputs, one_offs=(*invoice.inputs.one_offs, charge))
    return _recompute(invoice, inputs, tax)


def refresh_usage(
    invoice: Invoice,
    usage: Sequence[UsageCharge],
    tax: TaxAdapter,
    child: CustomerId | None = None,
) -> Invoice:
    """The draft with the usage lines of its customer (or of `child`) replaced by `usage`.

    True-up, discounts and tax follow, since every line is recomputed.
    """
    _require_draft(invoice, "refresh usage")
    inputs = invoice.inputs
    if child is None:
        inputs = replace(inputs, own=replace(inputs.own, usage=tuple(usage)))
    else:
        found = False
        children: list[ChargeSet] = []
        for child_set in inputs.children:
            if child_set.child is not None and child_set.child.customer_id == child:
                child_set = replace(child_set, usage=tuple(usage))
                found = True
            children.append(child_set)
        if not found:
            raise UnknownChild(
                f"customer {child} is not consolidated on invoice {invoice.invoice_id}",
                customer_id=str(child),
            )
        inputs = replace(inputs, children=tuple(children))
    return _recompute(invoice, inputs, tax)


# -- lifecycle -------------------------------------------------------------------------------


def _check(invoice: Invoice, action: InvoiceAction, to: InvoiceStatus) -> None:
    if (invoice.status, to) not in TRANSITIONS[action]:
        raise InvalidInvoiceTransition(action, invoice.status, to)


def finalize(invoice: Invoice, number: str, at: datetime) -> Invoice:
    """The draft, finalized as `number` at `at`: immutable from now on.

    A total of zero or less needs no payment, so the invoice is paid at once.
    """
    _require_aware(at, "the finalize instant")
    zero_or_credit = not invoice.total.is_positive()
    to = InvoiceStatus.PAID if zero_or_credit else InvoiceStatus.FINALIZED
    _check(invoice, InvoiceAction.FINALIZE, to)
    parse_number(number)  # InvalidInvoiceNumber unless it is `format_number`'s
    return replace(
        invoice,
        status=to,
        number=number,
        finalized_at=at,
        paid_at=at if zero_or_credit else None,
    )


def mark_paid(invoice: Invoice, at: datetime) -> Invoice:
    """The finalized invoice, paid at `at`."""
    _require_aware(at, "the payment instant")
    _check(invoice, InvoiceAction.MARK_PAID, InvoiceStatus.PAID)
    return replace(invoice, status=InvoiceStatus.PAID, paid_at=at)


def void(invoice: Invoice, at: datetime) -> Invoice:
    """The draft or finalized invoice, voided at `at`: nothing is owed on it any more.

    A voided draft never got a number, so voiding it leaves no gap; a voided
    finalized invoice keeps its number.
    """
    _require_aware(at, "the void instant")
    _check(invoice, InvoiceAction.VOID, InvoiceStatus.VOID)
    return replace(invoice, status=InvoiceStatus.VOID, voided_at=at)
