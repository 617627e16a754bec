"""Customers on a test clock: their drafts are made and finalized on the clock's time, when
the clock advances past their grace period, never by the real clock."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from datetime import datetime, timedelta

import httpx
import pytest
from faststream.kafka import KafkaBroker

from billing_common import clock_projection
from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.cycle import (
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    TestClockAdvanced,
    TestClockCustomerAttached,
)
from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent
from billing_common.ids import CustomerId, TestClockId
from billing_invoicing import projections, repository, service
from billing_invoicing.app import definition
from billing_invoicing.domain import InvoiceStatus
from billing_invoicing.events import CONSUMES, INVOICE_FINALIZED
from billing_invoicing.repository import StoredInvoice

from .conftest import (
    APRIL,
    MAY,
    NOW,
    TENANT,
    DatabaseOnlyRuntime,
    Subscription,
    apply,
    customer_created,
    outbox_events,
    parsed,
)

pytestmark = pytest.mark.service

DAY = timedelta(days=1)


def attached(
    clock_id: TestClockId, customer_id: CustomerId, frozen_time: datetime
) -> CloudEvent[TestClockCustomerAttached]:
    data = TestClockCustomerAttached(
        test_clock_id=clock_id, customer_id=customer_id, frozen_time=frozen_time, attached_at=NOW
    )
    return parsed(TEST_CLOCK_CUSTOMER_ATTACHED, data, customer_id)


def advanced(
    clock_id: TestClockId, previous: datetime, to: datetime
) -> CloudEvent[TestClockAdvanced]:
    data = TestClockAdvanced(
        test_clock_id=clock_id, previous_time=previous, frozen_time=to, advanced_at=NOW
    )
    return parsed(TEST_CLOCK_ADVANCED, data, clock_id)


class OnClock:
    """A customer attached to a test clock frozen at April 1st, subscribed since then, its
    April fee recorded; the real clock reads May 1st, 00:05."""

    def __init__(self, pool: Pool, invoicing: service.Invoicing) -> None:
        self.pool = pool
        self.invoicing = invoicing
        self.clock = TestClockId.new()
        self.customer = CustomerId.new()
        self.sub = Subscription(self.customer)
        self.time = APRIL

    async def start(self, *, grace_days: int) -> None:
        await apply(
            self.pool,
            customer_created(self.customer, grace_days=grace_days),
            self.sub.created(),
            self.sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
        )
        async with transaction(self.pool) as conn:
            await projections.test_clock_customer_attached(
                conn, attached(self.clock, self.customer, APRIL)
            )

    async def advance(self, to: datetime) -> list[StoredInvoice]:
        """Deliver the clock's advance to `to` (through the service's handler)."""
        previous, self.time = self.time, max(self.time, to)
        async with transaction(self.pool) as conn:
            return await service.clock_advanced(
                conn, self.invoicing.outbox, advanced(self.clock, previous, to)
            )

    async def bill(self) -> str:
        """April's period, rated: its draft (or invoice)."""
        async with transaction(self.pool) as conn:
            event = self.sub.rated()
            await self.invoicing.period_rated(conn, event)
            invoice_id = await repository.invoice_of_saga(conn, event.data.saga_id)
        assert invoice_id is not None
        return invoice_id

    async def invoice(self, invoice_id: str) -> StoredInvoice:
        async with self.pool.acquire() as conn:
            stored = await repository.get_invoice(conn, TENANT, invoice_id)
        assert stored is not None
        return stored


@pytest.fixture
def on_clock(invoicing_pool: Pool, invoicing: service.Invoicing) -> OnClock:
    return OnClock(invoicing_pool, invoicing)


class TestClockProjection:
    async def test_the_latest_frozen_time_is_kept_in_any_order(
        self, invoicing_pool: Pool, on_clock: OnClock
    ) -> None:
        other = CustomerId.new()
        async with transaction(invoicing_pool) as conn:
            assert await clock_projection.customer_clock_time(conn, TENANT, other) is None
        await on_clock.start(grace_days=0)
        await on_clock.advance(MAY)
        await on_clock.advance(APRIL + 3 * DAY)  # late and earlier: ignored
        async with transaction(invoicing_pool) as conn:
            await projections.test_clock_customer_attached(  # a replay: changes nothing
                conn, attached(on_clock.clock, on_clock.customer, APRIL)
            )
            await projections.test_clock_customer_attached(
                conn, attached(on_clock.clock, other, APRIL)
            )
            assert (
                await clock_projection.customer_clock_time(conn, TENANT, on_clock.customer) == MAY
            )
            assert await clock_projection.customer_clock_time(conn, TENANT, other) == MAY


class TestGracePeriodOnTheClock:
    async def test_a_draft_finalizes_when_the_clock_passes_its_grace_period(
        self, invoicing_pool: Pool, on_clock: OnClock, runtime: DatabaseOnlyRuntime
    ) -> None:
        await on_clock.start(grace_days=3)
        await on_clock.advance(MAY)  # the engine closes April
        invoice_id = await on_clock.bill()
        draft = await on_clock.invoice(invoice_id)
        assert draft.invoice.status is InvoiceStatus.DRAFT
        assert (draft.created_at, draft.finalize_after) == (MAY, MAY + 3 * DAY)
        assert service.to_public(draft).editable_until == MAY + 3 * DAY

        # the real clock never finalizes it, however late it is
        assert await service.finalize_due(runtime, now=NOW + 30 * DAY) == 0
        assert await on_clock.advance(MAY + 2 * DAY) == []
        assert (await on_clock.invoice(invoice_id)).invoice.status is InvoiceStatus.DRAFT
        assert await outbox_events(invoicing_pool, INVOICE_FINALIZED) == []

        (finalized,) = await on_clock.advance(MAY + 4 * DAY)
        assert finalized.invoice.invoice_id == invoice_id
        stored = await on_clock.invoice(invoice_id)
        assert stored.invoice.status is InvoiceStatus.FINALIZED
        assert stored.invoice.finalized_at == MAY + 3 * DAY  # when its grace ended, on the clock
        (fact,) = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert (fact["invoice_id"], fact["finalized_at"]) == (invoice_id, "2026-05-04T00:00:00Z")
        assert await on_clock.advance(MAY + 9 * DAY) == []  # finalized once

    async def test_a_clock_already_past_the_grace_period_finalizes_at_once(
        self, invoicing_pool: Pool, on_clock: OnClock
    ) -> None:
        """The advance (keyed by the clock) may arrive before the period's rating."""
        await on_clock.start(grace_days=3)
        await on_clock.advance(MAY + 4 * DAY)
        invoice_id = await on_clock.bill()
        stored = await on_clock.invoice(invoice_id)
        assert stored.invoice.status is InvoiceStatus.FINALIZED
        assert (stored.created_at, stored.invoice.finalized_at) == (MAY, MAY + 3 * DAY)
        assert len(await outbox_events(invoicing_pool, INVOICE_FINALIZED)) == 1

    async def test_no_grace_finalizes_at_the_periods_end_even_before_the_advance_arrives(
        self, on_clock: OnClock
    ) -> None:
        await on_clock.start(grace_days=0)  # the clock is known at April 1st only
        stored = await on_clock.invoice(await on_clock.bill())
        assert stored.invoice.status is InvoiceStatus.FINALIZED
        assert stored.invoice.finalized_at == MAY

    async def test_customers_on_no_clock_keep_the_real_clock(
        self, invoicing_pool: Pool, invoicing: service.Invoicing, runtime: DatabaseOnlyRuntime
    ) -> None:
        customer = CustomerId.new()
        sub = Subscription(customer)
        await apply(
            invoicing_pool,
            customer_created(customer, grace_days=3),
            sub.created(),
            sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
        )
        async with transaction(invoicing_pool) as conn:
            await invoicing.period_rated(conn, sub.rated())
        await OnClock(invoicing_pool, invoicing).advance(MAY + 9 * DAY)  # another clock
        assert await outbox_events(invoicing_pool, INVOICE_FINALIZED) == []
        assert await service.finalize_due(runtime, now=NOW + 3 * DAY) == 1


class TestCommandsOnTheClock:
    async def test_finalizing_through_the_api_happens_at_the_clocks_time(
        self, client: httpx.AsyncClient, on_clock: OnClock
    ) -> None:
        await on_clock.start(grace_days=7)
        await on_clock.advance(MAY + DAY)
        invoice_id = await on_clock.bill()
        response = await client.post(f"/v1/invoices/{invoice_id}/finalize")
        assert response.status_code == 200, response.text
        assert response.json()["finalized_at"] == "2026-05-02T00:00:00Z"


async def test_every_consumed_topic_has_a_handler(
    runtime: DatabaseOnlyRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []

    def spawn(coro: Awaitable[None], name: str) -> None:
        """The real-clock finalize loop is not run here, only noted."""
        assert inspect.iscoroutine(coro)
        coro.close()
        spawned.append(name)

    monkeypatch.setattr(runtime, "spawn", spawn)
    consumer = InboxConsumer(
        group="billing-invoicing",
        pool=runtime.pool,
        broker=KafkaBroker("127.0.0.1:1"),
        policy=ConsumerPolicy(),
    )
    runtime._consumer = consumer
    await definition.setup(runtime)
    assert consumer.topics == [topic.name for topic in CONSUMES]
    assert spawned == ["finalize-drafts"]
