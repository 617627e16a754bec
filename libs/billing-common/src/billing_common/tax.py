"""Sales tax and VAT behind one small protocol, `TaxAdapter`.

Invoicing hands an adapter the customer's jurisdiction and the taxable lines;
the adapter answers with the tax of each line and the rate it applied. Tax is
exact to the pico-unit (half-up); rounding to cents is invoicing's job, once,
on each line. Adapters here are pure: no I/O, no clock.

>>> usd = Currency.of("USD")
>>> request = TaxRequest(
...     country="US", region="CA", currency=usd,
...     lines=(TaxableLine("l1", Money.parse("100", usd)),),
... )
>>> result = RateTableTax({("US", "CA"): Decimal("0.0725")}).calculate(request)
>>> result.jurisdiction, result.rate, str(result.lines[0].tax)
('US-CA', Decimal('0.0725'), '7.25 USD')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from billing_common.currency import Currency
from billing_common.errors import BillingError, CurrencyMismatch
from billing_common.money import Money, RoundingMode, sum_money

__all__ = [
    "LineTax",
    "NoTax",
    "RateTableTax",
    "TaxAdapter",
    "TaxJurisdictionUnknown",
    "TaxRequest",
    "TaxResult",
    "TaxTreatment",
    "TaxableLine",
]

_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")
_ZERO = Decimal(0)


class TaxJurisdictionUnknown(BillingError):
    """No tax rate is configured for the customer's country or region."""

    status = 422
    code = "tax_jurisdiction_unknown"
    title = "Unknown tax jurisdiction"


class TaxTreatment(StrEnum):
    """Why a line carries the tax it does; invoices print the reason for a zero."""

    TAXED = "taxed"
    EXEMPT = "exempt"
    """The customer is exempt (a charity, a reseller with a certificate)."""
    REVERSE_CHARGE = "reverse_charge"
    """The customer accounts for the tax itself (EU B2B across borders)."""
    NOT_COLLECTED = "not_collected"
    """The platform collects no tax at all (`NoTax`)."""


def _country_code(value: str) -> str:
    code = value.upper() if isinstance(value, str) else value
    if not isinstance(code, str) or not _COUNTRY.fullmatch(code):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _region_code(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.upper() if isinstance(value, str) else value
    if not isinstance(code, str) or not _REGION.fullmatch(code):
        raise ValueError(f"{value!r} is not a region code (the part after 'US-' in 'US-CA')")
    return code


def _label(country: str, region: str | None) -> str:
    return f"{country}-{region}" if region else country


def _rate(value: Decimal) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"a tax rate is a Decimal like Decimal('0.2'), not {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise ValueError(f"a tax rate must be a finite, non-negative Decimal, not {value}")
    return value


@dataclass(frozen=True, slots=True)
class TaxableLine:
    """One invoice line to tax: its id, its (unrounded) amount, its tax code if any.

    >>> TaxableLine("line_1", Money.parse("9.99", "EUR"), tax_code="txcd_10000000").tax_code
    'txcd_10000000'
    """

    line_id: str
    amount: Money
    tax_code: str | None = None
    reverse_charge: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Money):
            raise TypeError(f"a line amount is Money, not {type(self.amount).__name__}")


@dataclass(frozen=True, slots=True)
class TaxRequest:
    """What an adapter needs: where the customer is, who it is, and the lines, in one currency.

    `country` is ISO 3166-1 alpha-2 and `region` the subdivision (`"CA"` for
    California); both are upper-cased.

    >>> TaxRequest(country="fr", currency=Currency.of("EUR"), lines=()).country
    'FR'
    """

    country: str
    currency: Currency
    lines: tuple[TaxableLine, ...]
    region: str | None = None
    tax_ids: tuple[str, ...] = ()
    exempt: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "country", _country_code(self.country))
        object.__setattr__(self, "region", _region_code(self.region))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "tax_ids", tuple(self.tax_ids))
        seen: set[str] = set()
        for line in self.lines:
            if line.amount.currency != self.currency:
                raise CurrencyMismatch(
                    f"line {line.line_id} is in {line.amount.currency.code}, "
                    f"the request in {self.currency.code}"
                )
            if line.line_id in seen:
                raise ValueError(f"line id {line.line_id!r} appears twice")
            seen.add(line.line_id)

    @property
    def jurisdiction(self) -> str:
        """The customer's jurisdiction as a label: `"US-CA"`, or `"FR"` without a region.

        >>> request = TaxRequest(country="us", region="ny", currency=Currency.of("USD"), lines=())
        >>> request.jurisdiction
        'US-NY'
        """
        return _label(self.country, self.region)


@dataclass(frozen=True, slots=True)
class LineTax:
    """The tax on one line, the rate applied to it and why.

    >>> LineTax("l1", Money.parse("2", "EUR"), Decimal("0.2"), TaxTreatment.TAXED).rate
    Decimal('0.2')
    """

    line_id: str
    tax: Money
    rate: Decimal
    treatment: TaxTreatment


@dataclass(frozen=True, slots=True)
class TaxResult:
    """The tax of every line, in request order, with the jurisdiction and its rate.

    `rate` is the jurisdiction's rate (zero for an exempt customer or `NoTax`); a
    line taxed at zero says why in its `treatment`.

    >>> result = NoTax().calculate(TaxRequest(country="DE", currency=Currency.of("EUR"), lines=()))
    >>> result.total_tax
    Money.parse('0', 'EUR')
    """

    jurisdiction: str
    rate: Decimal
    currency: Currency
    lines: tuple[LineTax, ...] = field(default=())

    @property
    def total_tax(self) -> Money:
        """The sum of the lines' tax, unrounded.

        >>> line = LineTax("l1", Money.parse("0.5", "USD"), Decimal("0.05"), TaxTreatment.TAXED)
        >>> TaxResult("US-TX", Decimal("0.05"), Currency.of("USD"), (line, line)).total_tax
        Money.parse('1', 'USD')
        """
        return sum_money((line.tax for line in self.lines), self.currency)


@runtime_checkable
class TaxAdapter(Protocol):
    """Computes the tax of a request. Implementations are pure and deterministic."""

    def calculate(self, request: TaxRequest) -> TaxResult:
        """The tax of every line of `request`, in the request's order."""
        ...


class NoTax:
    """Collects no tax: every line is taxed at zero (`TaxTreatment.NOT_COLLECTED`).

    >>> request = TaxRequest(country="US", currency=Currency.of("USD"),
    ...                      lines=(TaxableLine("l1", Money.parse("10", "USD")),))
    >>> NoTax().calculate(request).lines[0].tax.is_zero()
    True
    """

    def calculate(self, request: TaxRequest) -> TaxResult:
        zero = Money.zero(request.currency)
        lines = tuple(
            LineTax(line.line_id, zero, _ZERO, TaxTreatment.NOT_COLLECTED) for line in request.lines
        )
        return TaxResult(request.jurisdiction, _ZERO, request.currency, lines)


class RateTableTax:
    """Rates from a table keyed by `(country, region)` or `(country, None)`.

    A region without its own rate falls back to its country's. A jurisdiction
    missing from the table takes `default_rate` when one is given and raises
    `TaxJurisdictionUnknown` otherwise. Exempt customers and reverse-charge lines
    are taxed at zero. Tax is `amount * rate`, exact, half-up to the pico-unit.

    >>> table = RateTableTax({("FR", None): Decimal("0.2")})
    >>> request = TaxRequest(country="FR", region="IDF", currency=Currency.of("EUR"),
    ...                      lines=(TaxableLine("l1", Money.parse("0.000000000005", "EUR")),))
    >>> result = table.calculate(request)
    >>> result.jurisdiction, result.lines[0].tax.amount
    ('FR', 1)
    """

    def __init__(
        self,
        rates: Mapping[tuple[str, str | None], Decimal],
        *,
        default_rate: Decimal | None = None,
    ) -> None:
        self._rates = {
            (_country_code(country), _region_code(region)): _rate(rate)
            for (country, region), rate in rates.items()
        }
        self._default_rate = None if default_rate is None else _rate(default_rate)

    def rate_for(self, country: str, region: str | None = None) -> tuple[str, Decimal]:
        """The jurisdiction label and rate for a place, falling back from region to country.

        >>> RateTableTax({("US", None): Decimal("0"), ("US", "CA"): Decimal("0.0725")}).rate_for(
        ...     "US", "NV")
        ('US', Decimal('0'))
        """
        country, region = _country_code(country), _region_code(region)
        for key in ((country, region), (country, None)):
            rate = self._rates.get(key)
            if rate is not None:
                return _label(*key), rate
        if self._default_rate is not None:
            return _label(country, region), self._default_rate
        raise TaxJurisdictionUnknown(
            f"no tax rate is configured for {_label(country, region)}",
            jurisdiction=_label(country, region),
        )

    def calculate(self, request: TaxRequest) -> TaxResult:
        """The tax of every line; see the class for the rules.

        An exempt customer needs no rate, so an unknown jurisdiction does not raise.
        """
        if request.exempt:
            zero = Money.zero(request.currency)
            lines = tuple(
                LineTax(line.line_id, zero, _ZERO, TaxTreatment.EXEMPT) for line in request.lines
            )
            return TaxResult(request.jurisdiction, _ZERO, request.currency, lines)
        jurisdiction, rate = self.rate_for(request.country, request.region)
        return TaxResult(
            jurisdiction,
            rate,
            request.currency,
            tuple(_line_tax(line, rate) for line in request.lines),
        )


def _line_tax(line: TaxableLine, rate: Decimal) -> LineTax:
    if line.reverse_charge:
        return LineTax(
            line.line_id, Money.zero(line.amount.currency), _ZERO, TaxTreatment.REVERSE_CHARGE
        )
    tax = line.amount.multiply(rate, RoundingMode.HALF_UP)
    return LineTax(line.line_id, tax, rate, TaxTreatment.TAXED)
