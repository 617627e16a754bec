"""Wiring of the ledger service: open the ledger at start, post invoicing's facts, serve reads.

`setup` opens the books (`books.open_books`: TigerBeetle when `TIGERBEETLE_ADDRESSES`
is set and reachable, else the in-process ledger rebuilt from PostgreSQL) once per
process; the routes and the consumer share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from weakref import WeakKeyDictionary

from starlette.routing import BaseRoute

from billing_common.errors import ServiceUnavailable
from billing_common.runtime import ServiceContext, ServiceDefinition, ServiceRuntime
from billing_ledger.api import ledger_routes
from billing_ledger.books import Books, open_books
from billing_ledger.events import PRODUCES
from billing_ledger.handlers import LedgerHandlers


class LedgerProcess:
    """What one process of the service holds beside its runtime: the books, once open."""

    def __init__(self) -> None:
        self.books: Books | None = None

    def current(self) -> Books:
        if self.books is None:
            raise ServiceUnavailable("the ledger is still starting")
        return self.books


_PROCESSES: WeakKeyDictionary[object, LedgerProcess] = WeakKeyDictionary()


def process_of(runtime: ServiceContext) -> LedgerProcess:
    """The ledger state of the process `runtime` runs (one per runtime)."""
    return _PROCESSES.setdefault(runtime, LedgerProcess())


async def _close_at_stop(books: Books) -> None:
    """Wait for the runtime to stop (it cancels its background tasks), then close."""
    try:
        await asyncio.Event().wait()
    finally:
        await books.close()


async def setup(runtime: ServiceRuntime) -> None:
    """Open the books and post every topic of `events.CONSUMES` to them."""
    books = await open_books(runtime.pool, runtime.settings.tigerbeetle_addresses)
    runtime.spawn(_close_at_stop(books), name="ledger-close")
    process_of(runtime).books = books
    LedgerHandlers(books).register(runtime.consumer)


def routes(runtime: ServiceContext) -> Sequence[BaseRoute]:
    return ledger_routes(runtime, process_of(runtime).current)


definition = ServiceDefinition(
    name="ledger",
    package="billing_ledger",
    produces=PRODUCES,
    routes=routes,
    setup=setup,
)
