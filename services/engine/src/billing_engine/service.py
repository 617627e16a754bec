"""Engine use cases: each runs in the transaction its caller opened (an API request, a
consumed event, or one step of the billing clock's loop, see `clock`).

`now` is always the real time (the runtime's clock); a test clock's time is data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from billing_common.currency import Currency
from billing_common.cycle import PERIOD_CLOSING, PeriodClosing
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.ids import CustomerId, TestClockId
from billing_common.outbox import OutboxWriter
from billing_customers.events import CustomerCreated
from billing_engine import domain, repository
from billing_engine.domain import (
    BillingRunNotFound,
    CustomerAlreadyOnTestClock,
    CustomerHasSubscriptions,
    DueWork,
    RetryPolicy,
    SagaStep,
    SubscriptionView,
    TestClockNotFound,
    UnknownCustomer,
    WorkKind,
)
from billing_engine.events import (
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    TestClockAdvanced,
    TestClockCustomerAttached,
)
from billing_engine.repository import StoredClock
from billing_engine.schemas import (
    BillingRun,
    BillingRunList,
    BillingRunListQuery,
    TestClock,
    TestClockCreate,
    TestClockList,
    TestClockListQuery,
)
from billing_invoicing.events import InvoiceFinalized
from billing_subscriptions.events import (
    TRIAL_END_REQUESTED,
    SubscriptionFields,
    TrialEndRequested,
)

# -- test clocks ------------------------------------------------------------------------------


async def _public(conn: Connection, clock: StoredClock) -> TestClock:
    progress = await repository.clock_progress(conn, clock)
    return TestClock(
        id=TestClockId(clock.id),
        name=clock.name,
        frozen_time=clock.frozen_time,
        status=domain.clock_status(
            pending_sagas=progress.sagas.pending,
            failed_sagas=progress.sagas.failed,
            due_subscriptions=progress.due_subscriptions,
        ),
        customer_count=progress.customer_count,
        sagas=progress.sagas,
        created_at=clock.created_at,
    )


async def _clock(
    conn: Connection, tenant_id: str, clock_id: str, *, for_update: bool = False
) -> StoredClock:
    clock = await repository.get_clock(conn, tenant_id, clock_id, for_update=for_update)
    if clock is None:
        raise TestClockNotFound(f"no test clock {clock_id}")
    return clock


async def create_clock(
    conn: Connection, tenant_id: str, request: TestClockCreate, *, now: datetime
) -> TestClock:
    clock = StoredClock(
        id=TestClockId.new(),
        tenant_id=tenant_id,
        name=request.name,
        frozen_time=request.frozen_time.astimezone(UTC),
        created_at=now,
    )
    await repository.insert_clock(conn, clock)
    return await _public(conn, clock)


async def get_clock(conn: Connection, tenant_id: str, clock_id: str) -> TestClock:
    return await _public(conn, await _clock(conn, tenant_id, clock_id))


async def list_clocks(conn: Connection, tenant_id: str, query: TestClockListQuery) -> TestClockList:
    clocks, has_more = await repository.list_clocks(
        conn, tenant_id, limit=query.limit, starting_after=query.starting_after
    )
    return TestClockList(
        data=[await _public(conn, clock) for clock in clocks],
        has_more=has_more,
        next_cursor=clocks[-1].id if has_more and clocks else None,
    )


async def attach_customer(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    clock_id: str,
    customer_id: str,
    *,
    now: datetime,
) -> TestClock:
    """The customer follows the clock from now on, for good. It must be known, on no clock
    yet, and without subscriptions (attach before subscribing).

    `test_clock_customer_attached` is written with the attachment, so that subscriptions
    and invoicing put the customer on the clock's time too."""
    clock = await _clock(conn, tenant_id, clock_id, for_update=True)
    if not await repository.customer_exists(conn, tenant_id, customer_id):
        message = f"no customer {customer_id}"
        raise UnknownCustomer(
            message,
            errors=[{"field": "customer_id", "message": message, "type": "unknown_customer"}],
        )
    current = await repository.clock_of_customer(conn, tenant_id, customer_id)
    if current is not None:
        raise CustomerAlreadyOnTestClock(
            f"customer {customer_id} already follows test clock {current}",
            test_clock_id=current,
        )
    if await repository.has_subscriptions(conn, tenant_id, customer_id):
        raise CustomerHasSubscriptions(
            f"customer {customer_id} has subscriptions: attach it to a test clock before "
            "it subscribes"
        )
    try:
        await repository.attach_customer(conn, tenant_id, customer_id, clock.id, now)
    except repository.CustomerAlreadyAttached as exc:  # a concurrent attach won
        raise CustomerAlreadyOnTestClock(
            f"customer {customer_id} already follows a test clock"
        ) from exc
    await outbox.add(
        conn,
        TEST_CLOCK_CUSTOMER_ATTACHED,
        TestClockCustomerAttached(
            test_clock_id=TestClockId(clock.id),
            customer_id=CustomerId(customer_id),
            frozen_time=clock.frozen_time,
            attached_at=now,
        ),
        subject=customer_id,
        tenant_id=tenant_id,
    )
    return await _public(conn, clock)


async def advance_clock(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    clock_id: str,
    to: datetime,
    *,
    now: datetime,
) -> TestClock:
    """Move the clock's frozen time forward to `to`; the billing clock's loop then closes
    every period of its customers' subscriptions that ends by `to`, in order."""
    clock = await _clock(conn, tenant_id, clock_id, for_update=True)
    to = to.astimezone(UTC)
    domain.check_advance(clock.frozen_time, to)
    await repository.set_frozen_time(conn, clock.id, to, now)
    await outbox.add(
        conn,
        TEST_CLOCK_ADVANCED,
        TestClockAdvanced(
            test_clock_id=TestClockId(clock.id),
            previous_time=clock.frozen_time,
            frozen_time=to,
            advanced_at=now,
        ),
        subject=clock.id,
        tenant_id=tenant_id,
    )
    advanced = StoredClock(clock.id, clock.tenant_id, clock.name, to, clock.created_at)
    return await _public(conn, advanced)


# -- projections ------------------------------------------------------------------------------


def subscription_view(tenant_id: str, data: SubscriptionFields) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=data.subscription_id,
        tenant_id=tenant_id,
        customer_id=data.customer_id,
        revision=data.revision,
        status=data.status.value,
        currency=data.currency.code,
        plan_id=data.plan_id,
        plan_version=data.plan_version,
        current_period_start=data.current_period_start,
        current_period_end=data.current_period_end,
        trial_end=data.trial_end,
    )


async def project_subscription(conn: Connection, tenant_id: str, data: SubscriptionFields) -> bool:
    """Keep the subscription unless a later revision is known; return whether kept."""
    return await repository.upsert_subscription(conn, subscription_view(tenant_id, data))


async def project_customer(conn: Connection, event: CloudEvent[CustomerCreated]) -> None:
    await repository.insert_customer(conn, event.tenantid, event.data.customer_id)


# -- the billing clock: starting work ---------------------------------------------------------


def period_closing_of(work: DueWork) -> PeriodClosing:
    sub = work.subscription
    assert sub.current_period_start is not None
    assert sub.current_period_end is not None
    return PeriodClosing(
        saga_id=work.saga_id,
        subscription_id=sub.subscription_id,
        customer_id=sub.customer_id,
        plan_id=sub.plan_id,
        plan_version=sub.plan_version,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        subscription_revision=sub.revision,
        currency=Currency.of(sub.currency),
        closed_at=work.clock_time,
        test_clock_id=work.test_clock_id,
    )


async def start_work(
    conn: Connection, outbox: OutboxWriter, work: DueWork, *, now: datetime
) -> bool:
    """Start one piece of due work: its record and its event in this one transaction.

    Does nothing (returns False) if the work was started already (the saga or trial end
    exists: a repeated scan, a restart, another replica) or if the subscription changed
    since it was found (the next scan looks again).
    """
    sub = work.subscription
    current = await repository.get_subscription(conn, sub.subscription_id, for_update=True)
    if current is None or current.revision != sub.revision:
        return False
    if work.kind is WorkKind.CLOSE_PERIOD:
        data = period_closing_of(work)
        if not await repository.insert_saga(conn, work, data.model_dump_json(), now):
            return False
        await outbox.add(
            conn, PERIOD_CLOSING, data, subject=sub.customer_id, tenant_id=sub.tenant_id
        )
        return True
    if not await repository.insert_trial_end(conn, work, now):
        return False
    await outbox.add(
        conn,
        TRIAL_END_REQUESTED,
        TrialEndRequested.model_validate(
            {
                "subscription_id": sub.subscription_id,
                "customer_id": sub.customer_id,
                "trial_end": work.boundary,
                "subscription_revision": sub.revision,
                "requested_at": work.clock_time,
                "test_clock_id": work.test_clock_id,
            }
        ),
        subject=sub.customer_id,
        tenant_id=sub.tenant_id,
    )
    return True


# -- the billing clock: finishing and retrying sagas ------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    reemitted: list[uuid.UUID]
    failed: list[uuid.UUID]


async def retry_overdue_sagas(
    conn: Connection, outbox: OutboxWriter, policy: RetryPolicy, *, now: datetime, limit: int
) -> RetryOutcome:
    """Re-emit every pending saga not finished within the timeout (same saga id, same
    data: every step downstream is idempotent per saga), or mark it failed when its
    attempts are spent."""
    reemitted: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []
    for saga in await repository.lock_overdue_sagas(conn, now - policy.timeout, limit=limit):
        step = domain.next_saga_step(saga.attempts, saga.last_emitted_at, now, policy)
        if step is SagaStep.REEMIT:
            await outbox.add(
                conn,
                PERIOD_CLOSING,
                PeriodClosing.model_validate_json(saga.payload),
                subject=saga.customer_id,
                tenant_id=saga.tenant_id,
            )
            await repository.mark_reemitted(conn, saga.saga_id, now)
            reemitted.append(saga.saga_id)
        elif step is SagaStep.FAIL:
            await repository.mark_failed(conn, saga.saga_id)
            failed.append(saga.saga_id)
    return RetryOutcome(reemitted, failed)


async def invoice_finalized(
    conn: Connection, event: CloudEvent[InvoiceFinalized], *, now: datetime
) -> bool:
    """The invoice of a period close is final: its sagas are done (a parent's invoice bills
    its children's periods too: `saga_ids`). An invoice of no saga (a one-off) or of
    sagas already done changes nothing."""
    data = event.data
    sagas = list(dict.fromkeys([*([data.saga_id] if data.saga_id else []), *data.saga_ids]))
    marked = False
    for saga in sagas:
        marked = await repository.mark_done(conn, saga, data.invoice_id, now) or marked
    return marked


# -- billing runs -----------------------------------------------------------------------------


async def list_billing_runs(
    conn: Connection, tenant_id: str, query: BillingRunListQuery
) -> BillingRunList:
    runs, has_more = await repository.list_runs(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        filters={
            "status": query.status,
            "subscription_id": query.subscription_id,
            "customer_id": query.customer_id,
            "test_clock_id": query.test_clock_id,
        },
    )
    return BillingRunList(
        data=runs,
        has_more=has_more,
        next_cursor=str(runs[-1].saga_id) if has_more and runs else None,
    )


async def get_billing_run(conn: Connection, tenant_id: str, saga_id: uuid.UUID) -> BillingRun:
    run = await repository.get_run(conn, tenant_id, saga_id)
    if run is None:
        raise BillingRunNotFound(f"no billing run {saga_id}")
    return run
