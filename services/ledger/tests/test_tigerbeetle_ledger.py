"""The TigerBeetle adapter without a server: conversions, selection, reachability.

Its behavior against a real cluster is the shared suite in test_ledger.py (the
`tigerbeetle` parameter of the `ledger` fixture).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import tigerbeetle as tb

from billing_ledger.ledger import (
    Account,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    InProcessLedger,
    Ledger,
    Transfer,
    TransferFlags,
)
from billing_ledger.tigerbeetle_ledger import (
    TIGERBEETLE_ADDRESSES,
    TigerBeetleLedger,
    _account,
    _host_port,
    _tb_account,
    _tb_transfer,
    _transfer,
    ledger_from_env,
    reachable,
)


class RecordingClient:
    """Stands in for `tb.ClientAsync`: records what it is sent, answers with tb types."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.closed = False

    async def create_accounts(self, accounts: list[Any]) -> list[Any]:
        self.sent.append(("create_accounts", accounts))
        return [
            tb.CreateAccountResult(timestamp=7, status=tb.CreateAccountStatus.CREATED),
            tb.CreateAccountResult(
                timestamp=0, status=tb.CreateAccountStatus.EXISTS_WITH_DIFFERENT_CODE
            ),
        ]

    async def create_transfers(self, transfers: list[Any]) -> list[Any]:
        self.sent.append(("create_transfers", transfers))
        return [
            tb.CreateTransferResult(timestamp=0, status=tb.CreateTransferStatus.EXCEEDS_CREDITS)
        ]

    async def lookup_accounts(self, ids: list[int]) -> list[Any]:
        self.sent.append(("lookup_accounts", ids))
        return [
            tb.Account(
                id=ids[0],
                ledger=840,
                code=1,
                credits_posted=5,
                flags=tb.AccountFlags.HISTORY,
                timestamp=9,
            )
        ]

    async def lookup_transfers(self, ids: list[int]) -> list[Any]:
        self.sent.append(("lookup_transfers", ids))
        return [
            tb.Transfer(
                id=ids[0],
                debit_account_id=1,
                credit_account_id=2,
                amount=3,
                ledger=840,
                code=1,
                flags=tb.TransferFlags.PENDING,
                timeout=4,
                timestamp=10,
            )
        ]

    async def get_account_transfers(self, account_filter: Any) -> list[Any]:
        self.sent.append(("get_account_transfers", account_filter))
        return []

    async def get_account_balances(self, account_filter: Any) -> list[Any]:
        self.sent.append(("get_account_balances", account_filter))
        return [
            tb.AccountBalance(
                debits_pending=1, debits_posted=2, credits_pending=3, credits_posted=4, timestamp=5
            )
        ]

    async def close(self) -> None:
        self.closed = True


async def test_requests_and_answers_convert_field_for_field() -> None:
    client = RecordingClient()
    async with TigerBeetleLedger(client) as ledger:
        assert isinstance(ledger, Ledger)
        accounts = [
            Account(id=1, ledger=840, code=1, flags=AccountFlags.LINKED, user_data_64=6),
            Account(id=2, ledger=840, code=2),
        ]
        results = await ledger.create_accounts(accounts)
        assert [(r.status, r.timestamp) for r in results] == [
            (CreateAccountStatus.CREATED, 7),
            (CreateAccountStatus.EXISTS_WITH_DIFFERENT_CODE, 0),
        ]
        sent = client.sent[-1][1][0]
        assert (sent.id, sent.flags, sent.user_data_64) == (1, tb.AccountFlags.LINKED, 6)

        move = Transfer(
            id=3,
            debit_account_id=1,
            credit_account_id=2,
            amount=2**127,
            ledger=840,
            code=1,
            flags=TransferFlags.PENDING | TransferFlags.LINKED,
            timeout=9,
        )
        (result,) = await ledger.create_transfers([move])
        assert result.status is CreateTransferStatus.EXCEEDS_CREDITS
        sent = client.sent[-1][1][0]
        assert (sent.amount, sent.timeout) == (2**127, 9)
        assert sent.flags == tb.TransferFlags.PENDING | tb.TransferFlags.LINKED

        (found,) = await ledger.lookup_accounts([11])
        assert found == Account(
            id=11, ledger=840, code=1, credits_posted=5, flags=AccountFlags.HISTORY, timestamp=9
        )
        (stored,) = await ledger.lookup_transfers([12])
        assert stored == Transfer(
            id=12,
            debit_account_id=1,
            credit_account_id=2,
            amount=3,
            ledger=840,
            code=1,
            flags=TransferFlags.PENDING,
            timeout=4,
            timestamp=10,
        )

        query = AccountFilter(account_id=1, code=4, limit=10, flags=AccountFilterFlags.CREDITS)
        assert await ledger.get_account_transfers(query) == []
        sent_filter = client.sent[-1][1]
        assert (sent_filter.account_id, sent_filter.code, sent_filter.limit) == (1, 4, 10)
        assert sent_filter.flags == tb.AccountFilterFlags.CREDITS
        (history,) = await ledger.get_account_balances(query)
        assert (history.debits_posted, history.timestamp) == (2, 5)
    assert client.closed


async def test_empty_batches_do_not_reach_the_cluster() -> None:
    client = RecordingClient()
    ledger = TigerBeetleLedger(client)
    assert await ledger.create_accounts([]) == []
    assert await ledger.create_transfers([]) == []
    assert await ledger.lookup_accounts([]) == []
    assert await ledger.lookup_transfers([]) == []
    assert client.sent == []


def test_in_process_ledger_without_the_variable() -> None:
    assert isinstance(ledger_from_env({}), InProcessLedger)
    assert isinstance(ledger_from_env({TIGERBEETLE_ADDRESSES: "  "}), InProcessLedger)


async def test_tigerbeetle_ledger_with_the_variable() -> None:
    ledger = ledger_from_env({TIGERBEETLE_ADDRESSES: "127.0.0.1:1"})
    assert isinstance(ledger, TigerBeetleLedger)
    await ledger.close()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("3000", ("127.0.0.1", 3000)),
        ("db:3001", ("db", 3001)),
        ("10.0.0.1", ("10.0.0.1", 3000)),
        ("[::1]:3002", ("::1", 3002)),
    ],
)
def test_addresses_read_as_tigerbeetle_reads_them(address: str, expected: tuple[str, int]) -> None:
    assert _host_port(address) == expected


async def test_reachable_only_when_something_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert await reachable(str(port))
    assert not await reachable(f"127.0.0.1:{port}", timeout_s=0.5)
    assert not await reachable("")


def test_records_cross_to_the_client_and_back_field_for_field() -> None:
    account = Account(
        id=7,
        ledger=840,
        code=1,
        user_data_128=11,
        user_data_64=12,
        user_data_32=13,
        debits_pending=1,
        debits_posted=2,
        credits_pending=3,
        credits_posted=4,
        flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY,
        timestamp=99,
    )
    transfer = Transfer(
        id=8,
        debit_account_id=7,
        credit_account_id=9,
        amount=10**30,
        pending_id=5,
        user_data_128=21,
        user_data_64=22,
        user_data_32=23,
        timeout=60,
        ledger=840,
        code=2,
        flags=TransferFlags.PENDING | TransferFlags.LINKED,
        timestamp=100,
    )
    client_account = _tb_account(account)
    assert isinstance(client_account, tb.Account)
    assert client_account.credits_posted == 4
    assert _account(client_account) == account
    client_transfer = _tb_transfer(transfer)
    assert isinstance(client_transfer, tb.Transfer)
    assert client_transfer.amount == 10**30
    assert _transfer(client_transfer) == transfer
