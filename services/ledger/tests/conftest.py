"""The `ledger` fixture: every behavioral test runs on each `Ledger` implementation.

`InProcessLedger` always runs. `TigerBeetleLedger` runs when `TIGERBEETLE_ADDRESSES`
points at a reachable cluster; the `tigerbeetle` wheel ships only the client
library, no server binary, so on a bare machine those runs are skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from billing_ledger.ledger import InProcessLedger, Ledger
from billing_ledger.tigerbeetle_ledger import TIGERBEETLE_ADDRESSES, TigerBeetleLedger, reachable

NO_SERVER = (
    f"{TIGERBEETLE_ADDRESSES} is not set: the tigerbeetle wheel ships only the client "
    "library (no server binary), so there is no TigerBeetle to run this suite against"
)


@pytest.fixture(params=["in_process", "tigerbeetle"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    if request.param == "in_process":
        yield InProcessLedger()
        return
    addresses = os.environ.get(TIGERBEETLE_ADDRESSES, "").strip()
    if not addresses:
        pytest.skip(NO_SERVER)
    if not await reachable(addresses):
        pytest.skip(f"{TIGERBEETLE_ADDRESSES}={addresses}, but no TigerBeetle answers there")
    async with TigerBeetleLedger.connect(addresses) as tigerbeetle_ledger:
        yield tigerbeetle_ledger
