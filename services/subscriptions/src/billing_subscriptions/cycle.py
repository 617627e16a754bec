"""The billing clock's steps, as subscriptions acts on them (ARCHITECTURE.md §2, test clocks §6).

The engine decides when a period or a trial is over, on the real clock or the customer's
test clock; subscriptions moves the subscription on, at the instant the engine names
(the period's end, the trial's end), never at its own clock's time:

- `billing.engine.period_closing`: the subscription's current period ended; it renews
  (`service.renew_subscription` with `now = period_end`): the next period starts and is
  charged, or the subscription is canceled or ends.
- `billing.subscriptions.trial_end_requested`: the trial's end passed; the trial ends
  (`service.end_subscription_trial` with `now = trial_end`).

Each handler runs in the consumer's inbox transaction and acts only if the subscription
is still where the event found it (same current period, or still trialing with the same
trial end), so a redelivery, a retried close or a stale request changes nothing.

On a test clock: the engine's `test_clock_advanced` is keyed by the clock, its closes by
the customer, so a close for the clock's new time may arrive here before the advance
does. That is harmless: a renewal happens at the period's end and a trial's end at the
trial's end, whatever subscriptions knows of the clock. A close or trial end of a clock
customer also carries the clock's time when the engine found it (`closed_at`,
`requested_at`), which subscriptions keeps as the clock's time if it is the latest known.
"""

from __future__ import annotations

import logging

from billing_common import clock_projection
from billing_common.cycle import PeriodClosing
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.outbox import OutboxWriter
from billing_subscriptions import repository, service
from billing_subscriptions.domain import SubscriptionStatus
from billing_subscriptions.events import TrialEndRequested

logger = logging.getLogger(__name__)

#: The statuses `renew` moves on: a period of any of them can close.
RENEWABLE = frozenset(
    {SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.PAUSED}
)


async def period_closing(
    conn: Connection, outbox: OutboxWriter, event: CloudEvent[PeriodClosing]
) -> bool:
    """Renew the subscription if the closing period is its current one; return whether it
    renewed."""
    data = event.data
    if data.test_clock_id is not None:
        await clock_projection.advance_test_clock(
            conn, event.tenantid, data.test_clock_id, data.closed_at
        )
    stored = await repository.get(conn, event.tenantid, data.subscription_id, for_update=True)
    if stored is None:
        logger.warning("period_closing for unknown subscription %s", data.subscription_id)
        return False
    period = stored.state.current_period
    if (
        stored.state.status not in RENEWABLE
        or period is None
        or (period.start, period.end) != (data.period_start, data.period_end)
    ):
        return False
    await service.renew_subscription(
        conn, outbox, event.tenantid, data.subscription_id, now=data.period_end
    )
    return True


async def trial_end_requested(
    conn: Connection, outbox: OutboxWriter, event: CloudEvent[TrialEndRequested]
) -> bool:
    """End the trial if the subscription is still trialing until `trial_end`; return
    whether it ended."""
    data = event.data
    if data.test_clock_id is not None:
        await clock_projection.advance_test_clock(
            conn, event.tenantid, data.test_clock_id, data.requested_at
        )
    stored = await repository.get(conn, event.tenantid, data.subscription_id, for_update=True)
    if stored is None:
        logger.warning("trial_end_requested for unknown subscription %s", data.subscription_id)
        return False
    state = stored.state
    if state.status is not SubscriptionStatus.TRIALING or state.trial_end != data.trial_end:
        return False
    await service.end_subscription_trial(
        conn, outbox, event.tenantid, data.subscription_id, now=data.trial_end
    )
    return True
