from __future__ import annotations

import uuid

import pytest

from billing_common.currency import Currency
from billing_common.ids import CustomerId, TenantId
from billing_ledger.accounts import (
    AccountKind,
    ChartOfAccounts,
    NormalBalance,
    account_id,
    ledger_number,
    normal_balance_of,
)
from billing_ledger.ledger import U128_MAX, Account, AccountFlags, InProcessLedger

TENANT = TenantId.new()
CUSTOMER = CustomerId.new()
USD = Currency.of("USD")


class TestLedgerNumber:
    @pytest.mark.parametrize(
        ("code", "number"), [("USD", 840), ("EUR", 978), ("JPY", 392), ("KWD", 414), ("XCG", 532)]
    )
    def test_is_the_iso_4217_numeric_code(self, code: str, number: int) -> None:
        assert ledger_number(code) == number

    def test_every_currency_has_its_own_ledger(self) -> None:
        numbers = [ledger_number(currency) for currency in Currency.all()]
        assert len(set(numbers)) == len(numbers)
        assert all(0 < n < 2**32 for n in numbers)


class TestAccountId:
    def test_is_stable_and_distinct_per_tenant_currency_kind_and_customer(self) -> None:
        same = account_id(TENANT, "USD", AccountKind.ACCOUNTS_RECEIVABLE, CUSTOMER)
        assert same == account_id(TENANT, USD, AccountKind.ACCOUNTS_RECEIVABLE, CUSTOMER)
        others = {
            account_id(TenantId.new(), USD, AccountKind.ACCOUNTS_RECEIVABLE, CUSTOMER),
            account_id(TENANT, "EUR", AccountKind.ACCOUNTS_RECEIVABLE, CUSTOMER),
            account_id(TENANT, USD, AccountKind.CUSTOMER_CREDIT, CUSTOMER),
            account_id(TENANT, USD, AccountKind.ACCOUNTS_RECEIVABLE, CustomerId.new()),
            account_id(TENANT, USD, AccountKind.REVENUE),
        }
        assert same not in others
        assert len(others) == 5
        assert all(0 < value < U128_MAX for value in (same, *others))

    def test_known_value_never_changes(self) -> None:
        tenant = TenantId("ten_01JD3Q8Z7X0000000000000000")
        assert account_id(tenant, "USD", AccountKind.CASH) == account_id(
            tenant, "usd", AccountKind.CASH
        )
        # Pinned: changing the namespace or the name format would orphan every account.
        assert account_id(tenant, "USD", AccountKind.CASH) == (
            uuid.uuid5(
                uuid.UUID("6f1f2d0e-5b8a-5b1e-9a57-4c0f3b8d2a10"),
                "ten_01JD3Q8Z7X0000000000000000/USD/cash/",
            ).int
        )

    def test_per_customer_kinds_need_a_customer(self) -> None:
        with pytest.raises(ValueError, match="belongs to a customer"):
            account_id(TENANT, USD, AccountKind.ACCOUNTS_RECEIVABLE)
        with pytest.raises(ValueError, match="tenant's"):
            account_id(TENANT, USD, AccountKind.REVENUE, CUSTOMER)


class TestChartOfAccounts:
    def test_accounts_carry_ledger_code_flags_and_owner(self) -> None:
        chart = ChartOfAccounts(TENANT, USD)
        credit = chart.account(AccountKind.CUSTOMER_CREDIT, CUSTOMER)
        assert credit.ledger == 840
        assert credit.code == AccountKind.CUSTOMER_CREDIT.code == 2100
        assert credit.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        assert credit.flags & AccountFlags.HISTORY
        assert credit.user_data_128 == CUSTOMER.uuid.int
        revenue = chart.account(AccountKind.REVENUE)
        assert revenue.flags == AccountFlags.NONE
        assert revenue.user_data_128 == TENANT.uuid.int
        deferred = chart.account(AccountKind.DEFERRED_REVENUE)
        assert deferred.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS

    def test_codes_are_distinct(self) -> None:
        codes = [kind.code for kind in AccountKind]
        assert len(set(codes)) == len(codes)

    async def test_the_whole_chart_can_be_created_and_created_again(self) -> None:
        ledger = InProcessLedger()
        chart = ChartOfAccounts(TENANT, USD)
        accounts = [*chart.tenant_accounts(), *chart.customer_accounts(CUSTOMER)]
        assert len(accounts) == len(AccountKind)
        first = await ledger.create_accounts(accounts)
        assert all(r.status == "created" for r in first)
        again = await ledger.create_accounts(accounts)
        assert all(r.status == "exists" for r in again)


class TestNormalBalance:
    def test_sides(self) -> None:
        assert AccountKind.CASH.normal_balance is NormalBalance.DEBIT
        assert AccountKind.ACCOUNTS_RECEIVABLE.normal_balance is NormalBalance.DEBIT
        assert AccountKind.REVENUE.normal_balance is NormalBalance.CREDIT
        assert AccountKind.CUSTOMER_CREDIT.normal_balance is NormalBalance.CREDIT

    def test_balance_on_the_normal_side(self) -> None:
        receivable = Account(id=1, ledger=840, code=1100, debits_posted=30, credits_posted=10)
        revenue = Account(id=2, ledger=840, code=4000, debits_posted=5, credits_posted=25)
        assert normal_balance_of(receivable) == 20
        assert normal_balance_of(revenue) == 20
        with pytest.raises(ValueError, match="not in the chart"):
            normal_balance_of(Account(id=3, ledger=840, code=9))
