"""The routes as the gateway calls them: JSON in, JSON or problem+json out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing_common.db import Pool
from billing_common.ids import CustomerId
from billing_ledger.accounts import AccountKind, ChartOfAccounts
from billing_ledger.books import JournaledLedger

from .conftest import TENANT, USD, credit_note, invoice_finalized, line
from .test_service import post

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    return problem


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


async def posted_customer(pool: Pool, books: JournaledLedger) -> CustomerId:
    """A customer invoiced 121 USD (100 + 21 tax), then credited 12.10 to its balance."""
    customer = CustomerId.new()
    invoice = invoice_finalized(customer, line("usage", "100", tax="21", line_id="u"))
    await post(pool, books, invoice, credit_note(invoice, "customer_balance", ("u", "10", "2.1")))
    return customer


async def test_accounts_list_with_balances_and_customer_filter(
    client: httpx.AsyncClient, ledger_pool: Pool, books: JournaledLedger
) -> None:
    customer = await posted_customer(ledger_pool, books)
    other = CustomerId.new()
    await post(ledger_pool, books, invoice_finalized(other, line("one_off", "5")))

    everything = await client.get("/v1/ledger/accounts", params={"limit": 100})
    assert everything.status_code == 200, everything.text
    assert len(everything.json()["data"]) == 4 + 2 + 2  # the chart, two customers' accounts

    mine = await client.get("/v1/ledger/accounts", params={"customer_id": customer})
    accounts = {item["kind"]: item for item in mine.json()["data"]}
    assert set(accounts) == {"accounts_receivable", "customer_credit"}
    receivable = accounts["accounts_receivable"]
    chart = ChartOfAccounts(TENANT, USD)
    assert receivable["id"] == str(chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, customer))
    assert receivable["customer_id"] == customer
    assert (receivable["ledger"], receivable["code"]) == (840, 1100)
    assert receivable["normal_balance"] == "debit"
    assert receivable["balances"] == {
        "debits_posted": money("121"),
        "credits_posted": money("0"),
        "debits_pending": money("0"),
        "credits_pending": money("0"),
        "balance": money("121"),
    }
    assert accounts["customer_credit"]["balances"]["balance"] == money("12.1")

    first = await client.get("/v1/ledger/accounts", params={"limit": 3})
    assert first.json()["has_more"] is True
    rest = await client.get(
        "/v1/ledger/accounts", params={"limit": 100, "starting_after": first.json()["next_cursor"]}
    )
    ids = [item["id"] for item in first.json()["data"] + rest.json()["data"]]
    assert ids == [item["id"] for item in everything.json()["data"]]
    assert ids == sorted(ids, key=int)


async def test_account_balance_and_unknown_accounts(
    client: httpx.AsyncClient, ledger_pool: Pool, books: JournaledLedger
) -> None:
    customer = await posted_customer(ledger_pool, books)
    revenue_id = ChartOfAccounts(TENANT, USD).account_id(AccountKind.REVENUE)
    response = await client.get(f"/v1/ledger/accounts/{revenue_id}/balance")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "ledger_account_balance",
        "account_id": str(revenue_id),
        "kind": "revenue",
        "currency": "USD",
        "normal_balance": "credit",
        "debits_posted": money("10"),
        "credits_posted": money("100"),
        "debits_pending": money("0"),
        "credits_pending": money("0"),
        "balance": money("90"),
    }
    retrieved = await client.get(f"/v1/ledger/accounts/{revenue_id}")
    assert retrieved.json()["balances"]["balance"] == money("90")

    unknown = ChartOfAccounts(TENANT, USD).account_id(AccountKind.ACCOUNTS_RECEIVABLE, customer) + 1
    problem = assert_problem(
        await client.get(f"/v1/ledger/accounts/{unknown}/balance"), 404, "ledger_account_not_found"
    )
    assert problem["detail"] == f"no ledger account {unknown}"
    # Another tenant's account is as unknown as one that does not exist.
    assert_problem(
        await client.get(
            f"/v1/ledger/accounts/{revenue_id}/balance", headers={"x-tenant-id": "ten_other"}
        ),
        404,
        "ledger_account_not_found",
    )
    assert_problem(await client.get("/v1/ledger/accounts/0x12/balance"), 422, "invalid_id")
    assert_problem(await client.get(f"/v1/ledger/accounts/{2**128}"), 422, "invalid_id")


async def test_trial_balance_is_balanced_per_currency(
    client: httpx.AsyncClient, ledger_pool: Pool, books: JournaledLedger
) -> None:
    empty = await client.get("/v1/ledger/trial_balance", params={"currency": "USD"})
    assert empty.status_code == 200, empty.text
    assert empty.json()["balanced"] is True
    assert empty.json()["ledgers"][0]["debits_posted"] == money("0")

    await posted_customer(ledger_pool, books)
    await posted_customer(ledger_pool, books)
    response = await client.get("/v1/ledger/trial_balance", params={"currency": "USD"})
    report = response.json()
    assert report["object"] == "trial_balance"
    assert report["balanced"] is True
    (usd,) = report["ledgers"]
    assert (usd["currency"], usd["ledger"], usd["balanced"]) == ("USD", 840, True)
    assert usd["debits_posted"] == usd["credits_posted"] == money("266.2")  # 2 x (121 + 12.10)
    kinds = {item["kind"]: item["balance"] for item in usd["accounts"]}
    assert kinds == {
        "cash": money("0"),
        "accounts_receivable": money("242"),
        "customer_credit": money("24.2"),
        "deferred_revenue": money("0"),
        "tax_payable": money("37.8"),
        "revenue": money("180"),
    }
    every = await client.get("/v1/ledger/trial_balance")
    assert every.json() == report
    assert_problem(
        await client.get("/v1/ledger/trial_balance", params={"currency": "XXX1"}),
        422,
        "validation_failed",
    )


async def test_customer_balance(
    client: httpx.AsyncClient, ledger_pool: Pool, books: JournaledLedger
) -> None:
    customer = await posted_customer(ledger_pool, books)
    response = await client.get(f"/v1/customers/{customer}/balance")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "customer_balance",
        "customer_id": customer,
        "balances": [
            {
                "currency": "USD",
                "accounts_receivable": money("121"),
                "customer_credit": money("12.1"),
                "net_owed": money("108.9"),
            }
        ],
    }
    never_invoiced = await client.get(f"/v1/customers/{CustomerId.new()}/balance")
    assert never_invoiced.json()["balances"] == []
    assert_problem(await client.get("/v1/customers/nope/balance"), 422, "invalid_id")
