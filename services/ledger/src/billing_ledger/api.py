"""HTTP routes the gateway forwards to: read-only, one connection per request.

Balances come from the ledger the process runs on (`books`), which `setup`
opens; until then the routes answer 503.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from billing_common.http import json_response, parse_query, tenant_of
from billing_common.ids import CustomerId
from billing_common.runtime import ServiceContext
from billing_ledger import service
from billing_ledger.books import Books
from billing_ledger.schemas import (
    LedgerAccountBalance,
    LedgerAccountListQuery,
    TrialBalanceQuery,
    parse_account_id,
)


def ledger_routes(runtime: ServiceContext, books: Callable[[], Books]) -> Sequence[BaseRoute]:
    """The routes on `runtime`'s database and the ledger `books()` answers."""

    async def list_accounts(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, LedgerAccountListQuery)
        ledger = books()
        async with runtime.pool.acquire() as conn:
            page = await service.list_accounts(ledger, conn, tenant, query)
        return json_response(page)

    async def retrieve_account(request: Request) -> Response:
        tenant = tenant_of(request)
        account_id = parse_account_id(request.path_params["account_id"])
        ledger = books()
        async with runtime.pool.acquire() as conn:
            account = await service.get_account(ledger, conn, tenant, account_id)
        return json_response(account)

    async def account_balance(request: Request) -> Response:
        tenant = tenant_of(request)
        account_id = parse_account_id(request.path_params["account_id"])
        ledger = books()
        async with runtime.pool.acquire() as conn:
            account = await service.get_account(ledger, conn, tenant, account_id)
        return json_response(LedgerAccountBalance.of(account))

    async def trial_balance(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, TrialBalanceQuery)
        ledger = books()
        async with runtime.pool.acquire() as conn:
            report = await service.get_trial_balance(ledger, conn, tenant, query)
        return json_response(report)

    async def customer_balance(request: Request) -> Response:
        tenant = tenant_of(request)
        customer_id = CustomerId.parse(request.path_params["customer_id"])
        ledger = books()
        async with runtime.pool.acquire() as conn:
            balance = await service.get_customer_balance(ledger, conn, tenant, customer_id)
        return json_response(balance)

    return [
        Route("/v1/ledger/accounts", list_accounts, methods=["GET"]),
        Route("/v1/ledger/accounts/{account_id}", retrieve_account, methods=["GET"]),
        Route("/v1/ledger/accounts/{account_id}/balance", account_balance, methods=["GET"]),
        Route("/v1/ledger/trial_balance", trial_balance, methods=["GET"]),
        Route("/v1/customers/{customer_id}/balance", customer_balance, methods=["GET"]),
    ]
