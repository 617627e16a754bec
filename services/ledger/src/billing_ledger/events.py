"""Topics the ledger service consumes (it produces none).

The ledger posts invoicing's facts: a finalized invoice, a voided invoice, an
issued credit note (their data models live in `billing_invoicing.events`; amounts
are wire money, pico-units as integer strings).
"""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic
from billing_invoicing.events import CREDIT_NOTE_ISSUED, INVOICE_FINALIZED, INVOICE_VOIDED

PRODUCES: tuple[Topic[Any], ...] = ()

CONSUMES: tuple[Topic[Any], ...] = (INVOICE_FINALIZED, INVOICE_VOIDED, CREDIT_NOTE_ISSUED)
