"""The consumer's handlers: each runs in the inbox transaction and posts one fact."""

from __future__ import annotations

from billing_common.consumer import InboxConsumer
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_invoicing import events as invoicing
from billing_ledger import service
from billing_ledger.books import Books


class LedgerHandlers:
    """Invoicing's facts, posted to `books` (every topic of `events.CONSUMES`)."""

    def __init__(self, books: Books) -> None:
        self.books = books

    async def invoice_finalized(
        self, conn: Connection, event: CloudEvent[invoicing.InvoiceFinalized]
    ) -> None:
        await service.post_invoice_finalized(self.books, conn, event)

    async def invoice_voided(
        self, conn: Connection, event: CloudEvent[invoicing.InvoiceVoided]
    ) -> None:
        await service.post_invoice_voided(self.books, conn, event)

    async def credit_note_issued(
        self, conn: Connection, event: CloudEvent[invoicing.CreditNoteIssued]
    ) -> None:
        await service.post_credit_note_issued(self.books, conn, event)

    def register(self, consumer: InboxConsumer) -> None:
        consumer.handle(invoicing.INVOICE_FINALIZED, self.invoice_finalized)
        consumer.handle(invoicing.INVOICE_VOIDED, self.invoice_voided)
        consumer.handle(invoicing.CREDIT_NOTE_ISSUED, self.credit_note_issued)
