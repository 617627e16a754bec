"""`TigerBeetleLedger`: the `Ledger` protocol on a TigerBeetle cluster, through `tigerbeetle`.

Chosen when `TIGERBEETLE_ADDRESSES` is set (`ledger_from_env`); otherwise the
service runs on `InProcessLedger`, which has the same semantics in memory.
The conversion is field for field: our flags have TigerBeetle's bits and our
statuses its names.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Self

import tigerbeetle as tb

from billing_ledger.ledger import (
    Account,
    AccountBalance,
    AccountFilter,
    AccountFlags,
    CreateAccountResult,
    CreateAccountStatus,
    CreateTransferResult,
    CreateTransferStatus,
    InProcessLedger,
    Ledger,
    Transfer,
    TransferFlags,
)

__all__ = ["TIGERBEETLE_ADDRESSES", "TigerBeetleLedger", "ledger_from_env", "reachable"]

#: The environment variable that selects TigerBeetle: its replicas' addresses, comma-separated.
TIGERBEETLE_ADDRESSES = "TIGERBEETLE_ADDRESSES"
_DEFAULT_PORT = 3000


class TigerBeetleLedger:
    """A `Ledger` on a TigerBeetle cluster. Close it with `await ledger.close()`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, addresses: str, cluster_id: int = 0) -> Self:
        """A ledger on the cluster at `addresses` ("3000" or "host:3000,host2:3000").

        The client connects lazily and retries forever; check `reachable` first when
        a missing server must fail fast.
        """
        return cls(tb.ClientAsync(cluster_id=cluster_id, replica_addresses=addresses))

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create_accounts(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        if not accounts:
            return []
        results = await self._client.create_accounts([_tb_account(a) for a in accounts])
        return [
            CreateAccountResult(CreateAccountStatus[r.status.name], r.timestamp) for r in results
        ]

    async def create_transfers(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        if not transfers:
            return []
        results = await self._client.create_transfers([_tb_transfer(t) for t in transfers])
        return [
            CreateTransferResult(CreateTransferStatus[r.status.name], r.timestamp) for r in results
        ]

    async def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        if not ids:
            return []
        return [_account(a) for a in await self._client.lookup_accounts(list(ids))]

    async def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        if not ids:
            return []
        return [_transfer(t) for t in await self._client.lookup_transfers(list(ids))]

    async def get_account_transfers(self, account_filter: AccountFilter) -> list[Transfer]:
        found = await self._client.get_account_transfers(_tb_filter(account_filter))
        return [_transfer(t) for t in found]

    async def get_account_balances(self, account_filter: AccountFilter) -> list[AccountBalance]:
        found = await self._client.get_account_balances(_tb_filter(account_filter))
        return [
            AccountBalance(
                debits_pending=b.debits_pending,
                debits_posted=b.debits_posted,
                credits_pending=b.credits_pending,
                credits_posted=b.credits_posted,
                timestamp=b.timestamp,
            )
            for b in found
        ]


# The records have the client's field names; only the flags change type on the way.
_ACCOUNT_FIELDS = tuple(f.name for f in fields(Account) if f.name != "flags")
_TRANSFER_FIELDS = tuple(f.name for f in fields(Transfer) if f.name != "flags")


def _tb_account(a: Account) -> Any:
    values = {name: getattr(a, name) for name in _ACCOUNT_FIELDS}
    return tb.Account(**values, flags=tb.AccountFlags(int(a.flags)))


def _account(a: Any) -> Account:
    values = {name: getattr(a, name) for name in _ACCOUNT_FIELDS}
    return Account(**values, flags=AccountFlags(int(a.flags)))


def _tb_transfer(t: Transfer) -> Any:
    values = {name: getattr(t, name) for name in _TRANSFER_FIELDS}
    return tb.Transfer(**values, flags=tb.TransferFlags(int(t.flags)))


def _transfer(t: Any) -> Transfer:
    values = {name: getattr(t, name) for name in _TRANSFER_FIELDS}
    return Transfer(**values, flags=TransferFlags(int(t.flags)))


def _tb_filter(f: AccountFilter) -> Any:
    return tb.AccountFilter(
        account_id=f.account_id,
        user_data_128=f.user_data_128,
        user_data_64=f.user_data_64,
        user_data_32=f.user_data_32,
        code=f.code,
        timestamp_min=f.timestamp_min,
        timestamp_max=f.timestamp_max,
        limit=f.limit,
        flags=tb.AccountFilterFlags(int(f.flags)),
    )


def _host_port(address: str) -> tuple[str, int]:
    """One replica address as TigerBeetle reads it: "3000", "1.2.3.4" or "host:3000"."""
    address = address.strip()
    if address.isdigit():
        return "127.0.0.1", int(address)
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, _DEFAULT_PORT
    return host.strip("[]"), int(port)


async def reachable(addresses: str, timeout_s: float = 1.0) -> bool:
    """Whether every replica in `addresses` accepts a TCP connection within `timeout_s`."""

    def probe(address: str) -> bool:
        try:
            with socket.create_connection(_host_port(address), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            return False

    checks = [asyncio.to_thread(probe, a) for a in addresses.split(",") if a.strip()]
    return bool(checks) and all(await asyncio.gather(*checks))


def ledger_from_env(env: Mapping[str, str], cluster_id: int = 0) -> Ledger:
    """`TigerBeetleLedger` on `TIGERBEETLE_ADDRESSES` when it is set, else `InProcessLedger`."""
    addresses = env.get(TIGERBEETLE_ADDRESSES, "").strip()
    if addresses:
        return TigerBeetleLedger.connect(addresses, cluster_id)
    return InProcessLedger()
