"""The ledger's behavior, run on every implementation (see the `ledger` fixture).

Ids are random so the suite also runs against a long-lived TigerBeetle cluster.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from billing_ledger.ledger import (
    AMOUNT_MAX,
    U128_MAX,
    Account,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    ChainOutcome,
    CreateAccountResult,
    CreateAccountStatus,
    CreateTransferResult,
    CreateTransferStatus,
    InProcessLedger,
    Ledger,
    ManualClock,
    Transfer,
    TransferFlags,
    all_applied,
    chain_outcome,
)

USD = 840
EUR = 978
A = CreateAccountStatus
T = CreateTransferStatus
LINKED = TransferFlags.LINKED
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING_TRANSFER
VOID = TransferFlags.VOID_PENDING_TRANSFER


def new_id() -> int:
    return uuid.uuid4().int


def account(
    flags: AccountFlags = AccountFlags.NONE, ledger: int = USD, code: int = 1, **fields: int
) -> Account:
    return Account(id=new_id(), ledger=ledger, code=code, flags=flags, **fields)


def transfer(debit: int, credit: int, amount: int, **fields: int) -> Transfer:
    values: dict[int | str, int] = {"ledger": USD, "code": 1}
    values.update(fields)
    return Transfer(
        id=new_id(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        **values,  # type: ignore[arg-type]
    )


async def open_accounts(ledger: Ledger, *flags: AccountFlags) -> list[int]:
    accounts = [account(f) for f in flags]
    results = await ledger.create_accounts(accounts)
    assert [r.status for r in results] == [A.CREATED] * len(accounts)
    return [a.id for a in accounts]


async def statuses(ledger: Ledger, *transfers: Transfer) -> list[CreateTransferStatus]:
    return [r.status for r in await ledger.create_transfers(list(transfers))]


async def balances(ledger: Ledger, account_id: int) -> tuple[int, int, int, int]:
    (found,) = await ledger.lookup_accounts([account_id])
    return (found.debits_pending, found.debits_posted, found.credits_pending, found.credits_posted)


def test_status_names_mirror_the_tigerbeetle_client() -> None:
    tb = pytest.importorskip("tigerbeetle")
    assert {s.name for s in CreateAccountStatus} == {s.name for s in tb.CreateAccountStatus}
    assert {s.name for s in CreateTransferStatus} == {s.name for s in tb.CreateTransferStatus}
    assert {f.name: f.value for f in AccountFlags} == {f.name: f.value for f in tb.AccountFlags}
    assert {f.name: f.value for f in TransferFlags} == {f.name: f.value for f in tb.TransferFlags}
    assert AMOUNT_MAX == tb.AMOUNT_MAX


# -- accounts ---------------------------------------------------------------------------------


class TestCreateAccounts:
    async def test_created_account_starts_at_zero(self, ledger: Ledger) -> None:
        new = account(AccountFlags.HISTORY, user_data_128=7, user_data_64=8, user_data_32=9)
        (result,) = await ledger.create_accounts([new])
        assert result.status is A.CREATED
        assert result.applied
        assert result.timestamp > 0
        (found,) = await ledger.lookup_accounts([new.id])
        assert found == replace(new, timestamp=found.timestamp)
        assert found.timestamp == result.timestamp

    async def test_same_account_again_exists(self, ledger: Ledger) -> None:
        new = account()
        await ledger.create_accounts([new])
        (again,) = await ledger.create_accounts([new])
        assert again.status is A.EXISTS
        assert again.applied

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"flags": AccountFlags.HISTORY}, A.EXISTS_WITH_DIFFERENT_FLAGS),
            ({"user_data_128": 1}, A.EXISTS_WITH_DIFFERENT_USER_DATA_128),
            ({"user_data_64": 1}, A.EXISTS_WITH_DIFFERENT_USER_DATA_64),
            ({"user_data_32": 1}, A.EXISTS_WITH_DIFFERENT_USER_DATA_32),
            ({"ledger": EUR}, A.EXISTS_WITH_DIFFERENT_LEDGER),
            ({"code": 2}, A.EXISTS_WITH_DIFFERENT_CODE),
        ],
    )
    async def test_same_id_with_a_different_field(
        self, ledger: Ledger, change: dict[str, int], expected: CreateAccountStatus
    ) -> None:
        new = account()
        await ledger.create_accounts([new])
        (result,) = await ledger.create_accounts([replace(new, **change)])  # type: ignore[arg-type]
        assert result.status is expected
        assert not result.applied

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"id": 0}, A.ID_MUST_NOT_BE_ZERO),
            ({"id": U128_MAX}, A.ID_MUST_NOT_BE_INT_MAX),
            ({"timestamp": 1}, A.TIMESTAMP_MUST_BE_ZERO),
            ({"flags": 1 << 10}, A.RESERVED_FLAG),
            (
                {
                    "flags": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
                },
                A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            ),
            ({"debits_pending": 1}, A.DEBITS_PENDING_MUST_BE_ZERO),
            ({"debits_posted": 1}, A.DEBITS_POSTED_MUST_BE_ZERO),
            ({"credits_pending": 1}, A.CREDITS_PENDING_MUST_BE_ZERO),
            ({"credits_posted": 1}, A.CREDITS_POSTED_MUST_BE_ZERO),
            ({"ledger": 0}, A.LEDGER_MUST_NOT_BE_ZERO),
            ({"code": 0}, A.CODE_MUST_NOT_BE_ZERO),
        ],
    )
    async def test_invalid_account_is_refused(
        self, ledger: Ledger, fields: dict[str, int], expected: CreateAccountStatus
    ) -> None:
        bad = replace(account(), **fields)  # type: ignore[arg-type]
        (result,) = await ledger.create_accounts([bad])
        assert result.status is expected
        assert await ledger.lookup_accounts([bad.id]) == []

    async def test_linked_accounts_fail_together(self, ledger: Ledger) -> None:
        first = account(AccountFlags.LINKED)
        second = account(code=0)
        independent = account()
        results = await ledger.create_accounts([first, second, independent])
        assert [r.status for r in results] == [
            A.LINKED_EVENT_FAILED,
            A.CODE_MUST_NOT_BE_ZERO,
            A.CREATED,
        ]
        found = await ledger.lookup_accounts([first.id, second.id, independent.id])
        assert [a.id for a in found] == [independent.id]

    async def test_linked_accounts_succeed_together(self, ledger: Ledger) -> None:
        first, second = account(AccountFlags.LINKED), account()
        results = await ledger.create_accounts([first, second])
        assert [r.status for r in results] == [A.CREATED, A.CREATED]
        assert chain_outcome(results) is ChainOutcome.APPLIED

    async def test_chain_left_open_fails(self, ledger: Ledger) -> None:
        first, last = account(AccountFlags.LINKED), account(AccountFlags.LINKED)
        results = await ledger.create_accounts([first, last])
        assert [r.status for r in results] == [A.LINKED_EVENT_FAILED, A.LINKED_EVENT_CHAIN_OPEN]
        assert await ledger.lookup_accounts([first.id, last.id]) == []

    async def test_lookup_keeps_order_and_skips_unknown_ids(self, ledger: Ledger) -> None:
        one, two = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        found = await ledger.lookup_accounts([two, new_id(), one])
        assert [a.id for a in found] == [two, one]


# -- single-phase transfers -----------------------------------------------------------------


class TestCreateTransfers:
    async def test_transfer_moves_posted_balances(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        move = transfer(dr, cr, 125, user_data_128=5)
        (result,) = await ledger.create_transfers([move])
        assert result.status is T.CREATED
        assert result.timestamp > 0
        assert await balances(ledger, dr) == (0, 125, 0, 0)
        assert await balances(ledger, cr) == (0, 0, 0, 125)
        (found,) = await ledger.lookup_transfers([move.id])
        assert found == replace(move, timestamp=result.timestamp)

    async def test_zero_amount_is_a_valid_transfer(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        assert await statuses(ledger, transfer(dr, cr, 0)) == [T.CREATED]
        assert await balances(ledger, dr) == (0, 0, 0, 0)

    async def test_same_transfer_again_exists_and_moves_nothing(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        move = transfer(dr, cr, 10)
        assert await statuses(ledger, move) == [T.CREATED]
        (again,) = await ledger.create_transfers([move])
        assert again.status is T.EXISTS
        assert again.applied
        assert await balances(ledger, dr) == (0, 10, 0, 0)

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"flags": PENDING}, T.EXISTS_WITH_DIFFERENT_FLAGS),
            ({"pending_id": 1}, T.EXISTS_WITH_DIFFERENT_PENDING_ID),
            ({"timeout": 1}, T.EXISTS_WITH_DIFFERENT_TIMEOUT),
            ({"debit_account_id": "other"}, T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
            ({"credit_account_id": "other"}, T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
            ({"amount": 11}, T.EXISTS_WITH_DIFFERENT_AMOUNT),
            ({"user_data_128": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_128),
            ({"user_data_64": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_64),
            ({"user_data_32": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_32),
            ({"ledger": EUR}, T.EXISTS_WITH_DIFFERENT_LEDGER),
            ({"code": 2}, T.EXISTS_WITH_DIFFERENT_CODE),
        ],
    )
    async def test_same_id_with_a_different_field(
        self, ledger: Ledger, change: dict[str, object], expected: CreateTransferStatus
    ) -> None:
        dr, cr, other = await open_accounts(ledger, *[AccountFlags.NONE] * 3)
        move = transfer(dr, cr, 10)
        assert await statuses(ledger, move) == [T.CREATED]
        fields = {key: other if value == "other" else value for key, value in change.items()}
        (result,) = await ledger.create_transfers([replace(move, **fields)])  # type: ignore[arg-type]
        assert result.status is expected
        assert await balances(ledger, dr) == (0, 10, 0, 0)

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"timestamp": 1}, T.TIMESTAMP_MUST_BE_ZERO),
            ({"flags": 1 << 12}, T.RESERVED_FLAG),
            ({"id": 0}, T.ID_MUST_NOT_BE_ZERO),
            ({"id": U128_MAX}, T.ID_MUST_NOT_BE_INT_MAX),
            ({"debit_account_id": 0}, T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
            ({"debit_account_id": U128_MAX}, T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
            ({"credit_account_id": 0}, T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
            ({"credit_account_id": U128_MAX}, T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
            ({"credit_account_id": "debit"}, T.ACCOUNTS_MUST_BE_DIFFERENT),
            ({"pending_id": 5}, T.PENDING_ID_MUST_BE_ZERO),
            ({"timeout": 5}, T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
            ({"ledger": 0}, T.LEDGER_MUST_NOT_BE_ZERO),
            ({"code": 0}, T.CODE_MUST_NOT_BE_ZERO),
            ({"debit_account_id": "unknown"}, T.DEBIT_ACCOUNT_NOT_FOUND),
            ({"credit_account_id": "unknown"}, T.CREDIT_ACCOUNT_NOT_FOUND),
            ({"credit_account_id": "eur"}, T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
            ({"ledger": EUR}, T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS),
        ],
    )
    async def test_invalid_transfer_is_refused(
        self, ledger: Ledger, fields: dict[str, object], expected: CreateTransferStatus
    ) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        eur = account(ledger=EUR)
        await ledger.create_accounts([eur])
        named = {"debit": dr, "unknown": new_id(), "eur": eur.id}
        values = {k: named[v] if isinstance(v, str) else v for k, v in fields.items()}
        bad = replace(transfer(dr, cr, 10), **values)  # type: ignore[arg-type]
        (result,) = await ledger.create_transfers([bad])
        assert result.status is expected
        assert not result.applied
        assert await ledger.lookup_transfers([bad.id]) == []
        assert await balances(ledger, dr) == (0, 0, 0, 0)

    async def test_an_id_that_failed_transiently_cannot_be_reused(self, ledger: Ledger) -> None:
        (dr,) = await open_accounts(ledger, AccountFlags.NONE)
        late = account()
        move = transfer(dr, late.id, 10)
        assert await statuses(ledger, move) == [T.CREDIT_ACCOUNT_NOT_FOUND]
        await ledger.create_accounts([late])
        assert await statuses(ledger, move) == [T.ID_ALREADY_FAILED]
        assert await statuses(ledger, replace(move, id=new_id())) == [T.CREATED]

    async def test_an_id_that_failed_validation_can_be_reused(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        move = transfer(dr, cr, 10)
        assert await statuses(ledger, replace(move, code=0)) == [T.CODE_MUST_NOT_BE_ZERO]
        assert await statuses(ledger, move) == [T.CREATED]


class TestLinkedTransfers:
    async def test_chain_failure_rolls_back_the_whole_chain(self, ledger: Ledger) -> None:
        dr, cr, limited = await open_accounts(
            ledger,
            AccountFlags.NONE,
            AccountFlags.NONE,
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        first = transfer(dr, cr, 10, flags=LINKED)
        second = transfer(cr, dr, 3, flags=LINKED)
        failing = transfer(limited, cr, 1, flags=LINKED)
        last = transfer(dr, cr, 4)
        after = transfer(dr, cr, 1)
        results = await ledger.create_transfers([first, second, failing, last, after])
        assert [r.status for r in results] == [
            T.LINKED_EVENT_FAILED,
            T.LINKED_EVENT_FAILED,
            T.EXCEEDS_CREDITS,
            T.LINKED_EVENT_FAILED,
            T.CREATED,
        ]
        assert chain_outcome(results[:4]) is ChainOutcome.REJECTED
        found = await ledger.lookup_transfers([t.id for t in (first, second, failing, last)])
        assert found == []
        assert await balances(ledger, dr) == (0, 1, 0, 0)
        assert await balances(ledger, cr) == (0, 0, 0, 1)

    async def test_chain_applies_whole_and_again_answers_exists(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        chain = [transfer(dr, cr, 10, flags=LINKED), transfer(dr, cr, 5)]
        first = await ledger.create_transfers(chain)
        assert chain_outcome(first) is ChainOutcome.APPLIED
        assert all_applied(first)
        again = await ledger.create_transfers(chain)
        assert [r.status for r in again] == [T.EXISTS, T.LINKED_EVENT_FAILED]
        assert chain_outcome(again) is ChainOutcome.ALREADY_APPLIED
        assert await balances(ledger, dr) == (0, 15, 0, 0)

    async def test_chain_left_open_fails(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        chain = [transfer(dr, cr, 10, flags=LINKED), transfer(dr, cr, 5, flags=LINKED)]
        results = await ledger.create_transfers(chain)
        assert [r.status for r in results] == [T.LINKED_EVENT_FAILED, T.LINKED_EVENT_CHAIN_OPEN]
        assert await balances(ledger, dr) == (0, 0, 0, 0)

    async def test_two_chains_in_one_batch_are_independent(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        failing = [transfer(dr, cr, 1, flags=LINKED), transfer(dr, cr, 2, code=0)]
        passing = [transfer(dr, cr, 3, flags=LINKED), transfer(dr, cr, 4)]
        assert await statuses(ledger, *failing, *passing) == [
            T.LINKED_EVENT_FAILED,
            T.CODE_MUST_NOT_BE_ZERO,
            T.CREATED,
            T.CREATED,
        ]
        assert await balances(ledger, dr) == (0, 7, 0, 0)


# -- two-phase transfers --------------------------------------------------------------------


class TestPendingTransfers:
    async def _pending(self, ledger: Ledger, amount: int = 100) -> tuple[int, int, Transfer]:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        hold = transfer(dr, cr, amount, flags=PENDING, user_data_64=42)
        assert await statuses(ledger, hold) == [T.CREATED]
        assert await balances(ledger, dr) == (amount, 0, 0, 0)
        assert await balances(ledger, cr) == (0, 0, amount, 0)
        return dr, cr, hold

    async def test_post_the_full_amount(self, ledger: Ledger) -> None:
        dr, cr, hold = await self._pending(ledger)
        post = Transfer(id=new_id(), pending_id=hold.id, amount=AMOUNT_MAX, flags=POST)
        assert await statuses(ledger, post) == [T.CREATED]
        assert await balances(ledger, dr) == (0, 100, 0, 0)
        assert await balances(ledger, cr) == (0, 0, 0, 100)
        (stored,) = await ledger.lookup_transfers([post.id])
        assert (stored.amount, stored.debit_account_id, stored.credit_account_id) == (100, dr, cr)
        assert (stored.ledger, stored.code, stored.user_data_64) == (USD, 1, 42)

    async def test_post_part_releases_the_rest(self, ledger: Ledger) -> None:
        dr, cr, hold = await self._pending(ledger)
        post = Transfer(id=new_id(), pending_id=hold.id, amount=60, flags=POST)
        assert await statuses(ledger, post) == [T.CREATED]
        assert await balances(ledger, dr) == (0, 60, 0, 0)
        assert await balances(ledger, cr) == (0, 0, 0, 60)

    async def test_void_releases_everything(self, ledger: Ledger) -> None:
        dr, cr, hold = await self._pending(ledger)
        void = Transfer(id=new_id(), pending_id=hold.id, flags=VOID)
        assert await statuses(ledger, void) == [T.CREATED]
        assert await balances(ledger, dr) == (0, 0, 0, 0)
        assert await balances(ledger, cr) == (0, 0, 0, 0)

    async def test_a_pending_transfer_resolves_once(self, ledger: Ledger) -> None:
        _, _, posted = await self._pending(ledger)
        post = Transfer(id=new_id(), pending_id=posted.id, amount=AMOUNT_MAX, flags=POST)
        assert await statuses(ledger, post) == [T.CREATED]
        again = Transfer(id=new_id(), pending_id=posted.id, amount=AMOUNT_MAX, flags=POST)
        void = Transfer(id=new_id(), pending_id=posted.id, flags=VOID)
        assert await statuses(ledger, again, void) == [
            T.PENDING_TRANSFER_ALREADY_POSTED,
            T.PENDING_TRANSFER_ALREADY_POSTED,
        ]
        _, _, voided = await self._pending(ledger)
        void = Transfer(id=new_id(), pending_id=voided.id, flags=VOID)
        assert await statuses(ledger, void) == [T.CREATED]
        post = Transfer(id=new_id(), pending_id=voided.id, amount=1, flags=POST)
        assert await statuses(ledger, post) == [T.PENDING_TRANSFER_ALREADY_VOIDED]

    async def test_resubmitted_post_exists(self, ledger: Ledger) -> None:
        _, _, hold = await self._pending(ledger)
        post = Transfer(id=new_id(), pending_id=hold.id, amount=AMOUNT_MAX, flags=POST)
        assert await statuses(ledger, post) == [T.CREATED]
        assert await statuses(ledger, post) == [T.EXISTS]
        assert await statuses(ledger, replace(post, amount=100)) == [T.EXISTS]
        assert await statuses(ledger, replace(post, amount=99)) == [T.EXISTS_WITH_DIFFERENT_AMOUNT]
        assert await statuses(ledger, replace(post, user_data_32=3)) == [
            T.EXISTS_WITH_DIFFERENT_USER_DATA_32
        ]
        assert await statuses(ledger, replace(post, flags=VOID)) == [T.EXISTS_WITH_DIFFERENT_FLAGS]

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"flags": POST | VOID}, T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
            ({"flags": POST | PENDING}, T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
            ({"flags": POST | TransferFlags.BALANCING_DEBIT}, T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
            ({"pending_id": 0}, T.PENDING_ID_MUST_NOT_BE_ZERO),
            ({"pending_id": U128_MAX}, T.PENDING_ID_MUST_NOT_BE_INT_MAX),
            ({"pending_id": "self"}, T.PENDING_ID_MUST_BE_DIFFERENT),
            ({"timeout": 1}, T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
            ({"pending_id": "unknown"}, T.PENDING_TRANSFER_NOT_FOUND),
            ({"pending_id": "single_phase"}, T.PENDING_TRANSFER_NOT_PENDING),
            ({"debit_account_id": "other"}, T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID),
            ({"credit_account_id": "other"}, T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID),
            ({"ledger": EUR}, T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER),
            ({"code": 9}, T.PENDING_TRANSFER_HAS_DIFFERENT_CODE),
            ({"amount": 101}, T.EXCEEDS_PENDING_TRANSFER_AMOUNT),
            ({"flags": VOID, "amount": 99}, T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT),
            ({"flags": VOID, "amount": 101}, T.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        ],
    )
    async def test_invalid_post_or_void_is_refused(
        self, ledger: Ledger, fields: dict[str, object], expected: CreateTransferStatus
    ) -> None:
        dr, cr, hold = await self._pending(ledger)
        (other,) = await open_accounts(ledger, AccountFlags.NONE)
        single_phase = transfer(dr, cr, 5)
        await ledger.create_transfers([single_phase])
        resolve = Transfer(id=new_id(), pending_id=hold.id, amount=50, flags=POST)
        named = {
            "self": resolve.id,
            "unknown": new_id(),
            "single_phase": single_phase.id,
            "other": other,
        }
        values = {k: named[v] if isinstance(v, str) else v for k, v in fields.items()}
        (result,) = await ledger.create_transfers([replace(resolve, **values)])  # type: ignore[arg-type]
        assert result.status is expected
        assert await balances(ledger, dr) == (100, 5, 0, 0)

    async def test_matching_optional_fields_are_accepted(self, ledger: Ledger) -> None:
        dr, cr, hold = await self._pending(ledger)
        post = Transfer(
            id=new_id(),
            pending_id=hold.id,
            debit_account_id=dr,
            credit_account_id=cr,
            ledger=USD,
            code=1,
            amount=100,
            flags=POST,
        )
        assert await statuses(ledger, post) == [T.CREATED]


class TestBalanceLimits:
    async def test_debits_must_not_exceed_credits(self, ledger: Ledger) -> None:
        funding, wallet, shop = await open_accounts(
            ledger,
            AccountFlags.NONE,
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            AccountFlags.NONE,
        )
        assert await statuses(ledger, transfer(funding, wallet, 50)) == [T.CREATED]
        assert await statuses(ledger, transfer(wallet, shop, 51)) == [T.EXCEEDS_CREDITS]
        assert await statuses(ledger, transfer(wallet, shop, 30, flags=PENDING)) == [T.CREATED]
        # The 30 held counts: only 20 are left to spend.
        assert await statuses(ledger, transfer(wallet, shop, 21)) == [T.EXCEEDS_CREDITS]
        assert await statuses(ledger, transfer(wallet, shop, 20)) == [T.CREATED]
        assert await balances(ledger, wallet) == (30, 20, 0, 50)

    async def test_credits_must_not_exceed_debits(self, ledger: Ledger) -> None:
        source, limited = await open_accounts(
            ledger, AccountFlags.NONE, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        )
        assert await statuses(ledger, transfer(source, limited, 1)) == [T.EXCEEDS_DEBITS]
        assert await statuses(ledger, transfer(limited, source, 10)) == [T.CREATED]
        assert await statuses(ledger, transfer(source, limited, 10)) == [T.CREATED]
        assert await statuses(ledger, transfer(source, limited, 1)) == [T.EXCEEDS_DEBITS]

    async def test_balancing_debit_moves_only_what_is_there(self, ledger: Ledger) -> None:
        funding, wallet, shop = await open_accounts(
            ledger,
            AccountFlags.NONE,
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            AccountFlags.NONE,
        )
        await ledger.create_transfers([transfer(funding, wallet, 30)])
        sweep = transfer(wallet, shop, 1000, flags=TransferFlags.BALANCING_DEBIT)
        assert await statuses(ledger, sweep) == [T.CREATED]
        (stored,) = await ledger.lookup_transfers([sweep.id])
        assert stored.amount == 30
        assert await balances(ledger, wallet) == (0, 30, 0, 30)
        # Resubmitting with the same upper limit is still the same transfer.
        assert await statuses(ledger, sweep) == [T.EXISTS]

    async def test_balancing_credit_moves_only_what_is_owed(self, ledger: Ledger) -> None:
        debtor, payer = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        (other,) = await open_accounts(ledger, AccountFlags.NONE)
        await ledger.create_transfers([transfer(debtor, other, 40)])
        settle = transfer(payer, debtor, 100, flags=TransferFlags.BALANCING_CREDIT)
        assert await statuses(ledger, settle) == [T.CREATED]
        assert await balances(ledger, debtor) == (0, 40, 0, 40)

    async def test_overflows(self, ledger: Ledger) -> None:
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        assert await statuses(ledger, transfer(dr, cr, U128_MAX)) == [T.CREATED]
        assert await statuses(ledger, transfer(dr, cr, 1)) == [T.OVERFLOWS_DEBITS_POSTED]
        assert await statuses(ledger, transfer(cr, dr, 1)) == [T.CREATED]  # other direction
        dr2, cr2 = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        assert await statuses(ledger, transfer(cr2, cr, 1)) == [T.OVERFLOWS_CREDITS_POSTED]
        assert await statuses(ledger, transfer(dr2, cr2, U128_MAX, flags=PENDING)) == [T.CREATED]
        assert await statuses(ledger, transfer(dr2, cr2, 1, flags=PENDING)) == [
            T.OVERFLOWS_DEBITS_PENDING
        ]
        assert await statuses(ledger, transfer(dr2, cr2, 1)) == [T.OVERFLOWS_DEBITS]
        dr3, cr3 = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        assert await statuses(ledger, transfer(dr3, cr2, 1, flags=PENDING)) == [
            T.OVERFLOWS_CREDITS_PENDING
        ]
        assert await statuses(ledger, transfer(dr3, cr2, 1)) == [T.OVERFLOWS_CREDITS]
        assert cr3 != dr3


class TestQueries:
    async def test_account_transfers_filtered_and_ordered(self, ledger: Ledger) -> None:
        me, other = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        out1, in1, out2 = (
            transfer(me, other, 1),
            transfer(other, me, 2, code=7),
            transfer(me, other, 3),
        )
        for move in (out1, in1, out2):
            assert await statuses(ledger, move) == [T.CREATED]

        def ids(found: list[Transfer]) -> list[int]:
            return [t.id for t in found]

        everything = await ledger.get_account_transfers(AccountFilter(account_id=me))
        assert ids(everything) == [out1.id, in1.id, out2.id]
        debits = AccountFilter(account_id=me, flags=AccountFilterFlags.DEBITS)
        assert ids(await ledger.get_account_transfers(debits)) == [out1.id, out2.id]
        newest = AccountFilter(
            account_id=me,
            flags=AccountFilterFlags.DEBITS
            | AccountFilterFlags.CREDITS
            | AccountFilterFlags.REVERSED,
            limit=2,
        )
        assert ids(await ledger.get_account_transfers(newest)) == [out2.id, in1.id]
        by_code = AccountFilter(account_id=me, code=7)
        assert ids(await ledger.get_account_transfers(by_code)) == [in1.id]
        window = AccountFilter(
            account_id=me,
            timestamp_min=everything[1].timestamp,
            timestamp_max=everything[1].timestamp,
        )
        assert ids(await ledger.get_account_transfers(window)) == [in1.id]
        no_side = AccountFilter(account_id=me, flags=AccountFilterFlags.NONE)
        assert await ledger.get_account_transfers(no_side) == []

    async def test_balance_history_of_an_account_with_history(self, ledger: Ledger) -> None:
        kept, plain = await open_accounts(ledger, AccountFlags.HISTORY, AccountFlags.NONE)
        for move in (transfer(kept, plain, 5), transfer(plain, kept, 2), transfer(kept, plain, 1)):
            assert await statuses(ledger, move) == [T.CREATED]
        history = await ledger.get_account_balances(AccountFilter(account_id=kept))
        assert [(b.debits_posted, b.credits_posted) for b in history] == [(5, 0), (5, 2), (6, 2)]
        assert [b.timestamp for b in history] == sorted(b.timestamp for b in history)
        assert await ledger.get_account_balances(AccountFilter(account_id=plain)) == []


# -- in-process only: time, and flags it does not support ----------------------------------


class TestInProcessTime:
    async def test_pending_transfer_expires_after_its_timeout(self) -> None:
        clock = ManualClock(1_000_000_000)
        ledger = InProcessLedger(clock)
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        hold = transfer(dr, cr, 10, flags=PENDING, timeout=60)
        assert await statuses(ledger, hold) == [T.CREATED]
        (stored,) = await ledger.lookup_transfers([hold.id])
        clock.advance(nanoseconds=stored.timestamp + 60 * 10**9 - 1 - clock())
        assert await balances(ledger, dr) == (10, 0, 0, 0)
        clock.advance(nanoseconds=1)
        assert await balances(ledger, dr) == (0, 0, 0, 0)
        post = Transfer(id=new_id(), pending_id=hold.id, amount=AMOUNT_MAX, flags=POST)
        assert await statuses(ledger, post) == [T.PENDING_TRANSFER_EXPIRED]

    async def test_timestamps_strictly_increase_on_a_stopped_clock(self) -> None:
        ledger = InProcessLedger(ManualClock(500))
        results = await ledger.create_accounts([account(), account()])
        more = await ledger.create_accounts([account()])
        stamps = [r.timestamp for r in [*results, *more]]
        assert stamps == sorted(set(stamps))
        assert stamps[0] >= 500

    async def test_timeout_overflowing_the_clock(self) -> None:
        ledger = InProcessLedger(ManualClock(2**63 - 10**9))
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        hold = transfer(dr, cr, 1, flags=PENDING, timeout=2)
        assert await statuses(ledger, hold) == [T.OVERFLOWS_TIMEOUT]

    async def test_unsupported_flags_are_reserved(self) -> None:
        ledger = InProcessLedger()
        dr, cr = await open_accounts(ledger, AccountFlags.NONE, AccountFlags.NONE)
        closing = transfer(dr, cr, 1, flags=PENDING | TransferFlags.CLOSING_DEBIT)
        assert await statuses(ledger, closing) == [T.RESERVED_FLAG]
        (result,) = await ledger.create_accounts([account(AccountFlags.IMPORTED)])
        assert result.status is A.RESERVED_FLAG

    def test_manual_clock_only_moves_forward(self) -> None:
        clock = ManualClock(5)
        clock.advance(nanoseconds=3)
        assert clock() == 8
        with pytest.raises(ValueError, match="forward"):
            clock.advance(seconds=-1)


class TestResults:
    def test_chain_outcome_of_a_mixed_batch_is_rejected(self) -> None:
        results = [
            CreateTransferResult(T.CREATED, 1),
            CreateTransferResult(T.EXISTS, 0),
        ]
        assert chain_outcome(results) is ChainOutcome.REJECTED
        with pytest.raises(ValueError, match="empty"):
            chain_outcome([])

    def test_applied_means_created_or_exists(self) -> None:
        assert CreateAccountResult(A.EXISTS).applied
        assert not CreateAccountResult(A.EXISTS_WITH_DIFFERENT_CODE).applied
        assert all_applied([CreateTransferResult(T.CREATED, 1), CreateTransferResult(T.EXISTS)])
        assert not all_applied([CreateTransferResult(T.EXCEEDS_CREDITS)])

    def test_transient_statuses(self) -> None:
        assert T.EXCEEDS_CREDITS.transient
        assert T.DEBIT_ACCOUNT_NOT_FOUND.transient
        assert not T.CODE_MUST_NOT_BE_ZERO.transient

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            ({"amount": -1}, ValueError),
            ({"amount": 2**128}, ValueError),
            ({"code": 2**16}, ValueError),
            ({"amount": 1.5}, TypeError),
            ({"amount": True}, TypeError),
        ],
    )
    def test_fields_out_of_range_are_refused_on_construction(
        self, fields: dict[str, object], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            Transfer(id=1, **fields)  # type: ignore[arg-type]
