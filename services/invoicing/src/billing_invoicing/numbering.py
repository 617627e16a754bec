"""Invoice numbers: gapless per tenant and year, `INV-2026-000042`. Pure.

The sequence restarts at 1 each year; six digits are padded, more are printed
as they are (`INV-2026-1000000`), so numbers never wrap.

How the repository must allocate them (this module only formats and counts):

- One counter row per `(tenant_id, year)`:

  ```sql
  CREATE TABLE invoice_number_counters (
      tenant_id     STRING NOT NULL,
      year          INT4 NOT NULL,
      last_sequence INT8 NOT NULL,
      PRIMARY KEY (tenant_id, year)
  );
  ```

- In the *same* transaction that finalizes the invoice (status, number,
  outbox row), take the next sequence with one statement, which locks the row
  until commit:

  ```sql
  INSERT INTO invoice_number_counters (tenant_id, year, last_sequence)
  VALUES ($1, $2, 1)
  ON CONFLICT (tenant_id, year)
  DO UPDATE SET last_sequence = invoice_number_counters.last_sequence + 1
  RETURNING last_sequence;
  ```

  i.e. `next_number(last_sequence_of_year)`, then `format_number(year, sequence)`.
  A finalize that rolls back rolls the counter back with it, so no number is
  ever skipped; concurrent finalizes of one tenant queue on the row lock (or
  retry on a CockroachDB serialization error), so no number is given twice. A
  unique index on `(tenant_id, number)` backs this up.
- Never a SQL `SEQUENCE`, `SERIAL` or `unique_rowid()`: they are not
  transactional (a rollback burns the value) and leave gaps.
- Only finalizing takes a number: drafts have none, so deleting or voiding a
  draft leaves no gap, and a voided finalized invoice keeps its number.
- The year is the finalize instant's year in the tenant's timezone (`numbering_year`).
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from billing_common.errors import ValidationFailed

__all__ = [
    "PREFIX",
    "InvalidInvoiceNumber",
    "format_number",
    "next_number",
    "numbering_year",
    "parse_number",
]

PREFIX = "INV"
_NUMBER = re.compile(r"INV-([0-9]{4})-([0-9]{6,})")


class InvalidInvoiceNumber(ValidationFailed):
    code = "invalid_invoice_number"
    title = "Invalid invoice number"


def _check_year(year: int) -> int:
    if isinstance(year, bool) or not isinstance(year, int) or not 1 <= year <= 9999:
        raise InvalidInvoiceNumber(f"a numbering year is from 1 to 9999, not {year!r}")
    return year


def format_number(year: int, sequence: int) -> str:
    """The number of the `sequence`-th invoice finalized in `year`.

    >>> format_number(2026, 42), format_number(2026, 1_000_000)
    ('INV-2026-000042', 'INV-2026-1000000')
    """
    _check_year(year)
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise InvalidInvoiceNumber(f"an invoice sequence starts at 1, not {sequence!r}")
    return f"{PREFIX}-{year:04d}-{sequence:06d}"


def next_number(last_sequence_of_year: int | None) -> int:
    """The sequence after the last one given this year (`None` or 0: none yet, so 1).

    >>> next_number(None), next_number(0), next_number(41)
    (1, 1, 42)
    """
    if last_sequence_of_year is None:
        return 1
    if (
        isinstance(last_sequence_of_year, bool)
        or not isinstance(last_sequence_of_year, int)
        or last_sequence_of_year < 0
    ):
        raise InvalidInvoiceNumber(
            f"the last sequence of a year is 0 or more, not {last_sequence_of_year!r}"
        )
    return last_sequence_of_year + 1


def parse_number(number: str) -> tuple[int, int]:
    """The `(year, sequence)` of a number `format_number` made.

    >>> parse_number("INV-2026-000042")
    (2026, 42)
    """
    match = _NUMBER.fullmatch(number) if isinstance(number, str) else None
    if match is None:
        raise InvalidInvoiceNumber(
            f"{number!r} is not an invoice number like 'INV-2026-000042'", number=str(number)
        )
    year, sequence = int(match.group(1)), int(match.group(2))
    if format_number(year, sequence) != number:  # e.g. a seventh digit padded with zeros
        raise InvalidInvoiceNumber(f"{number!r} is not in canonical form", number=number)
    return year, sequence


def numbering_year(at: datetime, timezone: str = "UTC") -> int:
    """The year an invoice finalized at `at` is numbered in, in the tenant's timezone.

    >>> from datetime import UTC
    >>> numbering_year(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Paris")
    2027
    """
    if at.utcoffset() is None:
        raise InvalidInvoiceNumber("the finalize instant must be an aware datetime")
    return at.astimezone(ZoneInfo(timezone)).year
