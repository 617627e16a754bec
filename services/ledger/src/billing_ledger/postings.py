"""What each business fact posts to the ledger: one linked chain of balanced transfers.

Every transfer debits one account and credits another by the same amount, so any
set of postings is balanced by construction; the chain is linked so it applies
whole or not at all. Transfer ids are derived from the fact's id and the leg's
position, so posting the same fact twice is idempotent: the second time the
ledger answers `exists` (see `chain_outcome`).

| fact               | debit                          | credit                              |
|--------------------|--------------------------------|-------------------------------------|
| invoice finalized  | receivable                     | revenue or deferred, tax payable    |
| credit note issued | revenue or deferred, tax payable | receivable, customer credit or cash |
| invoice voided     | revenue or deferred, tax payable | receivable                        |
| payment succeeded  | cash                           | receivable                          |
| credit applied     | customer credit                | receivable                          |
| revenue recognized | deferred revenue               | revenue                             |

A negative line (a discount) posts the other way round, after the positive lines; a zero
line posts nothing. Deferred revenue refuses to go below zero, so an invoice whose deferred
lines add up to less than zero is refused whole (`exceeds_credits`).

>>> from billing_common.ids import CustomerId, InvoiceId, TenantId
>>> usd = Currency.of("USD")
>>> fact = InvoiceFinalized(TenantId.new(), CustomerId.new(), InvoiceId.new(), usd,
...     lines=(InvoiceLine(Money.parse("10", usd)),), taxes=(Money.parse("2", usd),))
>>> [t.amount for t in invoice_finalized_postings(fact)]
[10000000000000, 2000000000000]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch, InvalidAmount
from billing_common.ids import (
    CreditNoteId,
    CustomerId,
    InvoiceId,
    PaymentId,
    PrefixedId,
    TenantId,
)
from billing_common.money import Money
from billing_ledger.accounts import AccountKind, ChartOfAccounts
from billing_ledger.ledger import Account, Transfer, TransferFlags

__all__ = [
    "POSTING_NAMESPACE",
    "BusinessFact",
    "CreditApplied",
    "CreditNoteIssued",
    "CreditNoteSettlement",
    "InvoiceFinalized",
    "InvoiceLine",
    "InvoiceVoided",
    "LedgerTotals",
    "PaymentSucceeded",
    "RevenueRecognized",
    "RevenueTreatment",
    "TransferCode",
    "TrialBalance",
    "TrialBalanceRow",
    "credit_applied_postings",
    "credit_note_postings",
    "invoice_finalized_postings",
    "invoice_voided_postings",
    "payment_postings",
    "postings_for",
    "revenue_recognized_postings",
    "trial_balance",
]

#: The uuid5 namespace of posting ids. Changing it changes every transfer id: never do.
POSTING_NAMESPACE = uuid.UUID("0c6b4a5e-93d1-5f0a-8e2b-7d4f1a9c3e55")


class TransferCode(IntEnum):
    """TigerBeetle transfer codes: why the money moved."""

    INVOICE_REVENUE = 10
    INVOICE_DEFERRED_REVENUE = 11
    INVOICE_TAX = 12
    INVOICE_VOIDED_REVENUE = 13
    INVOICE_VOIDED_DEFERRED_REVENUE = 14
    INVOICE_VOIDED_TAX = 15
    CREDIT_NOTE_REVENUE = 20
    CREDIT_NOTE_DEFERRED_REVENUE = 21
    CREDIT_NOTE_TAX = 22
    PAYMENT = 30
    CREDIT_APPLIED = 40
    REVENUE_RECOGNIZED = 50


class RevenueTreatment(StrEnum):
    """Whether a line's revenue is earned when invoiced or deferred (ASC 606)."""

    RECOGNIZED = "recognized"
    DEFERRED = "deferred"


class CreditNoteSettlement(StrEnum):
    """Where the credited amount of a credit note goes."""

    RECEIVABLE = "receivable"
    """The invoice is unpaid: the credit note reduces what the customer owes."""
    CUSTOMER_CREDIT = "customer_credit"
    """The invoice was paid: the customer gets a credit balance to spend later."""
    REFUND = "refund"
    """The invoice was paid: the money goes back to the customer."""


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One rounded invoice line (or credit note line), before tax."""

    amount: Money
    treatment: RevenueTreatment = RevenueTreatment.RECOGNIZED


def _check_currency(currency: Currency, amounts: Iterable[Money]) -> None:
    for amount in amounts:
        if amount.currency != currency:
            raise CurrencyMismatch(
                f"a {currency.code} fact cannot carry an amount in {amount.currency.code}",
                currencies=[currency.code, amount.currency.code],
            )


def _check_positive(what: str, amount: Money) -> None:
    if amount.amount <= 0:
        raise InvalidAmount(f"{what} must be positive, not {amount.to_decimal_string()}")


@dataclass(frozen=True, slots=True)
class InvoiceFinalized:
    """An invoice was finalized: the customer owes its total."""

    tenant: TenantId
    customer: CustomerId
    invoice_id: InvoiceId
    currency: Currency
    lines: Sequence[InvoiceLine]
    taxes: Sequence[Money] = ()

    def __post_init__(self) -> None:
        _check_currency(self.currency, [line.amount for line in self.lines])
        _check_currency(self.currency, self.taxes)

    @property
    def total(self) -> Money:
        return _total(self.currency, self.lines, self.taxes)


@dataclass(frozen=True, slots=True)
class CreditNoteIssued:
    """A credit note was issued against an invoice: the reverse of (part of) its postings."""

    tenant: TenantId
    customer: CustomerId
    credit_note_id: CreditNoteId
    currency: Currency
    lines: Sequence[InvoiceLine]
    taxes: Sequence[Money] = ()
    settlement: CreditNoteSettlement = CreditNoteSettlement.RECEIVABLE

    def __post_init__(self) -> None:
        _check_currency(self.currency, [line.amount for line in self.lines])
        _check_currency(self.currency, self.taxes)

    @property
    def total(self) -> Money:
        return _total(self.currency, self.lines, self.taxes)


@dataclass(frozen=True, slots=True)
class InvoiceVoided:
    """An invoice was voided: what it still owes is reversed to the receivable.

    `lines` and `taxes` are what remains of the invoice's own: each line (and tax)
    less what credit notes already took back, so nothing is reversed twice.
    """

    tenant: TenantId
    customer: CustomerId
    invoice_id: InvoiceId
    currency: Currency
    lines: Sequence[InvoiceLine]
    taxes: Sequence[Money] = ()

    def __post_init__(self) -> None:
        _check_currency(self.currency, [line.amount for line in self.lines])
        _check_currency(self.currency, self.taxes)

    @property
    def total(self) -> Money:
        return _total(self.currency, self.lines, self.taxes)


@dataclass(frozen=True, slots=True)
class PaymentSucceeded:
    """A payment was captured: cash in, the customer owes less."""

    tenant: TenantId
    customer: CustomerId
    payment_id: PaymentId
    amount: Money

    def __post_init__(self) -> None:
        _check_positive("a payment", self.amount)


@dataclass(frozen=True, slots=True)
class CreditApplied:
    """Part of a customer's credit balance paid an invoice.

    `application_id` names this application (one invoice may receive several);
    the transfer id comes from it.
    """

    tenant: TenantId
    customer: CustomerId
    invoice_id: InvoiceId
    application_id: PrefixedId
    amount: Money

    def __post_init__(self) -> None:
        _check_positive("an applied credit", self.amount)


@dataclass(frozen=True, slots=True)
class RevenueRecognized:
    """Deferred revenue was earned (the reporting service's ASC 606 schedule)."""

    tenant: TenantId
    recognition_id: PrefixedId
    amount: Money

    def __post_init__(self) -> None:
        _check_positive("recognized revenue", self.amount)


BusinessFact = (
    InvoiceFinalized
    | CreditNoteIssued
    | InvoiceVoided
    | PaymentSucceeded
    | CreditApplied
    | RevenueRecognized
)


def _total(currency: Currency, lines: Sequence[InvoiceLine], taxes: Sequence[Money]) -> Money:
    pico = sum(line.amount.amount for line in lines) + sum(tax.amount for tax in taxes)
    return Money(pico, currency)


@dataclass(frozen=True, slots=True)
class _Leg:
    """One movement before it becomes a transfer: `amount` from `debit` to `credit`."""

    name: str
    debit: int
    credit: int
    amount: int
    code: TransferCode


def _transfer_id(kind: str, fact_id: PrefixedId, leg: str) -> int:
    return uuid.uuid5(POSTING_NAMESPACE, f"{kind}/{fact_id}/{leg}").int


def _chain(kind: str, fact_id: PrefixedId, ledger: int, legs: Sequence[_Leg]) -> list[Transfer]:
    """The legs as one linked chain: zero legs dropped, negative legs turned round.

    Positive legs go first, so a discount line never debits an account with a
    balance limit (deferred revenue) before the lines that credit it.
    """
    moving = [leg for leg in legs if leg.amount > 0] + [leg for leg in legs if leg.amount < 0]
    transfers = []
    for index, leg in enumerate(moving):
        debit, credit = (leg.debit, leg.credit) if leg.amount > 0 else (leg.credit, leg.debit)
        last = index == len(moving) - 1
        transfers.append(
            Transfer(
                id=_transfer_id(kind, fact_id, leg.name),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=abs(leg.amount),
                ledger=ledger,
                code=leg.code,
                user_data_128=fact_id.uuid.int,
                user_data_32=index,
                flags=TransferFlags.NONE if last else TransferFlags.LINKED,
            )
        )
    return transfers


def _line_legs(
    chart: ChartOfAccounts,
    lines: Sequence[InvoiceLine],
    taxes: Sequence[Money],
    counterpart: int,
    *,
    reverse: bool,
    codes: tuple[TransferCode, TransferCode, TransferCode] | None = None,
) -> list[_Leg]:
    """Each line against (deferred) revenue and each tax against tax payable.

    Invoices debit `counterpart` (receivable); credit notes (`reverse`) credit it.
    `codes` are the transfer codes of revenue, deferred revenue and tax (by default
    the invoice's, or the credit note's when `reverse`).
    """
    if codes is None:
        codes = (
            (
                TransferCode.CREDIT_NOTE_REVENUE,
                TransferCode.CREDIT_NOTE_DEFERRED_REVENUE,
                TransferCode.CREDIT_NOTE_TAX,
            )
            if reverse
            else (
                TransferCode.INVOICE_REVENUE,
                TransferCode.INVOICE_DEFERRED_REVENUE,
                TransferCode.INVOICE_TAX,
            )
        )
    legs = []
    for index, line in enumerate(lines):
        deferred = line.treatment is RevenueTreatment.DEFERRED
        kind = AccountKind.DEFERRED_REVENUE if deferred else AccountKind.REVENUE
        legs.append(
            _leg(
                f"line/{index}",
                counterpart,
                chart.account_id(kind),
                line.amount.amount,
                codes[1] if deferred else codes[0],
                reverse=reverse,
            )
        )
    for index, tax in enumerate(taxes):
        legs.append(
            _leg(
                f"tax/{index}",
                counterpart,
                chart.account_id(AccountKind.TAX_PAYABLE),
                tax.amount,
                codes[2],
                reverse=reverse,
            )
        )
    return legs


def _leg(
    name: str, counterpart: int, account: int, amount: int, code: TransferCode, *, reverse: bool
) -> _Leg:
    if reverse:
        return _Leg(name, account, counterpart, amount, code)
    return _Leg(name, counterpart, account, amount, code)


def invoice_finalized_postings(fact: InvoiceFinalized) -> list[Transfer]:
    """Debit the customer's receivable; credit revenue (or deferred revenue) and tax payable."""
    chart = ChartOfAccounts(fact.tenant, fact.currency)
    receivable = chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, fact.customer)
    legs = _line_legs(chart, fact.lines, fact.taxes, receivable, reverse=False)
    return _chain("invoice_finalized", fact.invoice_id, chart.ledger, legs)


def credit_note_postings(fact: CreditNoteIssued) -> list[Transfer]:
    """Debit revenue (or deferred revenue) and tax payable; credit where the settlement goes."""
    chart = ChartOfAccounts(fact.tenant, fact.currency)
    if fact.settlement is CreditNoteSettlement.RECEIVABLE:
        counterpart = chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, fact.customer)
    elif fact.settlement is CreditNoteSettlement.CUSTOMER_CREDIT:
        counterpart = chart.account_id(AccountKind.CUSTOMER_CREDIT, fact.customer)
    else:
        counterpart = chart.account_id(AccountKind.CASH)
    legs = _line_legs(chart, fact.lines, fact.taxes, counterpart, reverse=True)
    return _chain("credit_note_issued", fact.credit_note_id, chart.ledger, legs)


def invoice_voided_postings(fact: InvoiceVoided) -> list[Transfer]:
    """Debit revenue (or deferred revenue) and tax payable; credit the customer's receivable."""
    chart = ChartOfAccounts(fact.tenant, fact.currency)
    receivable = chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, fact.customer)
    codes = (
        TransferCode.INVOICE_VOIDED_REVENUE,
        TransferCode.INVOICE_VOIDED_DEFERRED_REVENUE,
        TransferCode.INVOICE_VOIDED_TAX,
    )
    legs = _line_legs(chart, fact.lines, fact.taxes, receivable, reverse=True, codes=codes)
    return _chain("invoice_voided", fact.invoice_id, chart.ledger, legs)


def payment_postings(fact: PaymentSucceeded) -> list[Transfer]:
    """Debit cash; credit the customer's receivable."""
    chart = ChartOfAccounts(fact.tenant, fact.amount.currency)
    leg = _Leg(
        "payment",
        chart.account_id(AccountKind.CASH),
        chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, fact.customer),
        fact.amount.amount,
        TransferCode.PAYMENT,
    )
    return _chain("payment_succeeded", fact.payment_id, chart.ledger, [leg])


def credit_applied_postings(fact: CreditApplied) -> list[Transfer]:
    """Debit the customer's credit (refused beyond its balance); credit the receivable."""
    chart = ChartOfAccounts(fact.tenant, fact.amount.currency)
    leg = _Leg(
        "credit_applied",
        chart.account_id(AccountKind.CUSTOMER_CREDIT, fact.customer),
        chart.account_id(AccountKind.ACCOUNTS_RECEIVABLE, fact.customer),
        fact.amount.amount,
        TransferCode.CREDIT_APPLIED,
    )
    return _chain("credit_applied", fact.application_id, chart.ledger, [leg])


def revenue_recognized_postings(fact: RevenueRecognized) -> list[Transfer]:
    """Debit deferred revenue (refused beyond what was deferred); credit revenue."""
    chart = ChartOfAccounts(fact.tenant, fact.amount.currency)
    leg = _Leg(
        "revenue_recognized",
        chart.account_id(AccountKind.DEFERRED_REVENUE),
        chart.account_id(AccountKind.REVENUE),
        fact.amount.amount,
        TransferCode.REVENUE_RECOGNIZED,
    )
    return _chain("revenue_recognized", fact.recognition_id, chart.ledger, [leg])


def postings_for(fact: BusinessFact) -> list[Transfer]:
    """The linked chain of transfers that records `fact`."""
    if isinstance(fact, InvoiceFinalized):
        return invoice_finalized_postings(fact)
    if isinstance(fact, CreditNoteIssued):
        return credit_note_postings(fact)
    if isinstance(fact, InvoiceVoided):
        return invoice_voided_postings(fact)
    if isinstance(fact, PaymentSucceeded):
        return payment_postings(fact)
    if isinstance(fact, CreditApplied):
        return credit_applied_postings(fact)
    return revenue_recognized_postings(fact)


# -- trial balance -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    """One account's posted balance, in the debit or the credit column."""

    account_id: int
    ledger: int
    code: int
    debit: int
    credit: int


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """The sums of one ledger (currency): debits equal credits in a sound ledger."""

    ledger: int
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def net(self) -> int:
        """Posted debits minus posted credits: always zero."""
        return self.debits_posted - self.credits_posted

    @property
    def balanced(self) -> bool:
        return self.net == 0 and self.debits_pending == self.credits_pending


@dataclass(frozen=True, slots=True)
class TrialBalance:
    rows: tuple[TrialBalanceRow, ...]
    totals: dict[int, LedgerTotals] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """Whether every ledger's debits equal its credits (posted and pending)."""
        return all(totals.balanced for totals in self.totals.values())


def trial_balance(accounts: Iterable[Account]) -> TrialBalance:
    """Each account's net posted balance and, per ledger, the sums of debits and credits.

    Given all the accounts of a ledger, debits equal credits, because every transfer
    adds the same amount to one account's debits and another's credits.

    >>> from billing_ledger.ledger import Account
    >>> tb = trial_balance([Account(id=1, ledger=840, code=1, debits_posted=5),
    ...                     Account(id=2, ledger=840, code=2, credits_posted=5)])
    >>> tb.balanced, [(row.debit, row.credit) for row in tb.rows]
    (True, [(5, 0), (0, 5)])
    """
    rows = []
    sums: dict[int, list[int]] = {}
    for account in sorted(accounts, key=lambda a: (a.ledger, a.code, a.id)):
        net = account.debits_posted - account.credits_posted
        rows.append(
            TrialBalanceRow(account.id, account.ledger, account.code, max(net, 0), max(-net, 0))
        )
        ledger_sums = sums.setdefault(account.ledger, [0, 0, 0, 0])
        ledger_sums[0] += account.debits_posted
        ledger_sums[1] += account.credits_posted
        ledger_sums[2] += account.debits_pending
        ledger_sums[3] += account.credits_pending
    totals = {ledger: LedgerTotals(ledger, *values) for ledger, values in sums.items()}
    return TrialBalance(tuple(rows), totals)
