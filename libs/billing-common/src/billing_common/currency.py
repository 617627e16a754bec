"""ISO 4217 currencies and the number of digits of their minor unit.

A `Currency` is a code from the table below with its exponent: USD has 2
(cents), JPY 0, KWD 3, CLF 4. Only codes in the table exist; anything else is
`UnknownCurrency`. In a pydantic model a `Currency` field reads and writes the
code string.

>>> Currency.of("usd")
Currency(code='USD', minor_units=2)
>>> Currency.of("JPY").minor_units
0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from billing_common.errors import BillingError

#: Digits of the minor unit of every active ISO 4217 code (List One), fund codes
#: included (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW). Left out: the codes whose
#: minor unit the standard gives as "N.A." (metals XAU, XAG, XPD, XPT; XDR, XSU, XUA,
#: the bond units XBA-XBD; XTS and XXX), which are not money one can invoice.
#: MGA stays at 2 as the standard says, although the ariary is not divided decimally.
#: ANG (replaced by XCG on 2025-03-31) and BGN (replaced by EUR on 2026-01-01) are kept
#: so that amounts recorded before the switch still read.
ISO_4217_MINOR_UNITS: dict[str, int] = {
    code: int(digits)
    for digits, codes in (
        ("0", "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"),
        (
            "2",
            "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
            "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
            "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR "
            "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP "
            "MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
            "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB "
            "TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW "
            "ZWG",
        ),
        ("3", "BHD IQD JOD KWD LYD OMR TND"),
        ("4", "CLF UYW"),
    )
    for code in codes.split(" ")
}

#: Money counts pico-units (10^-12 of the major unit): no minor unit may be finer.
MAX_MINOR_UNITS = 12

_CODE = re.compile(r"[A-Z]{3}")


class UnknownCurrency(BillingError):
    """A currency code that is not an active ISO 4217 code."""

    status = 422
    code = "unknown_currency"
    title = "Unknown currency"


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: its alphabetic `code` and the digits of its minor unit.

    Build one with `Currency.of(code)`; the constructor accepts only a code of the
    table with its own minor units, so two `Currency` values for one code are equal.

    >>> Currency("EUR", 2) == Currency.of("eur")
    True
    """

    code: str
    minor_units: int

    _by_code: ClassVar[dict[str, Currency]]

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _CODE.fullmatch(self.code):
            raise UnknownCurrency(
                f"{self.code!r} is not a currency code: expected three upper-case letters"
            )
        expected = ISO_4217_MINOR_UNITS.get(self.code)
        if expected is None:
            raise UnknownCurrency(f"{self.code!r} is not an active ISO 4217 currency code")
        if self.minor_units != expected or type(self.minor_units) is not int:
            raise ValueError(
                f"{self.code} has {expected} digits of minor unit, not {self.minor_units!r}"
            )

    @classmethod
    def of(cls, code: str | Currency) -> Currency:
        """The currency for `code`, case-insensitive; `UnknownCurrency` if there is none.

        >>> Currency.of("kwd")
        Currency(code='KWD', minor_units=3)
        """
        if isinstance(code, Currency):
            return code
        if not isinstance(code, str):
            raise TypeError(f"a currency code is a str, not {type(code).__name__}")
        found = cls._by_code.get(code.upper()) if code.isascii() else None
        if found is None:
            raise UnknownCurrency(
                f"{code!r} is not an active ISO 4217 currency code", currency=code
            )
        return found

    @classmethod
    def all(cls) -> tuple[Currency, ...]:
        """Every known currency, sorted by code.

        >>> [c.code for c in Currency.all()][:3]
        ['AED', 'AFN', 'ALL']
        """
        return tuple(cls._by_code[code] for code in sorted(cls._by_code))

    @property
    def pico_per_minor_unit(self) -> int:
        """How many pico-units make one minor unit: 10^(12 - minor_units).

        >>> Currency.of("USD").pico_per_minor_unit
        10000000000
        """
        return int(10 ** (MAX_MINOR_UNITS - self.minor_units))

    def __str__(self) -> str:
        return self.code

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def from_code(value: str) -> Currency:
            try:
                return cls.of(value)
            except UnknownCurrency as exc:
                raise ValueError(exc.detail) from exc

        def accept_instance(
            value: Any, validate_code: core_schema.ValidatorFunctionWrapHandler
        ) -> Currency:
            if isinstance(value, Currency):
                return value
            result: Currency = validate_code(value)
            return result

        code_schema = core_schema.no_info_after_validator_function(
            from_code, core_schema.str_schema(strict=True, pattern=r"^[A-Za-z]{3}$")
        )
        return core_schema.no_info_wrap_validator_function(
            accept_instance,
            code_schema,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda currency: currency.code,
                return_schema=core_schema.str_schema(pattern=r"^[A-Z]{3}$"),
            ),
        )


Currency._by_code = {
    code: Currency(code, minor_units) for code, minor_units in ISO_4217_MINOR_UNITS.items()
}
