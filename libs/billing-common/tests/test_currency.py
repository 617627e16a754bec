from __future__ import annotations

import dataclasses
import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from billing_common import currency as currency_module
from billing_common.currency import ISO_4217_MINOR_UNITS, Currency, UnknownCurrency

FAST = settings(database=None, deadline=None)


class Priced(BaseModel):
    currency: Currency


class TestTable:
    @pytest.mark.parametrize(
        ("code", "minor_units"),
        [
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("CLP", 0),
            ("VND", 0),
            ("XOF", 0),
            ("UYI", 0),
            ("KWD", 3),
            ("BHD", 3),
            ("TND", 3),
            ("IQD", 3),
            ("OMR", 3),
            ("CLF", 4),
            ("UYW", 4),
            ("HUF", 2),
            ("MGA", 2),
            ("XCG", 2),
            ("ZWG", 2),
            ("SLE", 2),
            ("VES", 2),
            ("VED", 2),
        ],
    )
    def test_minor_units_per_the_standard(self, code: str, minor_units: int) -> None:
        assert ISO_4217_MINOR_UNITS[code] == minor_units
        assert Currency.of(code).minor_units == minor_units

    @pytest.mark.parametrize(
        "code",
        # withdrawn codes, and codes whose minor unit the standard gives as N.A.
        ["HRK", "ZWL", "SLL", "VEF", "MRO", "STD", "LTL", "EEK", "XAU", "XDR", "XTS", "XXX"],
    )
    def test_withdrawn_and_unit_less_codes_are_absent(self, code: str) -> None:
        assert code not in ISO_4217_MINOR_UNITS

    def test_the_whole_active_list(self) -> None:
        assert len(ISO_4217_MINOR_UNITS) == 167
        assert all(len(code) == 3 and code.isupper() for code in ISO_4217_MINOR_UNITS)
        assert set(ISO_4217_MINOR_UNITS.values()) == {0, 2, 3, 4}

    def test_all_is_sorted_and_complete(self) -> None:
        codes = [currency.code for currency in Currency.all()]
        assert codes == sorted(ISO_4217_MINOR_UNITS)


class TestOf:
    def test_is_case_insensitive_and_returns_one_value(self) -> None:
        assert Currency.of("usd") is Currency.of("USD") is Currency.of("uSd")
        assert Currency.of("usd") == Currency("USD", 2)

    def test_passes_a_currency_through(self) -> None:
        eur = Currency.of("EUR")
        assert Currency.of(eur) is eur

    @pytest.mark.parametrize(
        "code", ["XYZ", "US", "USDD", "", "usd ", " usd", "\uff35\uff33\uff24", "U$D"]
    )
    def test_unknown_codes_raise(self, code: str) -> None:
        with pytest.raises(UnknownCurrency, match="not an active ISO 4217 currency code"):
            Currency.of(code)

    def test_the_error_is_a_422_problem(self) -> None:
        with pytest.raises(UnknownCurrency) as caught:
            Currency.of("ABC")
        problem = caught.value.to_problem()
        assert problem["status"] == 422
        assert problem["code"] == "unknown_currency"
        assert problem["currency"] == "ABC"

    def test_a_non_string_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="currency code is a str"):
            Currency.of(840)  # type: ignore[arg-type]

    @FAST
    @given(st.sampled_from(sorted(ISO_4217_MINOR_UNITS)))
    def test_every_code_looks_up_in_any_case(self, code: str) -> None:
        found = Currency.of(code.lower())
        assert (found.code, found.minor_units) == (code, ISO_4217_MINOR_UNITS[code])

    @FAST
    @given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3))
    def test_any_other_three_letters_are_unknown(self, code: str) -> None:
        if code in ISO_4217_MINOR_UNITS:
            assert Currency.of(code).code == code
        else:
            with pytest.raises(UnknownCurrency):
                Currency.of(code)


class TestConstructor:
    def test_rejects_wrong_minor_units(self) -> None:
        with pytest.raises(ValueError, match="USD has 2 digits of minor unit, not 3"):
            Currency("USD", 3)

    def test_rejects_a_bool_for_minor_units(self) -> None:
        with pytest.raises(ValueError, match="JPY has 0 digits"):
            Currency("JPY", False)

    @pytest.mark.parametrize("code", ["usd", "US", "ZZZ"])
    def test_rejects_codes_outside_the_table(self, code: str) -> None:
        with pytest.raises(UnknownCurrency):
            Currency(code, 2)

    def test_is_frozen_and_hashable(self) -> None:
        usd = Currency.of("USD")
        with pytest.raises(dataclasses.FrozenInstanceError):
            usd.minor_units = 3  # type: ignore[misc]
        assert {usd, Currency("USD", 2)} == {usd}
        assert str(usd) == "USD"


class TestPicoPerMinorUnit:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [("USD", 10**10), ("JPY", 10**12), ("KWD", 10**9), ("CLF", 10**8)],
    )
    def test_values(self, code: str, expected: int) -> None:
        assert Currency.of(code).pico_per_minor_unit == expected


class TestPydantic:
    def test_validates_from_a_code_string(self) -> None:
        assert Priced.model_validate({"currency": "jpy"}).currency == Currency("JPY", 0)

    def test_validates_from_json(self) -> None:
        priced = Priced.model_validate_json('{"currency": "KWD"}')
        assert priced.currency is Currency.of("KWD")

    def test_accepts_an_instance(self) -> None:
        usd = Currency.of("USD")
        assert Priced(currency=usd).currency is usd

    def test_serializes_to_the_code(self) -> None:
        priced = Priced(currency=Currency.of("EUR"))
        assert priced.model_dump() == {"currency": "EUR"}
        assert priced.model_dump_json() == '{"currency":"EUR"}'

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("XYZ", "not an active ISO 4217 currency code"),
            ("usdx", "should match pattern"),
            (840, "valid string"),
            (1.0, "valid string"),
            (None, "valid string"),
        ],
    )
    def test_rejects(self, value: object, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            Priced.model_validate({"currency": value})

    def test_json_schema_is_a_code_string(self) -> None:
        schema = Priced.model_json_schema()["properties"]["currency"]
        assert schema["type"] == "string"
        assert schema["pattern"] == "^[A-Za-z]{3}$"


def test_docstring_examples() -> None:
    result = doctest.testmod(currency_module)
    assert result.attempted > 0
    assert result.failed == 0
