"""A finalized invoice as HTML and as PDF, with every amount explained. Pure.

`render_html` gives one self-contained page (inline CSS, no scripts, no remote
resources); every text is escaped. `render_pdf` writes a PDF 1.4 by hand, no
library: a catalog, a page tree, the standard Helvetica font (WinAnsi), one
content stream per page of text lines, and a cross-reference table whose
offsets are the byte positions of each `n 0 obj`. Both show the same text,
`invoice_text`: header, each line with its explanation (tier breakdown,
proration span, discount share, tax), the discounts and the totals.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from html import escape

from billing_common.errors import Conflict
from billing_common.money import Money
from billing_invoicing.domain import Invoice, InvoiceLine, InvoiceStatus

__all__ = [
    "InvoiceNotRenderable",
    "invoice_text",
    "pdf_document",
    "render_html",
    "render_pdf",
]

#: Text lines per PDF page, and characters per line (Helvetica 9 pt on A4).
LINES_PER_PAGE = 60
CHARS_PER_LINE = 100
_PAGE_WIDTH, _PAGE_HEIGHT = 595, 842
_MARGIN = 50
_FONT_SIZE = 9
_LEADING = 12


class InvoiceNotRenderable(Conflict):
    code = "invoice_not_finalized"
    title = "Only a finalized invoice is rendered"


def _money(amount: Money) -> str:
    return f"{amount.format_minor()} {amount.currency.code}"


def _require_issued(invoice: Invoice) -> str:
    if invoice.status is InvoiceStatus.DRAFT or invoice.number is None:
        raise InvoiceNotRenderable(
            f"invoice {invoice.invoice_id} is a draft: finalize it before rendering",
            invoice_status=invoice.status.value,
        )
    return invoice.number


def _day(invoice: Invoice) -> tuple[str, str]:
    return invoice.period_start.date().isoformat(), invoice.period_end.date().isoformat()


def _line_explanation(line: InvoiceLine) -> list[str]:
    text = list(line.details)
    if line.exact_amount != line.amount:
        text.append(f"exact {line.exact_amount}, rounded once to {_money(line.amount)}")
    text.append(
        f"tax {_money(line.tax_amount)} ({line.tax_treatment.value}, rate "
        f"{line.tax_rate.normalize():f}) on {_money(line.taxable_amount)}"
    )
    return text


def _totals(invoice: Invoice) -> list[tuple[str, str]]:
    rows = [
        ("Subtotal", _money(invoice.subtotal)),
        ("Discount", _money(-invoice.discount_total)),
        (f"Tax ({invoice.tax_jurisdiction})", _money(invoice.tax_total)),
        ("Total", _money(invoice.total)),
        ("Amount due", _money(invoice.amount_due)),
    ]
    if invoice.credit_balance.is_positive():
        rows.append(("Credited to balance", _money(invoice.credit_balance)))
    return rows


def invoice_text(
    invoice: Invoice, *, seller: str = "bill.sh", customer_name: str = ""
) -> list[str]:
    """The invoice as lines of plain text, as the PDF prints them (before wrapping)."""
    number = _require_issued(invoice)
    start, end = _day(invoice)
    text = [
        f"{seller} - Invoice {number}",
        f"Status: {invoice.status.value}",
        f"Customer: {customer_name or invoice.customer_id} ({invoice.customer_id})",
        f"Period: {start} to {end}",
    ]
    if invoice.finalized_at is not None:
        text.append(f"Issued: {invoice.finalized_at.date().isoformat()}")
    text.append("")
    for line in invoice.lines:
        quantity = "" if line.quantity is None else f" x {line.quantity.normalize():f}"
        text.append(f"{line.line_id}  {line.description}{quantity}  {_money(line.amount)}")
        text.extend(f"    {part}" for part in _line_explanation(line))
    if invoice.discounts:
        text.append("")
        text.append("Discounts")
        text.extend(f"  {d.description}: -{_money(d.amount)}" for d in invoice.discounts)
    text.append("")
    text.extend(f"{label}: {value}" for label, value in _totals(invoice))
    return text


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;color:#222;margin:2em;}
table{border-collapse:collapse;width:100%;}
th,td{padding:.4em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;}
td.amount,th.amount{text-align:right;white-space:nowrap;}
ul.explain{margin:.2em 0 0 1em;padding:0;color:#555;font-size:.9em;}
.void{color:#b00;font-weight:bold;}
"""


def render_html(invoice: Invoice, *, seller: str = "bill.sh", customer_name: str = "") -> str:
    """A self-contained HTML page of the finalized (or paid, or void) invoice."""
    number = _require_issued(invoice)
    start, end = _day(invoice)
    e = escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Invoice {e(number)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(seller)}: invoice {e(number)}</h1>",
    ]
    if invoice.status is InvoiceStatus.VOID:
        out.append('<p class="void">VOID</p>')
    out.append(
        f"<p>Customer: {e(customer_name or invoice.customer_id)} ({e(invoice.customer_id)})"
        f"<br>Period: {e(start)} to {e(end)}<br>Status: {e(invoice.status.value)}</p>"
    )
    out.append(
        "<table><thead><tr><th>Line</th><th>Description</th><th>Quantity</th>"
        '<th class="amount">Amount</th><th class="amount">Discount</th>'
        '<th class="amount">Tax</th></tr></thead><tbody>'
    )
    for line in invoice.lines:
        quantity = "" if line.quantity is None else f"{line.quantity.normalize():f}"
        explain = "".join(f"<li>{e(part)}</li>" for part in _line_explanation(line))
        out.append(
            f"<tr><td>{e(line.line_id)}</td><td>{e(line.description)}"
            f'<ul class="explain">{explain}</ul></td><td>{e(quantity)}</td>'
            f'<td class="amount">{e(_money(line.amount))}</td>'
            f'<td class="amount">{e(_money(-line.discount_amount))}</td>'
            f'<td class="amount">{e(_money(line.tax_amount))}</td></tr>'
        )
    out.append("</tbody></table>")
    if invoice.discounts:
        out.append("<h2>Discounts</h2><ul>")
        out.extend(
            f"<li>{e(d.description)}: {e(_money(-d.amount))}</li>" for d in invoice.discounts
        )
        out.append("</ul>")
    out.append("<table>")
    out.extend(
        f'<tr><th>{e(label)}</th><td class="amount">{e(value)}</td></tr>'
        for label, value in _totals(invoice)
    )
    out.append("</table></body></html>")
    return "\n".join(out)


# -- PDF -------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """`text` as a PDF literal string in WinAnsi: unknown characters become `?`."""
    raw = text.encode("cp1252", errors="replace")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"(" + raw + b")"


def _wrap(lines: Sequence[str]) -> list[str]:
    wrapped: list[str] = []
    for line in lines:
        if len(line) <= CHARS_PER_LINE:
            wrapped.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
        wrapped.extend(
            textwrap.wrap(
                line,
                CHARS_PER_LINE,
                subsequent_indent=indent,
                drop_whitespace=True,
                break_long_words=True,
            )
        )
    return wrapped


def _content_stream(lines: Sequence[str], footer: str) -> bytes:
    top = _PAGE_HEIGHT - _MARGIN
    parts = [
        b"BT",
        f"/F1 {_FONT_SIZE} Tf {_LEADING} TL {_MARGIN} {top} Td".encode("ascii"),
    ]
    for line in lines:
        parts.append(_pdf_string(line) + b" Tj T*")
    parts.append(b"ET")
    parts.append(b"BT")
    parts.append(f"/F1 {_FONT_SIZE} Tf {_MARGIN} {_MARGIN // 2} Td".encode("ascii"))
    parts.append(_pdf_string(footer) + b" Tj")
    parts.append(b"ET")
    return b"\n".join(parts) + b"\n"


def pdf_document(lines: Sequence[str], *, title: str = "") -> bytes:
    """A PDF 1.4 of `lines` of text in Helvetica, `LINES_PER_PAGE` to a page.

    Object 1 is the catalog, 2 the page tree, 3 the font, 4 the document info;
    then each page and its content stream. The xref offsets are byte positions.
    """
    wrapped = _wrap(lines) or [""]
    pages = [
        wrapped[index : index + LINES_PER_PAGE] for index in range(0, len(wrapped), LINES_PER_PAGE)
    ]
    first_page = 5
    page_ids = [first_page + 2 * index for index in range(len(pages))]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            b"<< /Type /Pages /Kids ["
            + b" ".join(f"{page} 0 R".encode("ascii") for page in page_ids)
            + f"] /Count {len(pages)} >>".encode("ascii")
        ),
        3: (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"),
        4: b"<< /Title " + _pdf_string(title) + b" /Producer (bill.sh invoicing) >>",
    }
    for index, (page_id, page_lines) in enumerate(zip(page_ids, pages, strict=True)):
        content_id = page_id + 1
        stream = _content_stream(page_lines, f"Page {index + 1} of {len(pages)}")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_WIDTH} {_PAGE_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode("ascii")
        objects[content_id] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode("ascii") + stream + b"endstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number in range(1, len(objects) + 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode("ascii") + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode("ascii")
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode("ascii")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode("ascii")
    return bytes(out)


def render_pdf(invoice: Invoice, *, seller: str = "bill.sh", customer_name: str = "") -> bytes:
    """The finalized (or paid, or void) invoice as a PDF 1.4 document."""
    number = _require_issued(invoice)
    lines = invoice_text(invoice, seller=seller, customer_name=customer_name)
    if invoice.status is InvoiceStatus.VOID:
        lines.insert(1, "VOID")
    return pdf_document(lines, title=f"Invoice {number}")
