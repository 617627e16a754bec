from __future__ import annotations

import doctest
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common import tax as tax_module
from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch
from billing_common.money import Money
from billing_common.tax import (
    LineTax,
    NoTax,
    RateTableTax,
    TaxableLine,
    TaxAdapter,
    TaxJurisdictionUnknown,
    TaxRequest,
    TaxResult,
    TaxTreatment,
)

FAST = settings(database=None, deadline=None)

USD = Currency.of("USD")
EUR = Currency.of("EUR")

RATES = RateTableTax(
    {
        ("FR", None): Decimal("0.2"),
        ("DE", None): Decimal("0.19"),
        ("US", None): Decimal("0"),
        ("US", "CA"): Decimal("0.0725"),
        ("us", "ny"): Decimal("0.04"),
    }
)


def line(line_id: str, amount: str, currency: Currency = USD, **kwargs: Any) -> TaxableLine:
    return TaxableLine(line_id, Money.parse(amount, currency), **kwargs)


def request(
    country: str, *lines: TaxableLine, currency: Currency = USD, **kwargs: Any
) -> TaxRequest:
    return TaxRequest(country=country, currency=currency, lines=lines, **kwargs)


def taxes(result: TaxResult) -> list[str]:
    return [item.tax.to_decimal_string() for item in result.lines]


class TestTaxRequest:
    def test_normalizes_codes_and_labels_the_jurisdiction(self) -> None:
        req = TaxRequest(country="us", region="ca", currency=USD, lines=[])  # type: ignore[arg-type]
        assert (req.country, req.region, req.jurisdiction) == ("US", "CA", "US-CA")
        assert req.lines == ()
        assert request("FR", currency=EUR).jurisdiction == "FR"

    @pytest.mark.parametrize("country", ["USA", "U", "1A", "", "u$"])
    def test_rejects_a_country_that_is_not_alpha_2(self, country: str) -> None:
        with pytest.raises(ValueError, match="not an ISO 3166-1 alpha-2 country code"):
            request(country)

    @pytest.mark.parametrize("region", ["", "CALI", "C-A"])
    def test_rejects_a_bad_region(self, region: str) -> None:
        with pytest.raises(ValueError, match="not a region code"):
            request("US", region=region)

    def test_lines_must_be_in_the_request_currency(self) -> None:
        with pytest.raises(CurrencyMismatch, match="line l2 is in EUR, the request in USD"):
            request("US", line("l1", "1"), line("l2", "1", EUR))

    def test_line_ids_are_unique(self) -> None:
        with pytest.raises(ValueError, match="line id 'l1' appears twice"):
            request("US", line("l1", "1"), line("l1", "2"))

    def test_a_line_amount_is_money(self) -> None:
        with pytest.raises(TypeError, match="a line amount is Money"):
            TaxableLine("l1", Decimal("1"))  # type: ignore[arg-type]


class TestNoTax:
    def test_taxes_nothing(self) -> None:
        result = NoTax().calculate(request("FR", line("a", "100", EUR), currency=EUR))
        assert result.jurisdiction == "FR"
        assert result.rate == Decimal(0)
        assert result.currency == EUR
        assert result.lines == (
            LineTax("a", Money.zero(EUR), Decimal(0), TaxTreatment.NOT_COLLECTED),
        )
        assert result.total_tax == Money.zero(EUR)

    def test_is_a_tax_adapter(self) -> None:
        adapter: TaxAdapter = NoTax()
        assert isinstance(adapter, TaxAdapter)


class TestRateTableTax:
    def test_applies_the_country_rate_exactly(self) -> None:
        result = RATES.calculate(
            request("FR", line("a", "100", EUR), line("b", "0.01", EUR), currency=EUR)
        )
        assert result.jurisdiction == "FR"
        assert result.rate == Decimal("0.2")
        assert taxes(result) == ["20", "0.002"]
        assert [item.treatment for item in result.lines] == [TaxTreatment.TAXED] * 2
        assert [item.rate for item in result.lines] == [Decimal("0.2")] * 2
        assert result.total_tax == Money.parse("20.002", EUR)

    def test_a_region_rate_wins_over_the_country(self) -> None:
        result = RATES.calculate(request("US", line("a", "100"), region="CA"))
        assert (result.jurisdiction, result.rate, taxes(result)) == (
            "US-CA",
            Decimal("0.0725"),
            ["7.25"],
        )

    def test_table_keys_are_normalized(self) -> None:
        result = RATES.calculate(request("us", line("a", "10"), region="ny"))
        assert (result.jurisdiction, taxes(result)) == ("US-NY", ["0.4"])

    def test_a_region_without_a_rate_falls_back_to_its_country(self) -> None:
        result = RATES.calculate(request("US", line("a", "100"), region="NV"))
        assert (result.jurisdiction, result.rate, taxes(result)) == ("US", Decimal("0"), ["0"])

    def test_tax_is_not_rounded_to_cents(self) -> None:
        result = RATES.calculate(request("US", line("a", "0.01"), region="CA"))
        assert taxes(result) == ["0.000725"]

    @pytest.mark.parametrize(
        ("amount_pico", "expected_pico"),
        [(5, 1), (4, 0), (-5, -1), (-4, 0), (15, 2), (14, 1)],
    )
    def test_rounds_half_up_to_the_pico_unit(self, amount_pico: int, expected_pico: int) -> None:
        table = RateTableTax({("XX", None): Decimal("0.1")})
        req = request("XX", TaxableLine("a", Money(amount_pico, USD)))
        assert table.calculate(req).lines[0].tax == Money(expected_pico, USD)

    def test_a_credit_line_gets_negative_tax(self) -> None:
        result = RATES.calculate(request("DE", line("a", "-10.5", EUR), currency=EUR))
        assert taxes(result) == ["-1.995"]

    def test_an_exempt_customer_pays_nothing(self) -> None:
        result = RATES.calculate(
            request("FR", line("a", "100", EUR), currency=EUR, exempt=True, tax_ids=("FR123",))
        )
        assert (result.jurisdiction, result.rate, taxes(result)) == ("FR", Decimal(0), ["0"])
        assert result.lines[0].treatment is TaxTreatment.EXEMPT

    def test_an_exempt_customer_needs_no_known_jurisdiction(self) -> None:
        result = RATES.calculate(request("BR", line("a", "1"), exempt=True, region="SP"))
        assert (result.jurisdiction, taxes(result)) == ("BR-SP", ["0"])

    def test_reverse_charge_lines_pay_nothing_and_the_others_pay(self) -> None:
        result = RATES.calculate(
            request(
                "DE",
                line("a", "100", EUR, reverse_charge=True),
                line("b", "100", EUR, tax_code="txcd_10103001"),
                currency=EUR,
            )
        )
        assert taxes(result) == ["0", "19"]
        assert [(item.line_id, item.treatment, item.rate) for item in result.lines] == [
            ("a", TaxTreatment.REVERSE_CHARGE, Decimal(0)),
            ("b", TaxTreatment.TAXED, Decimal("0.19")),
        ]

    def test_an_unknown_jurisdiction_raises_by_default(self) -> None:
        with pytest.raises(
            TaxJurisdictionUnknown, match="no tax rate is configured for BR-SP"
        ) as caught:
            RATES.calculate(request("BR", line("a", "1"), region="SP"))
        problem = caught.value.to_problem()
        assert (problem["status"], problem["code"], problem["jurisdiction"]) == (
            422,
            "tax_jurisdiction_unknown",
            "BR-SP",
        )

    def test_an_unknown_jurisdiction_takes_the_default_rate_when_configured(self) -> None:
        table = RateTableTax({("FR", None): Decimal("0.2")}, default_rate=Decimal("0.1"))
        result = table.calculate(request("BR", line("a", "50"), region="SP"))
        assert (result.jurisdiction, result.rate, taxes(result)) == ("BR-SP", Decimal("0.1"), ["5"])

    def test_no_lines_no_tax(self) -> None:
        result = RATES.calculate(request("FR", currency=EUR))
        assert result.lines == ()
        assert result.total_tax == Money.zero(EUR)

    @pytest.mark.parametrize(
        ("rate", "error", "message"),
        [
            (0.2, TypeError, "a tax rate is a Decimal"),
            (Decimal("-0.1"), ValueError, "finite, non-negative"),
            (Decimal("NaN"), ValueError, "finite, non-negative"),
            (Decimal("Infinity"), ValueError, "finite, non-negative"),
        ],
    )
    def test_rejects_bad_rates(self, rate: Any, error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            RateTableTax({("FR", None): rate})
        with pytest.raises(error, match=message):
            RateTableTax({}, default_rate=rate)

    def test_is_a_tax_adapter(self) -> None:
        adapter: TaxAdapter = RATES
        assert isinstance(adapter, TaxAdapter)

    @FAST
    @given(
        st.lists(st.integers(-(10**20), 10**20), max_size=8),
        st.decimals(min_value=0, max_value=Decimal("0.3"), places=5),
        st.booleans(),
    )
    def test_each_line_is_amount_times_rate_half_up(
        self, amounts: list[int], rate: Decimal, exempt: bool
    ) -> None:
        lines = [TaxableLine(f"l{i}", Money(amount, USD)) for i, amount in enumerate(amounts)]
        table = RateTableTax({("US", None): rate})
        result = table.calculate(request("US", *lines, exempt=exempt))
        assert [item.line_id for item in result.lines] == [item.line_id for item in lines]
        for item, taxed in zip(lines, result.lines, strict=True):
            with localcontext() as context:
                context.prec = 100
                exact = Decimal(item.amount.amount) * rate
                expected = 0 if exempt else int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            assert taxed.tax == Money(expected, USD)


def test_docstring_examples() -> None:
    result = doctest.testmod(tax_module)
    assert result.attempted > 0
    assert result.failed == 0
