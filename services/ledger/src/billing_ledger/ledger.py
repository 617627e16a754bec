"""Double-entry accounts and transfers with TigerBeetle's semantics, and an in-memory ledger.

The types mirror the `tigerbeetle` client (0.17): an `Account` holds four u128
balances (debits and credits, pending and posted) on one `ledger` (here: one
currency), a `Transfer` debits one account and credits another on that ledger,
and `create_accounts` / `create_transfers` answer one result per event, in order,
with TigerBeetle's status names (`created`, `exists`, `exceeds_credits`, ...).

Semantics kept from TigerBeetle (docs.tigerbeetle.com, reference/requests):

- Ids are chosen by the caller. Submitting the same id again with the same fields
  answers `exists`; with a different field it answers the first differing
  `exists_with_different_*`. A transfer that failed with a transient status
  (`debit_account_not_found`, `exceeds_credits`, ...) burns its id:
  resubmitting it answers `id_already_failed`.
- Events with `flags.linked` form a chain with the next event; a chain succeeds or
  fails as a whole. The event that fails gets its own status, every other event of
  the chain `linked_event_failed`; a batch ending on a linked event answers
  `linked_event_chain_open`. `exists` is a failure too: resubmitting a chain that
  was applied answers `exists` for its first event (see `chain_outcome`).
- Pending transfers reserve amounts in `*_pending`; a `post_pending_transfer` posts
  all (`amount=AMOUNT_MAX`) or part of it and releases the rest; a
  `void_pending_transfer` releases it all. A pending transfer with a `timeout`
  (seconds) expires at `timestamp + timeout` and is released.
- `debits_must_not_exceed_credits` / `credits_must_not_exceed_debits` refuse a
  transfer that would take pending plus posted debits (credits) above posted
  credits (debits): `exceeds_credits` / `exceeds_debits`.
- `balancing_debit` / `balancing_credit` move at most `amount`, only as much as
  balances the account.

Not supported by `InProcessLedger` (answered `reserved_flag`): imported events,
closing transfers and closed accounts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntFlag, StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "AMOUNT_MAX",
    "Account",
    "AccountBalance",
    "AccountFilter",
    "AccountFilterFlags",
    "AccountFlags",
    "ChainOutcome",
    "CreateAccountResult",
    "CreateAccountStatus",
    "CreateTransferResult",
    "CreateTransferStatus",
    "InProcessLedger",
    "Ledger",
    "LedgerStateMachine",
    "ManualClock",
    "Transfer",
    "TransferFlags",
    "all_applied",
    "chain_outcome",
]

U128_MAX = 2**128 - 1
#: An amount that posts the whole of a pending transfer.
AMOUNT_MAX = U128_MAX
_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
_U16_MAX = 2**16 - 1
_TIMESTAMP_MAX = 2**63 - 1
_NS_PER_S = 1_000_000_000
#: TigerBeetle's largest batch of events (8189 transfers or accounts per request).
BATCH_MAX = 8189


class AccountFlags(IntFlag):
    """Account flags, bit for bit those of TigerBeetle."""

    NONE = 0
    LINKED = 1 << 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    HISTORY = 1 << 3
    IMPORTED = 1 << 4
    CLOSED = 1 << 5


class TransferFlags(IntFlag):
    """Transfer flags, bit for bit those of TigerBeetle."""

    NONE = 0
    LINKED = 1 << 0
    PENDING = 1 << 1
    POST_PENDING_TRANSFER = 1 << 2
    VOID_PENDING_TRANSFER = 1 << 3
    BALANCING_DEBIT = 1 << 4
    BALANCING_CREDIT = 1 << 5
    CLOSING_DEBIT = 1 << 6
    CLOSING_CREDIT = 1 << 7
    IMPORTED = 1 << 8


class AccountFilterFlags(IntFlag):
    """Which transfers of an account a query returns, and in which order."""

    NONE = 0
    DEBITS = 1 << 0
    CREDITS = 1 << 1
    REVERSED = 1 << 2


_ACCOUNT_FLAGS_SUPPORTED = (
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
)
_TRANSFER_FLAGS_SUPPORTED = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING_TRANSFER
    | TransferFlags.VOID_PENDING_TRANSFER
    | TransferFlags.BALANCING_DEBIT
    | TransferFlags.BALANCING_CREDIT
)


class CreateAccountStatus(StrEnum):
    """The outcome of one `create_accounts` event: TigerBeetle's names, in its precedence."""

    CREATED = "created"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    IMPORTED_EVENT_EXPECTED = "imported_event_expected"
    IMPORTED_EVENT_NOT_EXPECTED = "imported_event_not_expected"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE = "imported_event_timestamp_out_of_range"
    IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE = "imported_event_timestamp_must_not_advance"
    RESERVED_FIELD = "reserved_field"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBITS_PENDING_MUST_BE_ZERO = "debits_pending_must_be_zero"
    DEBITS_POSTED_MUST_BE_ZERO = "debits_posted_must_be_zero"
    CREDITS_PENDING_MUST_BE_ZERO = "credits_pending_must_be_zero"
    CREDITS_POSTED_MUST_BE_ZERO = "credits_posted_must_be_zero"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS = "imported_event_timestamp_must_not_regress"


class CreateTransferStatus(StrEnum):
    """The outcome of one `create_transfers` event: TigerBeetle's names, in its precedence."""

    CREATED = "created"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    IMPORTED_EVENT_EXPECTED = "imported_event_expected"
    IMPORTED_EVENT_NOT_EXPECTED = "imported_event_not_expected"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE = "imported_event_timestamp_out_of_range"
    IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE = "imported_event_timestamp_must_not_advance"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    ID_ALREADY_FAILED = "id_already_failed"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "debit_account_id_must_not_be_zero"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "debit_account_id_must_not_be_int_max"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "credit_account_id_must_not_be_zero"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "credit_account_id_must_not_be_int_max"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_ID_MUST_NOT_BE_INT_MAX = "pending_id_must_not_be_int_max"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    CLOSING_TRANSFER_MUST_BE_PENDING = "closing_transfer_must_be_pending"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS = "imported_event_timestamp_must_not_regress"
    IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT = (
        "imported_event_timestamp_must_postdate_debit_account"
    )
    IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT = (
        "imported_event_timestamp_must_postdate_credit_account"
    )
    IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO = "imported_event_timeout_must_be_zero"
    DEBIT_ACCOUNT_ALREADY_CLOSED = "debit_account_already_closed"
    CREDIT_ACCOUNT_ALREADY_CLOSED = "credit_account_already_closed"
    OVERFLOWS_DEBITS_PENDING = "overflows_debits_pending"
    OVERFLOWS_CREDITS_PENDING = "overflows_credits_pending"
    OVERFLOWS_DEBITS_POSTED = "overflows_debits_posted"
    OVERFLOWS_CREDITS_POSTED = "overflows_credits_posted"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    OVERFLOWS_TIMEOUT = "overflows_timeout"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"

    @property
    def transient(self) -> bool:
        """Whether the failure depends on the ledger's state: such an id cannot be reused."""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {
        CreateTransferStatus.DEBIT_ACCOUNT_NOT_FOUND,
        CreateTransferStatus.CREDIT_ACCOUNT_NOT_FOUND,
        CreateTransferStatus.PENDING_TRANSFER_NOT_FOUND,
        CreateTransferStatus.EXCEEDS_CREDITS,
        CreateTransferStatus.EXCEEDS_DEBITS,
        CreateTransferStatus.DEBIT_ACCOUNT_ALREADY_CLOSED,
        CreateTransferStatus.CREDIT_ACCOUNT_ALREADY_CLOSED,
    }
)


def _check_uint(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be between 0 and {maximum}, not {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A TigerBeetle account. Create it with its balances and timestamp left at zero."""

    id: int
    ledger: int
    code: int
    flags: AccountFlags = AccountFlags.NONE
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    timestamp: int = 0

    def __post_init__(self) -> None:
        for name, maximum in _ACCOUNT_FIELD_LIMITS:
            _check_uint(name, getattr(self, name), maximum)
        object.__setattr__(self, "flags", AccountFlags(self.flags))

    def debits_exceed_credits(self, amount: int) -> bool:
        """Whether debiting `amount` more would break `debits_must_not_exceed_credits`."""
        return bool(
            self.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            and self.debits_pending + self.debits_posted + amount > self.credits_posted
        )

    def credits_exceed_debits(self, amount: int) -> bool:
        """Whether crediting `amount` more would break `credits_must_not_exceed_debits`."""
        return bool(
            self.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
            and self.credits_pending + self.credits_posted + amount > self.debits_posted
        )


_ACCOUNT_FIELD_LIMITS = (
    ("id", U128_MAX),
    ("ledger", _U32_MAX),
    ("code", _U16_MAX),
    ("flags", _U16_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", _U64_MAX),
    ("user_data_32", _U32_MAX),
    ("debits_pending", U128_MAX),
    ("debits_posted", U128_MAX),
    ("credits_pending", U128_MAX),
    ("credits_posted", U128_MAX),
    ("timestamp", _U64_MAX),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """A TigerBeetle transfer: `amount` from `debit_account_id` to `credit_account_id`.

    A post or void names the pending transfer in `pending_id` and may leave the
    accounts, ledger and code at zero.
    """

    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    pending_id: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timeout: int = 0
    ledger: int = 0
    code: int = 0
    flags: TransferFlags = TransferFlags.NONE
    timestamp: int = 0

    def __post_init__(self) -> None:
        for name, maximum in _TRANSFER_FIELD_LIMITS:
            _check_uint(name, getattr(self, name), maximum)
        object.__setattr__(self, "flags", TransferFlags(self.flags))


_TRANSFER_FIELD_LIMITS = (
    ("id", U128_MAX),
    ("debit_account_id", U128_MAX),
    ("credit_account_id", U128_MAX),
    ("amount", U128_MAX),
    ("pending_id", U128_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", _U64_MAX),
    ("user_data_32", _U32_MAX),
    ("timeout", _U32_MAX),
    ("ledger", _U32_MAX),
    ("code", _U16_MAX),
    ("flags", _U16_MAX),
    ("timestamp", _U64_MAX),
)


@dataclass(frozen=True, slots=True)
class CreateAccountResult:
    """One `create_accounts` answer: the status and the account's timestamp when created."""

    status: CreateAccountStatus
    timestamp: int = 0

    @property
    def applied(self) -> bool:
        """Whether the account now exists as asked (`created` or `exists`)."""
        return self.status in (CreateAccountStatus.CREATED, CreateAccountStatus.EXISTS)


@dataclass(frozen=True, slots=True)
class CreateTransferResult:
    """One `create_transfers` answer: the status and the transfer's timestamp when created."""

    status: CreateTransferStatus
    timestamp: int = 0

    @property
    def applied(self) -> bool:
        """Whether the transfer now exists as asked (`created` or `exists`)."""
        return self.status in (CreateTransferStatus.CREATED, CreateTransferStatus.EXISTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFilter:
    """A query on one account's transfers or balance history (TigerBeetle's `AccountFilter`).

    Zero means "any" for the user data, code and timestamp bounds (inclusive).
    """

    account_id: int
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    code: int = 0
    timestamp_min: int = 0
    timestamp_max: int = 0
    limit: int = BATCH_MAX
    flags: AccountFilterFlags = AccountFilterFlags.DEBITS | AccountFilterFlags.CREDITS


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's balances just after the transfer with `timestamp` (accounts with history)."""

    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    timestamp: int


@runtime_checkable
class Ledger(Protocol):
    """A double-entry ledger with TigerBeetle's semantics.

    `create_*` answer one result per event, in order. `lookup_*` answer the objects
    found, in the order asked, leaving out ids that do not exist.
    """

    async def create_accounts(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        """Create `accounts`, one result each."""
        ...

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        """Create `transfers`, one result each."""
        ...

    async def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        """The accounts with these ids that exist."""
        ...

    async def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        """The transfers with these ids that exist."""
        ...

    async def get_account_transfers(self, account_filter: AccountFilter) -> list[Transfer]:
        """The transfers of one account, by timestamp."""
        ...

    async def get_account_balances(self, account_filter: AccountFilter) -> list[AccountBalance]:
        """The balance history of one account created with `flags.history`."""
        ...


class ChainOutcome(StrEnum):
    """What one chain of linked events (a whole batch) did."""

    APPLIED = "applied"
    """Every event was created now."""
    ALREADY_APPLIED = "already_applied"
    """The same chain had been applied before: its first event `exists`, the rest failed."""
    REJECTED = "rejected"
    """Nothing was applied and the chain was not there before."""


def chain_outcome(results: Sequence[CreateTransferResult | CreateAccountResult]) -> ChainOutcome:
    """Read the results of submitting one linked chain (the whole batch).

    A chain is atomic, so resubmitting one that was applied answers `exists` for its
    first event and `linked_event_failed` for the others (TigerBeetle counts
    `exists` as a failure that breaks the chain).

    >>> created = CreateTransferResult(CreateTransferStatus.CREATED, 1)
    >>> chain_outcome([created, created])
    <ChainOutcome.APPLIED: 'applied'>
    >>> chain_outcome([CreateTransferResult(CreateTransferStatus.EXISTS),
    ...                CreateTransferResult(CreateTransferStatus.LINKED_EVENT_FAILED)])
    <ChainOutcome.ALREADY_APPLIED: 'already_applied'>
    """
    if not results:
        raise ValueError("an empty batch is not a chain")
    statuses = [str(result.status) for result in results]
    if all(status == "created" for status in statuses):
        return ChainOutcome.APPLIED
    if statuses[0] == "exists" and all(s == "linked_event_failed" for s in statuses[1:]):
        return ChainOutcome.ALREADY_APPLIED
    return ChainOutcome.REJECTED


@dataclass
class ManualClock:
    """A clock that moves only when told: nanoseconds since the Unix epoch.

    >>> clock = ManualClock(1_000)
    >>> clock.advance(seconds=2); clock()
    2000001000
    """

    now_ns: int = 1

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, *, seconds: int = 0, nanoseconds: int = 0) -> None:
        if seconds < 0 or nanoseconds < 0:
            raise ValueError("a clock only moves forward")
        self.now_ns += seconds * _NS_PER_S + nanoseconds


class _PendingStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


_MISSING = object()
_Event = TypeVar("_Event", Account, Transfer)
_Row = TypeVar("_Row", Transfer, AccountBalance)


@dataclass
class _Journal:
    """The undo log of the open chain: every write, so a broken chain can be rolled back."""

    entries: list[tuple[dict[int, Any], int, object]] = field(default_factory=list)
    active: bool = False


class LedgerStateMachine:
    """The synchronous core of `InProcessLedger`: TigerBeetle's state machine, in memory.

    `clock` gives nanoseconds; each event gets a timestamp strictly greater than the
    last one, as in TigerBeetle. Without a clock, time is a counter (deterministic,
    and pending transfers with a timeout then never expire on their own).
    """

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        counter = itertools.count(1)
        self._clock: Callable[[], int] = clock if clock is not None else lambda: next(counter)
        self._last_timestamp = 0
        self._accounts: dict[int, Account] = {}
        self._transfers: dict[int, Transfer] = {}
        self._pending_status: dict[int, _PendingStatus] = {}
        self._history: dict[int, tuple[tuple[AccountBalance, Transfer], ...]] = {}
        self._failed_ids: set[int] = set()
        self._journal = _Journal()

    # -- batches ------------------------------------------------------------------------------

    def create_accounts(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        self._expire_pending()
        statuses = self._execute(list(accounts), self._create_account)
        return [
            CreateAccountResult(
                CreateAccountStatus(status),
                timestamp
                if status == CreateAccountStatus.CREATED
                else self._existing_timestamp(self._accounts, event.id, status),
            )
            for event, (status, timestamp) in zip(accounts, statuses, strict=True)
        ]

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        self._expire_pending()
        statuses = self._execute(list(transfers), self._create_transfer)
        results = []
        for event, (status, timestamp) in zip(transfers, statuses, strict=True):
            transfer_status = CreateTransferStatus(status)
            if transfer_status.transient:
                self._failed_ids.add(event.id)  # outside any chain: it outlives a rollback
            results.append(
                CreateTransferResult(
                    transfer_status,
                    timestamp
                    if transfer_status is CreateTransferStatus.CREATED
                    else self._existing_timestamp(self._transfers, event.id, status),
                )
            )
        return results

    @staticmethod
    def _existing_timestamp(
        objects: dict[int, Account] | dict[int, Transfer], id_: int, status: str
    ) -> int:
        if status == "exists":
            return objects[id_].timestamp
        return 0

    def _execute(
        self, events: list[_Event], create: Callable[[_Event, int], str]
    ) -> list[tuple[str, int]]:
        """Run a batch event by event, with TigerBeetle's linked chains."""
        if not events:
            return []
        count = len(events)
        # No event is stamped before the clock, and each after the one before.
        batch_timestamp = max(self._clock() + count - 1, self._last_timestamp + count)
        self._last_timestamp = batch_timestamp
        results: list[tuple[str, int]] = []
        chain_start: int | None = None
        chain_broken = False
        for index, event in enumerate(events):
            linked = bool(event.flags & 1)  # `linked` is bit 0 of both flag sets
            timestamp = batch_timestamp - count + index + 1
            if linked and chain_start is None:
                chain_start = index
                self._journal = _Journal(active=True)
            if linked and index == count - 1:
                status = "linked_event_chain_open"
            elif chain_broken:
                status = "linked_event_failed"
            elif event.timestamp != 0:
                status = "timestamp_must_be_zero"
            else:
                status = create(event, timestamp)
            if status != "created" and chain_start is not None and not chain_broken:
                chain_broken = True
                self._rollback()
                for earlier in range(chain_start, index):
                    results[earlier] = ("linked_event_failed", 0)
            results.append((status, timestamp if status == "created" else 0))
            if chain_start is not None and (not linked or status == "linked_event_chain_open"):
                if not chain_broken:
                    self._journal = _Journal()
                chain_start = None
                chain_broken = False
        self._journal = _Journal()
        return results

    # -- writes, with undo ---------------------------------------------------------------------

    def _put(self, objects: dict[int, Any], key: int, value: object) -> None:
        if self._journal.active:
            self._journal.entries.append((objects, key, objects.get(key, _MISSING)))
        objects[key] = value

    def _rollback(self) -> None:
        for objects, key, old in reversed(self._journal.entries):
            if old is _MISSING:
                del objects[key]
            else:
                objects[key] = old
        self._journal = _Journal()

    def _store_account(self, account: Account) -> None:
        self._put(self._accounts, account.id, account)

    def _store_transfer(self, transfer: Transfer) -> None:
        self._put(self._transfers, transfer.id, transfer)

    def _set_pending_status(self, pending_id: int, status: _PendingStatus) -> None:
        self._put(self._pending_status, pending_id, status)

    def _move_balances(self, dr: Account, cr: Account, transfer: Transfer) -> None:
        """Store both accounts' new balances, and their history for accounts that keep one."""
        self._store_account(dr)
        self._store_account(cr)
        for account in (dr, cr):
            if account.flags & AccountFlags.HISTORY:
                balance = AccountBalance(
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                    transfer.timestamp,
                )
                history = self._history.get(account.id, ())
                self._put(self._history, account.id, (*history, (balance, transfer)))

    # -- accounts ------------------------------------------------------------------------------

    def _create_account(self, a: Account, timestamp: int) -> str:
        if int(a.flags) & ~int(_ACCOUNT_FLAGS_SUPPORTED):
            return "reserved_flag"
        if a.id == 0:
            return "id_must_not_be_zero"
        if a.id == U128_MAX:
            return "id_must_not_be_int_max"
        existing = self._accounts.get(a.id)
        if existing is not None:
            return _account_exists(a, existing)
        both = (
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        )
        if a.flags & both == both:
            return "flags_are_mutually_exclusive"
        for balance in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
            if getattr(a, balance) != 0:
                return f"{balance}_must_be_zero"
        if a.ledger == 0:
            return "ledger_must_not_be_zero"
        if a.code == 0:
            return "code_must_not_be_zero"
        self._store_account(replace(a, timestamp=timestamp))
        return "created"

    # -- transfers -----------------------------------------------------------------------------

    def _create_transfer(self, t: Transfer, timestamp: int) -> str:
        if int(t.flags) & ~int(_TRANSFER_FLAGS_SUPPORTED):
            return "reserved_flag"
        if t.id == 0:
            return "id_must_not_be_zero"
        if t.id == U128_MAX:
            return "id_must_not_be_int_max"
        existing = self._transfers.get(t.id)
        if existing is not None:
            return self._transfer_exists(t, existing)
        if t.id in self._failed_ids:
            return "id_already_failed"
        if t.flags & (TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER):
            return self._post_or_void_pending_transfer(t, timestamp)

        for side in ("debit", "credit"):
            account_id = getattr(t, f"{side}_account_id")
            if account_id == 0:
                return f"{side}_account_id_must_not_be_zero"
            if account_id == U128_MAX:
                return f"{side}_account_id_must_not_be_int_max"
        if t.debit_account_id == t.credit_account_id:
            return "accounts_must_be_different"
        if t.pending_id != 0:
            return "pending_id_must_be_zero"
        pending = bool(t.flags & TransferFlags.PENDING)
        if not pending and t.timeout != 0:
            return "timeout_reserved_for_pending_transfer"
        if t.ledger == 0:
            return "ledger_must_not_be_zero"
        if t.code == 0:
            return "code_must_not_be_zero"
        dr = self._accounts.get(t.debit_account_id)
        if dr is None:
            return "debit_account_not_found"
        cr = self._accounts.get(t.credit_account_id)
        if cr is None:
            return "credit_account_not_found"
        if dr.ledger != cr.ledger:
            return "accounts_must_have_the_same_ledger"
        if t.ledger != dr.ledger:
            return "transfer_must_have_the_same_ledger_as_accounts"

        amount = t.amount
        if t.flags & TransferFlags.BALANCING_DEBIT:
            amount = min(amount, max(0, dr.credits_posted - dr.debits_posted - dr.debits_pending))
        if t.flags & TransferFlags.BALANCING_CREDIT:
            amount = min(amount, max(0, cr.debits_posted - cr.credits_posted - cr.credits_pending))

        if pending:
            if amount + dr.debits_pending > U128_MAX:
                return "overflows_debits_pending"
            if amount + cr.credits_pending > U128_MAX:
                return "overflows_credits_pending"
        if amount + dr.debits_posted > U128_MAX:
            return "overflows_debits_posted"
        if amount + cr.credits_posted > U128_MAX:
            return "overflows_credits_posted"
        if amount + dr.debits_pending + dr.debits_posted > U128_MAX:
            return "overflows_debits"
        if amount + cr.credits_pending + cr.credits_posted > U128_MAX:
            return "overflows_credits"
        if timestamp + t.timeout * _NS_PER_S > _TIMESTAMP_MAX:
            return "overflows_timeout"
        if dr.debits_exceed_credits(amount):
            return "exceeds_credits"
        if cr.credits_exceed_debits(amount):
            return "exceeds_debits"

        created = replace(t, amount=amount, timestamp=timestamp)
        self._store_transfer(created)
        if pending:
            self._set_pending_status(t.id, _PendingStatus.PENDING)
            dr = replace(dr, debits_pending=dr.debits_pending + amount)
            cr = replace(cr, credits_pending=cr.credits_pending + amount)
        else:
            dr = replace(dr, debits_posted=dr.debits_posted + amount)
            cr = replace(cr, credits_posted=cr.credits_posted + amount)
        self._move_balances(dr, cr, created)
        return "created"

    def _post_or_void_pending_transfer(self, t: Transfer, timestamp: int) -> str:
        post = bool(t.flags & TransferFlags.POST_PENDING_TRANSFER)
        void = bool(t.flags & TransferFlags.VOID_PENDING_TRANSFER)
        exclusive = (
            TransferFlags.PENDING | TransferFlags.BALANCING_DEBIT | TransferFlags.BALANCING_CREDIT
        )
        if (post and void) or t.flags & exclusive:
            return "flags_are_mutually_exclusive"
        if t.pending_id == 0:
            return "pending_id_must_not_be_zero"
        if t.pending_id == U128_MAX:
            return "pending_id_must_not_be_int_max"
        if t.pending_id == t.id:
            return "pending_id_must_be_different"
        if t.timeout != 0:
            return "timeout_reserved_for_pending_transfer"
        p = self._transfers.get(t.pending_id)
        if p is None:
            return "pending_transfer_not_found"
        if not p.flags & TransferFlags.PENDING:
            return "pending_transfer_not_pending"
        for field_name in ("debit_account_id", "credit_account_id", "ledger", "code"):
            value = getattr(t, field_name)
            if value != 0 and value != getattr(p, field_name):
                return f"pending_transfer_has_different_{field_name}"
        if void:
            amount = t.amount if t.amount > 0 else p.amount
        else:
            amount = p.amount if t.amount == AMOUNT_MAX else t.amount
        if amount > p.amount:
            return "exceeds_pending_transfer_amount"
        if void and amount < p.amount:
            return "pending_transfer_has_different_amount"
        status = self._pending_status[p.id]
        if status is _PendingStatus.EXPIRED:
            return "pending_transfer_expired"
        if status is not _PendingStatus.PENDING:
            return f"pending_transfer_already_{status}"  # posted, voided
        if p.timeout and p.timestamp + p.timeout * _NS_PER_S <= timestamp:
            return "pending_transfer_expired"

        resolving = Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            pending_id=t.pending_id,
            user_data_128=t.user_data_128 or p.user_data_128,
            user_data_64=t.user_data_64 or p.user_data_64,
            user_data_32=t.user_data_32 or p.user_data_32,
            timeout=0,
            ledger=p.ledger,
            code=p.code,
            flags=t.flags,
            timestamp=timestamp,
        )
        self._store_transfer(resolving)
        self._set_pending_status(p.id, _PendingStatus.POSTED if post else _PendingStatus.VOIDED)
        dr = self._accounts[p.debit_account_id]
        cr = self._accounts[p.credit_account_id]
        dr = replace(dr, debits_pending=dr.debits_pending - p.amount)
        cr = replace(cr, credits_pending=cr.credits_pending - p.amount)
        if post:
            dr = replace(dr, debits_posted=dr.debits_posted + amount)
            cr = replace(cr, credits_posted=cr.credits_posted + amount)
        self._move_balances(dr, cr, resolving)
        return "created"

    def _transfer_exists(self, t: Transfer, e: Transfer) -> str:
        if t.flags != e.flags:
            return "exists_with_different_flags"
        if t.pending_id != e.pending_id:
            return "exists_with_different_pending_id"
        if t.timeout != e.timeout:
            return "exists_with_different_timeout"
        if t.flags & (TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER):
            return _post_or_void_exists(t, e, self._transfers[t.pending_id])
        if t.debit_account_id != e.debit_account_id:
            return "exists_with_different_debit_account_id"
        if t.credit_account_id != e.credit_account_id:
            return "exists_with_different_credit_account_id"
        if t.flags & (TransferFlags.BALANCING_DEBIT | TransferFlags.BALANCING_CREDIT):
            if t.amount < e.amount:
                return "exists_with_different_amount"
        elif t.amount != e.amount:
            return "exists_with_different_amount"
        for field_name in ("user_data_128", "user_data_64", "user_data_32", "ledger", "code"):
            if getattr(t, field_name) != getattr(e, field_name):
                return f"exists_with_different_{field_name}"
        return "exists"

    # -- expiry --------------------------------------------------------------------------------

    def _expire_pending(self) -> None:
        """Release pending transfers whose timeout has passed (TigerBeetle's pulse)."""
        now = max(self._clock(), self._last_timestamp)
        for pending_id, status in list(self._pending_status.items()):
            if status is not _PendingStatus.PENDING:
                continue
            p = self._transfers[pending_id]
            if p.timeout == 0 or p.timestamp + p.timeout * _NS_PER_S > now:
                continue
            self._pending_status[pending_id] = _PendingStatus.EXPIRED
            dr = self._accounts[p.debit_account_id]
            cr = self._accounts[p.credit_account_id]
            self._accounts[dr.id] = replace(dr, debits_pending=dr.debits_pending - p.amount)
            self._accounts[cr.id] = replace(cr, credits_pending=cr.credits_pending - p.amount)

    # -- queries -------------------------------------------------------------------------------

    def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        self._expire_pending()
        return [self._accounts[id_] for id_ in ids if id_ in self._accounts]

    def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        return [self._transfers[id_] for id_ in ids if id_ in self._transfers]

    def get_account_transfers(self, account_filter: AccountFilter) -> list[Transfer]:
        if not _valid_filter(account_filter):
            return []
        self._expire_pending()
        flags = account_filter.flags
        found = [
            t
            for t in self._transfers.values()
            if (
                (
                    flags & AccountFilterFlags.DEBITS
                    and t.debit_account_id == account_filter.account_id
                )
                or (
                    flags & AccountFilterFlags.CREDITS
                    and t.credit_account_id == account_filter.account_id
                )
            )
            and _matches(account_filter, t.timestamp, t)
        ]
        return _page(found, account_filter)

    def get_account_balances(self, account_filter: AccountFilter) -> list[AccountBalance]:
        if not _valid_filter(account_filter):
            return []
        account = self._accounts.get(account_filter.account_id)
        if account is None or not account.flags & AccountFlags.HISTORY:
            return []
        flags = account_filter.flags
        found = []
        for balance, t in self._history.get(account.id, ()):
            side_matches = (
                flags & AccountFilterFlags.DEBITS and t.debit_account_id == account.id
            ) or (flags & AccountFilterFlags.CREDITS and t.credit_account_id == account.id)
            if side_matches and _matches(account_filter, balance.timestamp, t):
                found.append(balance)
        return _page(found, account_filter)


def _account_exists(a: Account, e: Account) -> str:
    if a.flags != e.flags:
        return "exists_with_different_flags"
    for field_name in ("user_data_128", "user_data_64", "user_data_32", "ledger", "code"):
        if getattr(a, field_name) != getattr(e, field_name):
            return f"exists_with_different_{field_name}"
    return "exists"


def _post_or_void_exists(t: Transfer, e: Transfer, p: Transfer) -> str:
    """The idempotency check of a post or void: zero fields mean "as the pending transfer"."""
    if t.debit_account_id not in (0, e.debit_account_id):
        return "exists_with_different_debit_account_id"
    if t.credit_account_id not in (0, e.credit_account_id):
        return "exists_with_different_credit_account_id"
    if t.flags & TransferFlags.VOID_PENDING_TRANSFER:
        asked = p.amount if t.amount == 0 else t.amount
    else:
        asked = p.amount if t.amount == AMOUNT_MAX else t.amount
    if asked != e.amount:
        return "exists_with_different_amount"
    for field_name in ("user_data_128", "user_data_64", "user_data_32"):
        asked_data = getattr(t, field_name) or getattr(p, field_name)
        if asked_data != getattr(e, field_name):
            return f"exists_with_different_{field_name}"
    if t.ledger not in (0, e.ledger):
        return "exists_with_different_ledger"
    if t.code not in (0, e.code):
        return "exists_with_different_code"
    return "exists"


def _valid_filter(account_filter: AccountFilter) -> bool:
    """TigerBeetle answers nothing to a filter it considers invalid."""
    f = account_filter
    if f.account_id in (0, U128_MAX) or f.limit == 0:
        return False
    if not f.flags & (AccountFilterFlags.DEBITS | AccountFilterFlags.CREDITS):
        return False
    return not (f.timestamp_min and f.timestamp_max and f.timestamp_min > f.timestamp_max)


def _matches(account_filter: AccountFilter, timestamp: int, t: Transfer) -> bool:
    f = account_filter
    if f.timestamp_min and timestamp < f.timestamp_min:
        return False
    if f.timestamp_max and timestamp > f.timestamp_max:
        return False
    if f.code and t.code != f.code:
        return False
    return all(
        not getattr(f, name) or getattr(t, name) == getattr(f, name)
        for name in ("user_data_128", "user_data_64", "user_data_32")
    )


def _page(found: list[_Row], account_filter: AccountFilter) -> list[_Row]:
    ordered = sorted(found, key=lambda item: item.timestamp)
    if account_filter.flags & AccountFilterFlags.REVERSED:
        ordered.reverse()
    return ordered[: account_filter.limit]


class InProcessLedger:
    """A `Ledger` in memory: TigerBeetle's semantics, deterministic, for dev and tests.

    Each call runs to completion without awaiting, so concurrent callers see each
    batch as atomic, as with a TigerBeetle cluster.
    """

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._machine = LedgerStateMachine(clock)

    async def create_accounts(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        return self._machine.create_accounts(accounts)

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        return self._machine.create_transfers(transfers)

    async def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        return self._machine.lookup_accounts(ids)

    async def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        return self._machine.lookup_transfers(ids)

    async def get_account_transfers(self, account_filter: AccountFilter) -> list[Transfer]:
        return self._machine.get_account_transfers(account_filter)

    async def get_account_balances(self, account_filter: AccountFilter) -> list[AccountBalance]:
        return self._machine.get_account_balances(account_filter)


def all_applied(results: Iterable[CreateTransferResult | CreateAccountResult]) -> bool:
    """Whether every event of a batch is now in the ledger as asked (`created` or `exists`)."""
    return all(result.applied for result in results)
