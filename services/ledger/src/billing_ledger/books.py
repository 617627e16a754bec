"""The ledger the service writes to and reads from, and how it survives restarts.

`open_books` picks the backend once, at start:

- `TIGERBEETLE_ADDRESSES` set: `TigerBeetleBooks`, on the cluster. The service
  checks that every replica accepts a connection first and refuses to start
  otherwise (the error shows in `/health` and the log; startup retries).
- otherwise `JournaledLedger`: one `InProcessLedger` for the whole process, kept
  durable in the service's PostgreSQL schema.

Posting a fact is `record(conn, accounts, chain)`, called inside the consumer's
transaction (the one that also writes the inbox row). Transfer ids derive from
the fact's id, and creation is idempotent (`exists`), so:

- On TigerBeetle the chain is created directly. If the transaction then fails
  (crash before the inbox commit), the redelivered fact submits the same chain
  and TigerBeetle answers `exists`: nothing is lost, nothing is posted twice.
- In process, PostgreSQL is the truth and memory a cache of it. The journal
  (`journal`: every chain the ledger created, as submitted, in order) and the
  account directory (`accounts`) are written in the consumer's transaction,
  together with the inbox row: a posting is durable exactly when the fact is
  marked consumed. A one-row `journal_head` holds the seq of the last chain;
  each write locks it (`SELECT ... FOR UPDATE`) until its transaction ends, so
  writers take turns, across replicas too. Memory remembers the seq it is at.
  A writer that finds the head elsewhere (a transaction of its own that rolled
  back after memory moved, or another replica wrote) rebuilds memory from the
  journal before applying. At start memory is rebuilt the same way: accounts
  from the directory, then every chain replayed in order; a replay that does
  not reproduce each transfer refuses to start. A crash between the ledger
  write and the commit loses memory with the process and the transaction with
  the database: the fact is redelivered and posted once.

Reads (`ledger`) go to TigerBeetle, or to the in-process ledger: every request of
the process shares it. With several in-process replicas, a replica's reads
reflect the journal as of its last write or start: run one replica, or
TigerBeetle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from billing_common.db import Connection, Pool
from billing_common.errors import BillingError, ServiceUnavailable
from billing_ledger import repository
from billing_ledger.ledger import (
    BATCH_MAX,
    Account,
    ChainOutcome,
    CreateAccountResult,
    CreateTransferResult,
    InProcessLedger,
    Ledger,
    Transfer,
    TransferFlags,
    chain_outcome,
)
from billing_ledger.tigerbeetle_ledger import (
    TIGERBEETLE_ADDRESSES,
    TigerBeetleLedger,
    ledger_from_env,
    reachable,
)

__all__ = [
    "AccountsRefused",
    "Books",
    "JournaledLedger",
    "LedgerUnreachable",
    "PostingRefused",
    "TigerBeetleBooks",
    "open_books",
]

logger = logging.getLogger(__name__)


class PostingRefused(BillingError):
    """The ledger refused a chain (never retried: the same chain would be refused again)."""

    status = 422
    code = "ledger_posting_refused"
    title = "The ledger refused the postings"


class AccountsRefused(BillingError):
    status = 422
    code = "ledger_accounts_refused"
    title = "The ledger refused to create accounts"


class LedgerUnreachable(ServiceUnavailable):
    code = "ledger_unreachable"
    title = "TigerBeetle is unreachable"


class Books(Protocol):
    """Where the service posts, and what it reads balances from."""

    @property
    def ledger(self) -> Ledger: ...

    async def record(
        self, conn: Connection, accounts: Sequence[Account], chain: Sequence[Transfer]
    ) -> ChainOutcome | None:
        """Create `accounts` (those missing) and the linked `chain`, in `conn`'s transaction.

        Answers `applied` or `already_applied` (None for an empty chain); raises
        `PostingRefused` when the ledger refuses the chain.
        """
        ...

    async def close(self) -> None: ...


def _check_accounts(accounts: Sequence[Account], results: Sequence[CreateAccountResult]) -> None:
    refused = [
        f"{account.id}: {result.status}"
        for account, result in zip(accounts, results, strict=True)
        if not result.applied
    ]
    if refused:
        raise AccountsRefused(f"accounts refused: {', '.join(refused)}")


def _outcome(chain: Sequence[Transfer], results: Sequence[CreateTransferResult]) -> ChainOutcome:
    outcome = chain_outcome(results)
    if outcome is ChainOutcome.REJECTED:
        statuses = [str(r.status) for r in results]
        raise PostingRefused(
            f"the ledger refused a chain of {len(chain)} transfers: {', '.join(statuses)}",
            statuses=statuses,
        )
    return outcome


class TigerBeetleBooks:
    """Postings straight to TigerBeetle, whose ids make a redelivery answer `exists`."""

    def __init__(self, ledger: TigerBeetleLedger) -> None:
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    async def record(
        self, conn: Connection, accounts: Sequence[Account], chain: Sequence[Transfer]
    ) -> ChainOutcome | None:
        if accounts:
            _check_accounts(accounts, await self._ledger.create_accounts(accounts))
        if not chain:
            return None
        return _outcome(chain, await self._ledger.create_transfers(chain))

    async def close(self) -> None:
        await self._ledger.close()


class JournaledLedger:
    """One `InProcessLedger` per process, journaled in PostgreSQL (see the module docstring)."""

    def __init__(self) -> None:
        self._memory = InProcessLedger()
        self._seq = -1  # at no seq: the first write rebuilds
        self._lock = asyncio.Lock()

    @property
    def ledger(self) -> Ledger:
        return self._memory

    @property
    def seq(self) -> int:
        """The journal seq memory is at."""
        return self._seq

    @classmethod
    async def load(cls, pool: Pool) -> JournaledLedger:
        """The ledger as the journal left it."""
        books = cls()
        async with pool.acquire() as conn, conn.transaction():
            await books._rebuild(conn, await repository.journal_head(conn))
        return books

    async def _rebuild(self, conn: Connection, head: int) -> None:
        """Replace memory with the directory's accounts and the journal's chains."""
        memory = InProcessLedger()
        accounts = await repository.all_accounts(conn)
        for start in range(0, len(accounts), BATCH_MAX):
            accounts_batch = accounts[start : start + BATCH_MAX]
            _check_accounts(accounts_batch, await memory.create_accounts(accounts_batch))
        transfers = await repository.journal(conn)
        for batch in _chain_batches(transfers):
            results = await memory.create_transfers(batch)
            if not all(str(r.status) == "created" for r in results):
                failed = next(r for r in results if str(r.status) != "created")
                raise RuntimeError(
                    f"the ledger journal does not replay: a transfer answered {failed.status}"
                )
        self._memory, self._seq = memory, head
        logger.info(
            "in-process ledger rebuilt: %d accounts, %d transfers, journal seq %d",
            len(accounts),
            len(transfers),
            head,
        )

    async def record(
        self, conn: Connection, accounts: Sequence[Account], chain: Sequence[Transfer]
    ) -> ChainOutcome | None:
        async with self._lock:
            head = await repository.lock_journal_head(conn)
            if head != self._seq:
                await self._rebuild(conn, head)
            if accounts:
                _check_accounts(accounts, await self._memory.create_accounts(accounts))
            if not chain:
                return None
            outcome = _outcome(chain, await self._memory.create_transfers(chain))
            if outcome is ChainOutcome.APPLIED:
                await repository.append_chain(conn, head + 1, chain)
                self._seq = head + 1
            return outcome

    async def close(self) -> None:
        return None


def _chain_batches(transfers: Sequence[Transfer]) -> list[list[Transfer]]:
    """`transfers` cut into batches of at most `BATCH_MAX` that never split a linked chain."""
    batches: list[list[Transfer]] = []
    current: list[Transfer] = []
    chain: list[Transfer] = []
    for transfer in transfers:
        chain.append(transfer)
        if transfer.flags & TransferFlags.LINKED:
            continue
        if len(current) + len(chain) > BATCH_MAX and current:
            batches.append(current)
            current = []
        current.extend(chain)
        chain = []
    current.extend(chain)  # an open chain at the end: replayed as is, and refused
    if current:
        batches.append(current)
    return batches


async def open_books(pool: Pool, tigerbeetle_addresses: str | None) -> Books:
    """TigerBeetle when `tigerbeetle_addresses` is set and reachable; else the journaled
    in-process ledger, rebuilt from `pool`'s schema."""
    addresses = (tigerbeetle_addresses or "").strip()
    if addresses:
        if not await reachable(addresses):
            raise LedgerUnreachable(
                f"{TIGERBEETLE_ADDRESSES}={addresses}, but no TigerBeetle replica accepts "
                "connections there; start TigerBeetle or unset it to use the in-process ledger"
            )
        ledger = ledger_from_env({TIGERBEETLE_ADDRESSES: addresses})
        assert isinstance(ledger, TigerBeetleLedger)
        return TigerBeetleBooks(ledger)
    return await JournaledLedger.load(pool)
