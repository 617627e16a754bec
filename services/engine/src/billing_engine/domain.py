"""The billing clock's rules. Pure: no I/O, no clock (every instant is an argument).

Each customer follows one clock: its test clock's frozen time if it is attached to one,
else the real clock. A subscription has work due when its clock reaches a boundary:

- the end of its current period, if its status closes periods: `active`, `past_due` and
  `paused` (a paused subscription's periods keep rolling, as `renew` does in the
  subscriptions domain: its renewal charges no fee, but the period still closes, so the
  credit of the pause and any usage recorded in it reach an invoice) -> a period close
  (a saga, `PERIOD_CLOSING`);
- the end of its trial, if it is `trialing` (no period yet) -> a trial end
  (`trial_end_requested`; the first period starts then, and closes at its own end);
- its current period right away, once, if it was `canceled` now (its final invoice: the
  credit of the unused rest and the usage so far); nothing more for `canceled` and
  `ended` subscriptions.

Work is started in the order of its boundary (then subscription id); one subscription has
at most one piece of work due at a time, because its next period only becomes known when
subscriptions renews it: periods close one after another.

>>> from datetime import UTC, datetime
>>> sub = SubscriptionView(
...     "sub_1", "ten_1", "cus_1", 3, "active", "USD", "plan_1", 1,
...     datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), None,
... )
>>> [w.kind.value for w in due_work([sub], {}, now=datetime(2026, 2, 1, tzinfo=UTC))]
['close_period']
>>> due_work([sub], {"cus_1": CustomerClock("clock_1", datetime(2026, 1, 15, tzinfo=UTC))},
...          now=datetime(2026, 3, 1, tzinfo=UTC))
[]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from billing_common.cycle import saga_id
from billing_common.errors import Conflict, NotFound, ValidationFailed

#: Statuses whose current period closes when it ends.
CLOSING_STATUSES = frozenset({"active", "past_due", "paused"})
CANCELED = "canceled"
TRIALING = "trialing"


class TestClockNotFound(NotFound):
    __test__ = False  # not a pytest test class
    code = "test_clock_not_found"
    title = "Test clock not found"


class BillingRunNotFound(NotFound):
    code = "billing_run_not_found"
    title = "Billing run not found"


class InvalidTestClockAdvance(ValidationFailed):
    code = "invalid_test_clock_advance"
    title = "A test clock only moves forward"


class UnknownCustomer(ValidationFailed):
    code = "unknown_customer"
    title = "No customer has this id"


class CustomerAlreadyOnTestClock(Conflict):
    code = "customer_already_on_test_clock"
    title = "The customer already follows a test clock"


class CustomerHasSubscriptions(Conflict):
    code = "customer_has_subscriptions"
    title = "Attach a customer to a test clock before it subscribes"


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """What the engine knows of a subscription: its latest revision, as announced."""

    subscription_id: str
    tenant_id: str
    customer_id: str
    revision: int
    status: str
    currency: str
    plan_id: str
    plan_version: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerClock:
    """The test clock a customer follows, and its frozen time."""

    test_clock_id: str
    frozen_time: datetime


class WorkKind(StrEnum):
    CLOSE_PERIOD = "close_period"
    END_TRIAL = "end_trial"


@dataclass(frozen=True, slots=True)
class DueWork:
    """One boundary a subscription's clock passed: close its period, or end its trial.

    `boundary` is the period's or the trial's end; `clock_time` the customer's clock when
    the work was found (the event's `closed_at` / `requested_at`).
    """

    kind: WorkKind
    subscription: SubscriptionView
    boundary: datetime
    clock_time: datetime
    test_clock_id: str | None

    @property
    def saga_id(self) -> uuid.UUID:
        """The close's saga id (shared by every step downstream); only for a period close."""
        start = self.subscription.current_period_start
        if self.kind is not WorkKind.CLOSE_PERIOD or start is None:
            raise ValueError("only a period close has a saga")
        return saga_id(self.subscription.subscription_id, start)


def customer_time(
    customer_id: str, clocks: Mapping[str, CustomerClock], now: datetime
) -> tuple[datetime, str | None]:
    """The time on the customer's clock (its test clock's, else `now`) and that clock's id."""
    clock = clocks.get(customer_id)
    if clock is None:
        return now, None
    return clock.frozen_time, clock.test_clock_id


def work_of(
    sub: SubscriptionView, clock_time: datetime, test_clock_id: str | None
) -> DueWork | None:
    """The work `sub` has due at `clock_time` on its clock, if any."""
    if sub.status in CLOSING_STATUSES:
        if (
            sub.current_period_start is not None
            and sub.current_period_end is not None
            and sub.current_period_end <= clock_time
        ):
            return DueWork(
                WorkKind.CLOSE_PERIOD, sub, sub.current_period_end, clock_time, test_clock_id
            )
        return None
    if sub.status == CANCELED:
        # Canceled now, inside a period: that period closes at once (the final invoice).
        # Canceled at a period's end, the close came first; the repository leaves out
        # periods whose close exists.
        if sub.current_period_start is not None and sub.current_period_end is not None:
            boundary = min(sub.current_period_end, clock_time)
            return DueWork(WorkKind.CLOSE_PERIOD, sub, boundary, clock_time, test_clock_id)
        return None
    if sub.status == TRIALING and sub.trial_end is not None and sub.trial_end <= clock_time:
        return DueWork(WorkKind.END_TRIAL, sub, sub.trial_end, clock_time, test_clock_id)
    return None


def due_work(
    subscriptions: Iterable[SubscriptionView],
    clocks: Mapping[str, CustomerClock],
    *,
    now: datetime,
) -> list[DueWork]:
    """Every piece of work due, each subscription on its customer's clock, in the order of
    its boundary (then subscription id). `clocks` maps the customers on a test clock."""
    found = []
    for sub in subscriptions:
        clock_time, clock_id = customer_time(sub.customer_id, clocks, now)
        work = work_of(sub, clock_time, clock_id)
        if work is not None:
            found.append(work)
    found.sort(key=lambda w: (w.boundary, w.subscription.subscription_id))
    return found


def check_advance(frozen_time: datetime, to: datetime) -> None:
    """A test clock moves forward only: `to` must be later than its frozen time."""
    if to <= frozen_time:
        message = (
            f"to ({to.isoformat()}) must be later than the clock's frozen_time "
            f"({frozen_time.isoformat()})"
        )
        raise InvalidTestClockAdvance(
            message,
            errors=[{"field": "to", "message": message, "type": "not_after_frozen_time"}],
        )


class SagaStep(StrEnum):
    WAIT = "wait"
    REEMIT = "reemit"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A pending saga is re-emitted `timeout` after its last emission, at most until it has
    been emitted `max_attempts` times; `timeout` after the last one it is `failed`."""

    timeout: timedelta
    max_attempts: int

    def __post_init__(self) -> None:
        if self.timeout <= timedelta(0) or self.max_attempts < 1:
            raise ValueError("a retry policy needs a positive timeout and at least one attempt")


def next_saga_step(
    attempts: int, last_emitted_at: datetime, now: datetime, policy: RetryPolicy
) -> SagaStep:
    """What to do with a pending saga emitted `attempts` times, last at `last_emitted_at`.

    >>> from datetime import UTC, datetime
    >>> policy = RetryPolicy(timedelta(seconds=30), max_attempts=3)
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> [next_saga_step(n, t0, t0 + timedelta(seconds=s), policy).value
    ...  for n, s in [(1, 29), (1, 30), (3, 30)]]
    ['wait', 'reemit', 'fail']
    """
    if now - last_emitted_at < policy.timeout:
        return SagaStep.WAIT
    return SagaStep.REEMIT if attempts < policy.max_attempts else SagaStep.FAIL


class ClockStatus(StrEnum):
    READY = "ready"
    ADVANCING = "advancing"
    INTERNAL_FAILURE = "internal_failure"


def clock_status(*, pending_sagas: int, failed_sagas: int, due_subscriptions: int) -> ClockStatus:
    """`ready` when all the work the clock caused is done: no saga pending and no
    subscription of its customers with a boundary at or before its frozen time (a period
    not yet closed, or closed but not yet renewed; a trial not yet ended);
    `internal_failure` when a saga gave up; else `advancing`.

    A saga is done when its invoice is finalized: a draft waiting out its customer's grace
    period keeps its saga pending (invoicing finalizes it when the clock advances past its
    `editable_until`), so the clock shows `advancing` until then. The engine does not learn
    of drafts, so a draft whose grace the clock has not reached yet also counts as pending
    (and its saga is retried as any unfinished one)."""
    if failed_sagas:
        return ClockStatus.INTERNAL_FAILURE
    if pending_sagas or due_subscriptions:
        return ClockStatus.ADVANCING
    return ClockStatus.READY
