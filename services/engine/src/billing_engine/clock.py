"""The billing clock: the engine's background loop (`runtime.spawn`).

Every `scan_interval_ms` (or at once when woken, e.g. by a test clock's advance) it:

1. finds the work due (`domain.due_work` over the subscriptions whose boundary passed on
   their customer's clock and whose work is not started yet) and starts each piece in its
   own transaction (`service.start_work`: the saga row or trial-end row, and its event,
   together), in boundary order;
2. re-emits the period closes not finished within the timeout, or marks them failed.

A crash anywhere loses nothing and repeats nothing: a piece of work is started by the
transaction that records it, and its record makes every later scan skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from prometheus_client import Counter

from billing_common.errors import ServiceUnavailable
from billing_common.runtime import ServiceContext
from billing_engine import domain, repository, service
from billing_engine.domain import DueWork
from billing_engine.settings import EngineSettings

logger = logging.getLogger(__name__)

CLOCK_WORK = Counter(
    "billing_engine_work_total",
    "Work of the billing clock, by kind (close_period, end_trial, reemitted, failed)",
    ["kind"],
)


@dataclass
class Tick:
    """What one pass of the billing clock did."""

    started: list[DueWork] = field(default_factory=list)
    reemitted: int = 0
    failed: int = 0
    full: bool = False
    """The pass found a whole batch: more may be due at once."""


class BillingClock:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Scan now rather than at the next interval (after a test clock moved)."""
        self._wake.set()

    async def tick(self, context: ServiceContext) -> Tick:
        """One pass: start what is due, retry what is overdue."""
        settings = self.settings
        now = context.clock()
        tick = Tick()
        async with context.pool.acquire() as conn:
            candidates, clocks = await repository.due_candidates(
                conn, now, limit=settings.scan_batch_size
            )
        tick.full = len(candidates) >= settings.scan_batch_size
        for work in domain.due_work(candidates, clocks, now=now):
            async with context.unit_of_work() as conn:
                started = await service.start_work(conn, context.outbox, work, now=now)
            if started:
                tick.started.append(work)
                CLOCK_WORK.labels(work.kind.value).inc()
        async with context.unit_of_work() as conn:
            outcome = await service.retry_overdue_sagas(
                conn,
                context.outbox,
                settings.retry_policy,
                now=now,
                limit=settings.scan_batch_size,
            )
        tick.reemitted, tick.failed = len(outcome.reemitted), len(outcome.failed)
        CLOCK_WORK.labels("reemitted").inc(tick.reemitted)
        CLOCK_WORK.labels("failed").inc(tick.failed)
        for saga in outcome.failed:
            logger.error("period close %s failed: no invoice after its last attempt", saga)
        return tick

    async def run(self, context: ServiceContext) -> None:
        """Tick for the life of the process; a failed pass is logged and retried."""
        interval = self.settings.scan_interval_ms / 1000
        while True:
            full = False
            try:
                full = (await self.tick(context)).full
            except asyncio.CancelledError:
                raise
            except ServiceUnavailable:
                pass  # still starting
            except Exception:
                logger.warning("a pass of the billing clock failed", exc_info=True)
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
