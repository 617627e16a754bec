from __future__ import annotations

import doctest
from datetime import UTC, datetime

import pytest

from billing_invoicing import numbering
from billing_invoicing.numbering import (
    InvalidInvoiceNumber,
    format_number,
    next_number,
    numbering_year,
    parse_number,
)


def test_doctests() -> None:
    assert doctest.testmod(numbering).failed == 0


class TestFormatNumber:
    def test_padded_to_six_digits(self) -> None:
        assert format_number(2026, 42) == "INV-2026-000042"
        assert format_number(2026, 1) == "INV-2026-000001"
        assert format_number(2026, 999_999) == "INV-2026-999999"

    def test_never_wraps(self) -> None:
        assert format_number(2026, 1_000_000) == "INV-2026-1000000"

    @pytest.mark.parametrize(("year", "sequence"), [(2026, 0), (2026, -1), (0, 1), (10_000, 1)])
    def test_refuses_out_of_range(self, year: int, sequence: int) -> None:
        with pytest.raises(InvalidInvoiceNumber) as raised:
            format_number(year, sequence)
        assert raised.value.code == "invalid_invoice_number"

    def test_refuses_bool(self) -> None:
        with pytest.raises(InvalidInvoiceNumber):
            format_number(2026, True)


class TestNextNumber:
    def test_first_of_the_year(self) -> None:
        assert next_number(None) == 1
        assert next_number(0) == 1

    def test_follows_without_gap(self) -> None:
        numbers = []
        last = None
        for _ in range(3):
            last = next_number(last)
            numbers.append(format_number(2026, last))
        assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]

    def test_refuses_negative(self) -> None:
        with pytest.raises(InvalidInvoiceNumber):
            next_number(-1)


class TestParseNumber:
    def test_round_trip(self) -> None:
        assert parse_number("INV-2026-000042") == (2026, 42)
        assert parse_number(format_number(2027, 1_234_567)) == (2027, 1_234_567)

    @pytest.mark.parametrize(
        "text", ["INV-2026-42", "inv-2026-000042", "INV-2026-0000042", "X", "INV-26-000042"]
    )
    def test_refuses_other_shapes(self, text: str) -> None:
        with pytest.raises(InvalidInvoiceNumber):
            parse_number(text)


class TestNumberingYear:
    def test_tenant_timezone_decides(self) -> None:
        late = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
        assert numbering_year(late) == 2026
        assert numbering_year(late, "Europe/Paris") == 2027
        assert numbering_year(datetime(2027, 1, 1, 3, tzinfo=UTC), "America/New_York") == 2026

    def test_refuses_naive(self) -> None:
        with pytest.raises(InvalidInvoiceNumber):
            numbering_year(datetime(2026, 1, 1))
