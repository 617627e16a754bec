"""The chart of accounts: which ledger accounts a tenant has, per currency, and their ids.

Every tenant has, in each currency it bills in, one account of each shared kind
(cash, revenue, deferred revenue, tax payable) and, per customer, an accounts
receivable and a customer credit account. An account's id is derived from
(tenant, currency, kind, customer), so every service computes the same id
without asking anyone; its ledger is the currency's ISO 4217 numeric code, so
TigerBeetle refuses a transfer between two currencies; its code is its kind.

Amounts are `Money.amount`, pico-units, as TigerBeetle's u128 amounts.

>>> from billing_common.ids import TenantId
>>> chart = ChartOfAccounts(TenantId.new(), Currency.of("EUR"))
>>> revenue = chart.account(AccountKind.REVENUE)
>>> revenue.ledger, revenue.code, revenue.id == chart.account(AccountKind.REVENUE).id
(978, 4000, True)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from billing_common.currency import Currency
from billing_common.ids import CustomerId, TenantId
from billing_ledger.ledger import Account, AccountFlags

__all__ = [
    "ACCOUNT_NAMESPACE",
    "AccountKind",
    "ChartOfAccounts",
    "NormalBalance",
    "account_id",
    "ledger_number",
    "normal_balance_of",
]

#: The uuid5 namespace of account ids. Changing it changes every account id: never do.
ACCOUNT_NAMESPACE = uuid.UUID("6f1f2d0e-5b8a-5b1e-9a57-4c0f3b8d2a10")


class NormalBalance(StrEnum):
    """Which side increases an account: assets debit, liabilities and revenue credit."""

    DEBIT = "debit"
    CREDIT = "credit"


class AccountKind(StrEnum):
    """The kinds of account in a tenant's chart, with their account code (a u16)."""

    CASH = "cash"
    """Money received and paid out through the payment provider (asset)."""
    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    """What one customer owes on finalized invoices (asset, per customer)."""
    CUSTOMER_CREDIT = "customer_credit"
    """Credit one customer holds with the tenant, spent on later invoices (liability)."""
    DEFERRED_REVENUE = "deferred_revenue"
    """Invoiced but not yet earned (liability, ASC 606)."""
    TAX_PAYABLE = "tax_payable"
    """Tax collected on invoices, owed to tax authorities (liability)."""
    REVENUE = "revenue"
    """Earned revenue (income)."""

    @property
    def code(self) -> int:
        """The TigerBeetle account code: a chart-of-accounts number."""
        return _CODES[self]

    @property
    def per_customer(self) -> bool:
        """Whether each customer has its own account of this kind."""
        return self in (AccountKind.ACCOUNTS_RECEIVABLE, AccountKind.CUSTOMER_CREDIT)

    @property
    def normal_balance(self) -> NormalBalance:
        return NormalBalance.DEBIT if self in _DEBIT_NORMAL else NormalBalance.CREDIT

    @property
    def flags(self) -> AccountFlags:
        """The TigerBeetle flags of this kind.

        A customer's credit cannot be spent beyond what was granted, and deferred
        revenue cannot be recognized beyond what was deferred: both refuse debits
        above credits. Per-customer accounts keep their balance history.
        """
        flags = AccountFlags.NONE
        if self in (AccountKind.CUSTOMER_CREDIT, AccountKind.DEFERRED_REVENUE):
            flags |= AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        if self.per_customer:
            flags |= AccountFlags.HISTORY
        return flags


_CODES = {
    AccountKind.CASH: 1000,
    AccountKind.ACCOUNTS_RECEIVABLE: 1100,
    AccountKind.CUSTOMER_CREDIT: 2100,
    AccountKind.DEFERRED_REVENUE: 2200,
    AccountKind.TAX_PAYABLE: 2300,
    AccountKind.REVENUE: 4000,
}
_KIND_BY_CODE = {code: kind for kind, code in _CODES.items()}
_DEBIT_NORMAL = frozenset({AccountKind.CASH, AccountKind.ACCOUNTS_RECEIVABLE})


def normal_balance_of(account: Account) -> int:
    """The posted balance of `account` on its normal side (negative when it is overdrawn).

    Works from the account code, so it reads accounts looked up from the ledger.
    """
    kind = _KIND_BY_CODE.get(account.code)
    if kind is None:
        raise ValueError(f"account code {account.code} is not in the chart of accounts")
    debit_balance = account.debits_posted - account.credits_posted
    return debit_balance if kind.normal_balance is NormalBalance.DEBIT else -debit_balance


#: ISO 4217 numeric codes of every currency `billing_common.currency` knows.
#: ANG (withdrawn 2025-03-31) handed its 532 to XCG; it keeps ledger 100532 so that
#: each currency has a ledger of its own.
_ISO_4217_NUMERIC_TABLE = """
AED=784 AFN=971 ALL=008 AMD=051 ANG=100532 AOA=973 ARS=032 AUD=036 AWG=533
AZN=944 BAM=977 BBD=052 BDT=050 BGN=975 BHD=048 BIF=108 BMD=060 BND=096 BOB=068
BOV=984 BRL=986 BSD=044 BTN=064 BWP=072 BYN=933 BZD=084 CAD=124 CDF=976 CHE=947
CHF=756 CHW=948 CLF=990 CLP=152 CNY=156 COP=170 COU=970 CRC=188 CUC=931 CUP=192
CVE=132 CZK=203 DJF=262 DKK=208 DOP=214 DZD=012 EGP=818 ERN=232 ETB=230 EUR=978
FJD=242 FKP=238 GBP=826 GEL=981 GHS=936 GIP=292 GMD=270 GNF=324 GTQ=320 GYD=328
HKD=344 HNL=340 HTG=332 HUF=348 IDR=360 ILS=376 INR=356 IQD=368 IRR=364 ISK=352
JMD=388 JOD=400 JPY=392 KES=404 KGS=417 KHR=116 KMF=174 KPW=408 KRW=410 KWD=414
KYD=136 KZT=398 LAK=418 LBP=422 LKR=144 LRD=430 LSL=426 LYD=434 MAD=504 MDL=498
MGA=969 MKD=807 MMK=104 MNT=496 MOP=446 MRU=929 MUR=480 MVR=462 MWK=454 MXN=484
MXV=979 MYR=458 MZN=943 NAD=516 NGN=566 NIO=558 NOK=578 NPR=524 NZD=554 OMR=512
PAB=590 PEN=604 PGK=598 PHP=608 PKR=586 PLN=985 PYG=600 QAR=634 RON=946 RSD=941
RUB=643 RWF=646 SAR=682 SBD=090 SCR=690 SDG=938 SEK=752 SGD=702 SHP=654 SLE=925
SOS=706 SRD=968 SSP=728 STN=930 SVC=222 SYP=760 SZL=748 THB=764 TJS=972 TMT=934
TND=788 TOP=776 TRY=949 TTD=780 TWD=901 TZS=834 UAH=980 UGX=800 USD=840 USN=997
UYI=940 UYU=858 UYW=927 UZS=860 VED=926 VES=928 VND=704 VUV=548 WST=882 XAF=950
XCD=951 XCG=532 XOF=952 XPF=953 YER=886 ZAR=710 ZMW=967 ZWG=924
"""
_ISO_4217_NUMERIC: dict[str, int] = {
    code: int(number)
    for code, number in (item.split("=") for item in _ISO_4217_NUMERIC_TABLE.split())
}


def ledger_number(currency: Currency | str) -> int:
    """The TigerBeetle ledger of `currency`: its ISO 4217 numeric code.

    >>> ledger_number("USD"), ledger_number("JPY")
    (840, 392)
    """
    return _ISO_4217_NUMERIC[Currency.of(currency).code]


def account_id(
    tenant: TenantId,
    currency: Currency | str,
    kind: AccountKind,
    customer: CustomerId | None = None,
) -> int:
    """The 128-bit id of one account, the same in every process and every run.

    A uuid5 of (tenant, currency, kind, customer): never 0 nor 2^128-1, which
    TigerBeetle reserves, because uuid5 fixes its version and variant bits.
    """
    kind = AccountKind(kind)
    if kind.per_customer and customer is None:
        raise ValueError(f"a {kind} account belongs to a customer: pass `customer`")
    if not kind.per_customer and customer is not None:
        raise ValueError(f"the {kind} account is the tenant's, not a customer's")
    name = f"{tenant}/{Currency.of(currency).code}/{kind}/{customer or ''}"
    return uuid.uuid5(ACCOUNT_NAMESPACE, name).int


@dataclass(frozen=True, slots=True)
class ChartOfAccounts:
    """One tenant's accounts in one currency."""

    tenant: TenantId
    currency: Currency

    @property
    def ledger(self) -> int:
        return ledger_number(self.currency)

    def account_id(self, kind: AccountKind, customer: CustomerId | None = None) -> int:
        return account_id(self.tenant, self.currency, kind, customer)

    def account(self, kind: AccountKind, customer: CustomerId | None = None) -> Account:
        """The account to create for `kind` (and `customer`, for per-customer kinds).

        `user_data_128` holds the customer's UUID (the tenant's for shared accounts),
        so a query by user data finds a customer's accounts.
        """
        owner = customer.uuid if customer is not None else self.tenant.uuid
        return Account(
            id=self.account_id(kind, customer),
            ledger=self.ledger,
            code=kind.code,
            flags=kind.flags,
            user_data_128=owner.int,
        )

    def tenant_accounts(self) -> list[Account]:
        """The shared accounts: cash, revenue, deferred revenue, tax payable."""
        return [self.account(kind) for kind in AccountKind if not kind.per_customer]

    def customer_accounts(self, customer: CustomerId) -> list[Account]:
        """A customer's accounts: accounts receivable and customer credit."""
        return [self.account(kind, customer) for kind in AccountKind if kind.per_customer]
