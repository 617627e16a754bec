"""The API shapes of the ledger: accounts with balances, trial balances, customer balances.

Account ids are TigerBeetle's u128 ids, rendered as **decimal strings**
(`"2128506...`", up to 39 digits), as TigerBeetle's own tools print them: JSON
numbers cannot carry 128 bits. Amounts are public money: decimal strings in
major units with their currency.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field

from billing_common.currency import Currency
from billing_common.errors import InvalidId
from billing_common.ids import CustomerId
from billing_common.money import Money, MoneyPublic
from billing_ledger.accounts import AccountKind, NormalBalance
from billing_ledger.ledger import U128_MAX
from billing_ledger.postings import TrialBalance

AccountIdText = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,39}$",
        description="A ledger account id: the u128 as a decimal string",
        examples=["212850619366046727311004427434316633914"],
    ),
]


def format_account_id(account_id: int) -> str:
    """The id as the API writes it: the u128 in decimal.

    >>> format_account_id(2**100)
    '1267650600228229401496703205376'
    """
    return str(account_id)


def parse_account_id(text: str) -> int:
    """The u128 an account id string names; `InvalidId` (422) for anything else.

    >>> parse_account_id("42")
    42
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 39 or int(text) > U128_MAX:
        raise InvalidId(f"{text[:64]!r} is not a ledger account id (a u128 as a decimal string)")
    return int(text)


class AccountBalances(BaseModel):
    """An account's four TigerBeetle balances, and its balance on its normal side
    (debits minus credits posted for assets, credits minus debits for the others;
    negative when the account is on the other side)."""

    debits_posted: MoneyPublic
    credits_posted: MoneyPublic
    debits_pending: MoneyPublic
    credits_pending: MoneyPublic
    balance: MoneyPublic


class LedgerAccount(BaseModel):
    object: str = "ledger_account"
    id: AccountIdText
    kind: AccountKind
    customer_id: CustomerId | None = Field(description="Set on a customer's accounts")
    currency: Currency
    ledger: int = Field(description="The TigerBeetle ledger: the currency's ISO 4217 number")
    code: int = Field(description="The chart-of-accounts code of the kind")
    normal_balance: NormalBalance
    balances: AccountBalances


class LedgerAccountBalance(BaseModel):
    """`GET /v1/ledger/accounts/{account_id}/balance`."""

    object: str = "ledger_account_balance"
    account_id: AccountIdText
    kind: AccountKind
    currency: Currency
    normal_balance: NormalBalance
    debits_posted: MoneyPublic
    credits_posted: MoneyPublic
    debits_pending: MoneyPublic
    credits_pending: MoneyPublic
    balance: MoneyPublic

    @classmethod
    def of(cls, account: LedgerAccount) -> Self:
        return cls(
            account_id=account.id,
            kind=account.kind,
            currency=account.currency,
            normal_balance=account.normal_balance,
            **account.balances.model_dump(),
        )


class LedgerAccountList(BaseModel):
    object: str = "list"
    data: list[LedgerAccount]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class LedgerAccountListQuery(BaseModel):
    """`GET /v1/ledger/accounts`: the tenant's accounts in id order."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: AccountIdText | None = None
    customer_id: CustomerId | None = Field(default=None, description="Only this customer's")
    currency: Currency | None = None

    @property
    def starting_after_id(self) -> int | None:
        return None if self.starting_after is None else parse_account_id(self.starting_after)


class TrialBalanceQuery(BaseModel):
    """`GET /v1/ledger/trial_balance`: one currency, or every currency of the tenant."""

    model_config = ConfigDict(extra="forbid")

    currency: Currency | None = None


class TrialBalanceKind(BaseModel):
    """One kind of account (all customers' together for per-customer kinds)."""

    kind: AccountKind
    debits_posted: MoneyPublic
    credits_posted: MoneyPublic
    balance: MoneyPublic = Field(description="On the kind's normal side")


class TrialBalanceLedger(BaseModel):
    """One currency: total debits equal total credits, posted and pending."""

    currency: Currency
    ledger: int
    debits_posted: MoneyPublic
    credits_posted: MoneyPublic
    debits_pending: MoneyPublic
    credits_pending: MoneyPublic
    balanced: bool
    accounts: list[TrialBalanceKind]


class LedgerTrialBalance(BaseModel):
    object: str = "trial_balance"
    balanced: bool = Field(description="Every currency's debits equal its credits")
    ledgers: list[TrialBalanceLedger]

    @classmethod
    def build(
        cls,
        report: TrialBalance,
        currencies: dict[int, Currency],
        kinds: dict[tuple[int, AccountKind], list[int]],
    ) -> Self:
        """From `trial_balance`'s totals per ledger, and per (ledger, kind) the sums
        `[debits posted, credits posted, normal balance]`."""
        ledgers = []
        for ledger, currency in sorted(currencies.items(), key=lambda item: item[1].code):

            def money(pico: int, currency: Currency = currency) -> MoneyPublic:
                return Money(pico, currency).to_public()

            totals = report.totals.get(ledger)
            debits_posted = 0 if totals is None else totals.debits_posted
            credits_posted = 0 if totals is None else totals.credits_posted
            debits_pending = 0 if totals is None else totals.debits_pending
            credits_pending = 0 if totals is None else totals.credits_pending
            ledgers.append(
                TrialBalanceLedger(
                    currency=currency,
                    ledger=ledger,
                    debits_posted=money(debits_posted),
                    credits_posted=money(credits_posted),
                    debits_pending=money(debits_pending),
                    credits_pending=money(credits_pending),
                    balanced=totals is None or totals.balanced,
                    accounts=[
                        TrialBalanceKind(
                            kind=kind,
                            debits_posted=money(sums[0]),
                            credits_posted=money(sums[1]),
                            balance=money(sums[2]),
                        )
                        for (kind_ledger, kind), sums in sorted(
                            kinds.items(), key=lambda item: item[0][1].code
                        )
                        if kind_ledger == ledger
                    ],
                )
            )
        return cls(balanced=all(item.balanced for item in ledgers), ledgers=ledgers)


class CustomerCurrencyBalance(BaseModel):
    currency: Currency
    accounts_receivable: MoneyPublic = Field(description="What the customer owes")
    customer_credit: MoneyPublic = Field(description="Credit the customer holds")
    net_owed: MoneyPublic = Field(description="Receivable less credit")


class CustomerBalance(BaseModel):
    """`GET /v1/customers/{customer_id}/balance`: per currency; empty until the customer's
    first invoice is posted."""

    object: str = "customer_balance"
    customer_id: CustomerId
    balances: list[CustomerCurrencyBalance]
