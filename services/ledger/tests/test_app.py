"""The wiring: the consumer posts each fact once through the inbox; the backend choice."""

from __future__ import annotations

import asyncio

import pytest
from faststream.kafka import KafkaBroker

from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.db import Pool
from billing_common.ids import CustomerId
from billing_ledger import events
from billing_ledger.accounts import AccountKind
from billing_ledger.app import definition, process_of
from billing_ledger.books import JournaledLedger, LedgerUnreachable, open_books

from .conftest import (
    DatabaseOnlyRuntime,
    balance,
    credit_note,
    invoice_finalized,
    line,
    usd,
    voided,
)

pytestmark = pytest.mark.service


def test_the_service_declares_its_topics_and_migrations() -> None:
    assert definition.has_migrations
    assert definition.produces == ()
    assert [topic.name for topic in events.CONSUMES] == [
        "billing.invoicing.invoice_finalized",
        "billing.invoicing.invoice_voided",
        "billing.invoicing.credit_note_issued",
    ]


async def test_setup_posts_each_fact_once_through_the_inbox(ledger_pool: Pool) -> None:
    runtime = DatabaseOnlyRuntime(ledger_pool)
    consumer = InboxConsumer(
        group=definition.consumer_group,
        pool=ledger_pool,
        broker=KafkaBroker(),
        policy=ConsumerPolicy(max_attempts=1),
    )
    runtime._consumer = consumer
    await definition.setup(runtime)
    try:
        assert consumer.topics == [topic.name for topic in events.CONSUMES]
        books = process_of(runtime).current()
        assert isinstance(books, JournaledLedger)

        customer = CustomerId.new()
        invoice = invoice_finalized(customer, line("usage", "50", tax="10", line_id="u"))
        note = credit_note(invoice, "customer_balance", ("u", "20", "4"))
        for offset in (0, 1):  # each delivered twice
            for event in (invoice, note, voided(invoice)):
                await consumer.process(event.type, 0, offset, b"k", event.to_bytes())
        assert consumer.halted_reason is None
        # The void was built twice, with two event ids: the inbox lets both through, and
        # the ledger answers `exists` to the second (transfer ids come from the fact).
        assert await ledger_pool.fetchval("SELECT count(*) FROM inbox") == 4
        assert await balance(books, AccountKind.ACCOUNTS_RECEIVABLE, customer) == usd("24")
        assert await balance(books, AccountKind.CUSTOMER_CREDIT, customer) == usd("24")
        assert await balance(books, AccountKind.REVENUE) == usd("0")
    finally:
        for task in runtime._background:
            task.cancel()
        await asyncio.gather(*runtime._background, return_exceptions=True)


async def test_an_unreachable_tigerbeetle_stops_the_start(ledger_pool: Pool) -> None:
    with pytest.raises(LedgerUnreachable, match=r"TIGERBEETLE_ADDRESSES=127\.0\.0\.1:1,"):
        await open_books(ledger_pool, "127.0.0.1:1")
    assert isinstance(await open_books(ledger_pool, None), JournaledLedger)
