from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_common.currency import Currency
from billing_common.ids import CustomerId, InvoiceId
from billing_common.money import Money
from billing_common.tax import RateTableTax
from billing_invoicing.domain import (
    AppliedCoupon,
    ChargeSet,
    Invoice,
    InvoiceInputs,
    OneOffCharge,
    ProrationCharge,
    TaxContext,
    build_invoice,
    finalize,
    usage_charges,
    void,
)
from billing_invoicing.render import (
    LINES_PER_PAGE,
    InvoiceNotRenderable,
    invoice_text,
    pdf_document,
    render_html,
    render_pdf,
)
from billing_rating.domain import (
    Charge,
    Graduated,
    Period,
    PriceSheet,
    Tier,
    Usage,
    UsageRecord,
    rate_all,
)

USD = Currency.of("USD")
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MID = datetime(2026, 1, 16, tzinfo=UTC)
NUMBER = "INV-2026-000042"


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def draft(one_offs: tuple[OneOffCharge, ...] = ()) -> Invoice:
    """Graduated usage 1,500 units: 100 x 0.10 + 900 x 0.08 + 2 + 500 x 0.05 = 109;
    a -15.50 proration credit; 10 % off 93.50 = 9.35; tax 10 % of 84.15 = 8.42 (8.415)."""
    sheet = PriceSheet(
        USD,
        [
            Charge(
                "api",
                "api_calls",
                Graduated(
                    [
                        Tier(Decimal(0), Decimal(100), usd("0.10")),
                        Tier(Decimal(100), Decimal(1000), usd("0.08"), flat_fee=usd("2")),
                        Tier(Decimal(1000), None, usd("0.05")),
                    ]
                ),
            )
        ],
    )
    usage = usage_charges(
        rate_all(sheet, Usage([UsageRecord("api_calls", {}, Decimal(1500))]), Period(JAN, FEB))
    )
    credit = ProrationCharge("plan_basic", "unused_time", usd("-15.50"), MID, FEB)
    return build_invoice(
        invoice_id=InvoiceId.new(),
        customer_id=CustomerId.new(),
        currency=USD,
        period_start=JAN,
        period_end=FEB,
        inputs=InvoiceInputs(
            own=ChargeSet(usage=usage, prorations=(credit,)),
            one_offs=one_offs,
            coupons=(AppliedCoupon("TEN", percent_off=Decimal(10)),),
        ),
        tax_context=TaxContext("US"),
        tax=RateTableTax({("US", None): Decimal("0.1")}),
    )


def finalized(one_offs: tuple[OneOffCharge, ...] = ()) -> Invoice:
    return finalize(draft(one_offs), NUMBER, FEB)


def test_the_example_adds_up() -> None:
    invoice = finalized()
    assert (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) == (
        usd("93.50"),
        usd("9.35"),
        usd("8.42"),
        usd("92.57"),
    )


class TestHtml:
    def test_every_line_is_explained(self) -> None:
        page = render_html(finalized(), customer_name="Acme")
        assert page.startswith("<!DOCTYPE html>")
        assert "invoice INV-2026-000042" in page
        assert "tier 2 (100, 1000]: 900 x 0.08 USD + flat 2 USD = 74 USD" in page
        assert "prorated credit (unused_time) for 2026-01-16 to 2026-02-01: -15.5 USD" in page
        assert "TEN (10% off): -9.35 USD" in page
        assert "discount 9.35 USD (share of the invoice&#x27;s coupons)" in page
        assert '<th>Total</th><td class="amount">92.57 USD</td>' in page
        # the whole discount falls on the one positive line: 109 - 9.35 = 99.65, tax 9.965
        assert "tax 9.97 USD (taxed, rate 0.1) on 99.65 USD" in page
        assert "tax -1.55 USD (taxed, rate 0.1) on -15.50 USD" in page

    def test_self_contained(self) -> None:
        page = render_html(finalized())
        assert "<script" not in page
        assert not re.search(r"(src|href)=", page)

    def test_text_is_escaped(self) -> None:
        evil = OneOffCharge('<script>alert("x")</script> & co', usd("1"))
        page = render_html(finalized((evil,)), customer_name="<b>Acme</b>")
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
        assert "&lt;b&gt;Acme&lt;/b&gt;" in page

    def test_void_is_marked(self) -> None:
        assert '<p class="void">VOID</p>' in render_html(void(finalized(), FEB))

    def test_draft_is_refused(self) -> None:
        with pytest.raises(InvoiceNotRenderable) as raised:
            render_html(draft())
        assert (raised.value.status, raised.value.code) == (409, "invoice_not_finalized")
        with pytest.raises(InvoiceNotRenderable):
            render_pdf(draft())


def check_pdf(pdf: bytes) -> list[int]:
    """Check the structure; return the object offsets from the xref table."""
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.endswith(b"%%EOF\n")
    startxref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert pdf[startxref:].startswith(b"xref\n")
    header, *entries = pdf[startxref:].split(b"trailer")[0].split(b"\n")[1:-1]
    first, count = map(int, header.split())
    assert first == 0
    assert len(entries) == count
    assert entries[0] == b"0000000000 65535 f "
    offsets = []
    for number, entry in enumerate(entries[1:], start=1):
        assert len(entry) + 1 == 20
        offset = int(entry[:10])
        assert entry[10:] == b" 00000 n "
        assert pdf[offset:].startswith(f"{number} 0 obj\n".encode())
        offsets.append(offset)
    assert f"/Size {count}".encode() in pdf
    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", pdf):
        end = match.end() + int(match.group(1))
        assert pdf[end:].startswith(b"endstream")
    return offsets


class TestPdf:
    def test_structure_and_content(self) -> None:
        pdf = render_pdf(finalized(), customer_name="Acme")
        offsets = check_pdf(pdf)
        assert len(offsets) == 6  # catalog, pages, font, info, one page and its content
        assert b"/BaseFont /Helvetica" in pdf
        assert b"INV-2026-000042" in pdf
        assert b"(Total: 92.57 USD) Tj" in pdf
        assert b"/Count 1" in pdf

    def test_many_lines_make_many_pages(self) -> None:
        """40 one-offs at 1 USD more: subtotal 133.50, 10 % off = 13.35, left 120.15.

        13.35 over 109 and 40 x 1 (cents 10900 + 40 x 100 = 14900): 976.61 and 8.96
        each; floors 976 + 320 = 1296, the 39 cents left go to the largest remainders,
        39 of the 1 USD lines (earlier first): 9.76, 0.09 x 39, 0.08. Tax at 10 %:
        99.24 -> 9.92; 0.91 -> 0.09 (x 39); 0.92 -> 0.09; credit -1.55: 11.97.
        Total 120.15 + 11.97 = 132.12.
        """
        lines = tuple(OneOffCharge(f"Item {i}", usd("1")) for i in range(40))
        invoice = finalized(lines)
        text = invoice_text(invoice)
        assert len(text) > 2 * LINES_PER_PAGE
        pdf = render_pdf(invoice)
        offsets = check_pdf(pdf)
        pages = len(offsets) - 4
        assert pages % 2 == 0
        assert pages // 2 >= 3
        assert f"/Count {pages // 2}".encode() in pdf
        assert f"(Page 3 of {pages // 2}) Tj".encode() in pdf
        assert invoice.tax_total == usd("11.97")
        assert invoice.total == usd("132.12")
        assert b"(Total: 132.12 USD) Tj" in pdf

    def test_strings_are_escaped(self) -> None:
        pdf = pdf_document(["a (b) \\ c", "caf\u00e9 \u2603"], title="t")
        check_pdf(pdf)
        assert b"(a \\(b\\) \\\\ c) Tj" in pdf
        assert b"(caf\xe9 ?) Tj" in pdf

    def test_long_lines_wrap(self) -> None:
        pdf = pdf_document(["x" * 250])
        check_pdf(pdf)
        assert pdf.count(b"Tj T*") == 3

    def test_empty_document_is_valid(self) -> None:
        check_pdf(pdf_document([]))
