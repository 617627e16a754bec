"""Ledger use cases: post invoicing's facts, and read accounts, balances and trial balances.

Postings run in the transaction of the consumer's inbox (the caller's `conn`);
`books.record` makes them durable with it (see `books`). Reads take the account
directory from PostgreSQL and the balances from the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence

from billing_common.currency import Currency
from billing_common.db import Connection
from billing_common.errors import NotFound, ServiceUnavailable
from billing_common.events import CloudEvent
from billing_common.ids import CustomerId, InvoiceId, TenantId
from billing_common.money import Money
from billing_invoicing import events as invoicing
from billing_ledger import domain, repository
from billing_ledger.accounts import AccountKind, ChartOfAccounts, ledger_number, normal_balance_of
from billing_ledger.books import Books
from billing_ledger.ledger import BATCH_MAX, Account, ChainOutcome, Transfer
from billing_ledger.postings import (
    credit_note_postings,
    invoice_finalized_postings,
    invoice_voided_postings,
    trial_balance,
)
from billing_ledger.repository import AccountEntry
from billing_ledger.schemas import (
    AccountBalances,
    CustomerBalance,
    CustomerCurrencyBalance,
    LedgerAccount,
    LedgerAccountList,
    LedgerAccountListQuery,
    LedgerTrialBalance,
    TrialBalanceQuery,
    format_account_id,
)


class LedgerAccountNotFound(NotFound):
    code = "ledger_account_not_found"
    title = "Ledger account not found"


class InvoiceNotPostedYet(ServiceUnavailable):
    """A void of a finalized invoice arrived before the invoice (another topic): retried."""

    code = "ledger_invoice_not_posted_yet"
    title = "The invoice is not posted yet"


# -- postings -------------------------------------------------------------------------------


async def _post(
    books: Books,
    conn: Connection,
    tenant: TenantId,
    currency: Currency,
    customer: CustomerId,
    chain: Sequence[Transfer],
) -> ChainOutcome | None:
    """Create the tenant's chart and the customer's accounts on first use, then the chain."""
    chart = ChartOfAccounts(tenant, currency)
    kinds: list[tuple[AccountKind, CustomerId | None, Account]] = [
        (kind, None, chart.account(kind)) for kind in AccountKind if not kind.per_customer
    ] + [
        (kind, customer, chart.account(kind, customer)) for kind in AccountKind if kind.per_customer
    ]
    await repository.register_accounts(conn, tenant, currency, kinds)
    return await books.record(conn, [account for _, _, account in kinds], chain)


async def post_invoice_finalized(
    books: Books, conn: Connection, event: CloudEvent[invoicing.InvoiceFinalized]
) -> ChainOutcome | None:
    """Receivable grows by the total; revenue by each line, tax payable by each tax."""
    tenant, data = TenantId.parse(event.tenantid), event.data
    fact = domain.invoice_finalized_fact(tenant, data)
    await repository.save_invoice(
        conn,
        tenant,
        invoice_id=fact.invoice_id,
        customer_id=fact.customer,
        currency=fact.currency,
        total=fact.total,
        finalized_at=data.finalized_at,
        lines=domain.posted_lines(data),
    )
    return await _post(
        books, conn, tenant, fact.currency, fact.customer, invoice_finalized_postings(fact)
    )


async def post_credit_note_issued(
    books: Books, conn: Connection, event: CloudEvent[invoicing.CreditNoteIssued]
) -> ChainOutcome | None:
    """Revenue and tax payable give back the credited lines, to cash (refund) or to the
    customer's credit (customer balance)."""
    tenant, data = TenantId.parse(event.tenantid), event.data
    invoice = await repository.get_invoice(conn, tenant, InvoiceId.parse(data.invoice_id))
    treatments = {} if invoice is None else {line.line_id: line.treatment for line in invoice.lines}
    fact = domain.credit_note_fact(tenant, data, treatments)
    await repository.save_credited_lines(
        conn,
        tenant,
        credit_note_id=fact.credit_note_id,
        invoice_id=InvoiceId.parse(data.invoice_id),
        lines=domain.credited_lines(data),
    )
    return await _post(
        books, conn, tenant, fact.currency, fact.customer, credit_note_postings(fact)
    )


async def post_invoice_voided(
    books: Books, conn: Connection, event: CloudEvent[invoicing.InvoiceVoided]
) -> ChainOutcome | None:
    """What the invoice still posts (less its credit notes) goes back off the receivable.

    A voided draft (no number) was never posted: nothing to reverse. A numbered invoice
    the ledger has not posted yet is retried (`InvoiceNotPostedYet`): its
    `invoice_finalized` is on another topic and may arrive later.
    """
    tenant, data = TenantId.parse(event.tenantid), event.data
    invoice_id = InvoiceId.parse(data.invoice_id)
    invoice = await repository.get_invoice(conn, tenant, invoice_id)
    if invoice is None:
        if data.number is None:
            return None
        raise InvoiceNotPostedYet(f"invoice {invoice_id} is voided but not posted yet")
    credited = await repository.credited(conn, tenant, invoice_id, invoice.currency)
    fact = domain.invoice_voided_fact(tenant, data, invoice.lines, credited)
    await repository.mark_voided(conn, tenant, invoice_id, data.voided_at)
    return await _post(
        books, conn, tenant, fact.currency, fact.customer, invoice_voided_postings(fact)
    )


# -- reads ----------------------------------------------------------------------------------


async def _lookup(books: Books, ids: Sequence[int]) -> dict[int, Account]:
    found: dict[int, Account] = {}
    for start in range(0, len(ids), BATCH_MAX):
        for account in await books.ledger.lookup_accounts(list(ids[start : start + BATCH_MAX])):
            found[account.id] = account
    return found


def _resource(entry: AccountEntry, account: Account | None) -> LedgerAccount:
    """The account as the API shows it; an account the ledger lacks (its creation still
    in flight) shows zero balances."""
    current = account if account is not None else entry.account
    currency = entry.currency

    def money(pico: int) -> Money:
        return Money(pico, currency)

    return LedgerAccount(
        id=format_account_id(entry.id),
        kind=entry.kind,
        customer_id=entry.customer_id,
        currency=currency,
        ledger=current.ledger,
        code=current.code,
        normal_balance=entry.kind.normal_balance,
        balances=AccountBalances(
            debits_posted=money(current.debits_posted).to_public(),
            credits_posted=money(current.credits_posted).to_public(),
            debits_pending=money(current.debits_pending).to_public(),
            credits_pending=money(current.credits_pending).to_public(),
            balance=money(normal_balance_of(current)).to_public(),
        ),
    )


async def list_accounts(
    books: Books, conn: Connection, tenant_id: str, query: LedgerAccountListQuery
) -> LedgerAccountList:
    entries = await repository.list_accounts(
        conn,
        tenant_id,
        customer_id=query.customer_id,
        currency=None if query.currency is None else query.currency.code,
        starting_after=query.starting_after_id,
        limit=query.limit + 1,
    )
    page, has_more = entries[: query.limit], len(entries) > query.limit
    found = await _lookup(books, [entry.id for entry in page])
    data = [_resource(entry, found.get(entry.id)) for entry in page]
    return LedgerAccountList(
        data=data, has_more=has_more, next_cursor=data[-1].id if has_more and data else None
    )


async def get_account(
    books: Books, conn: Connection, tenant_id: str, account_id: int
) -> LedgerAccount:
    entry = await repository.get_account(conn, tenant_id, account_id)
    if entry is None:
        raise LedgerAccountNotFound(f"no ledger account {format_account_id(account_id)}")
    found = await _lookup(books, [entry.id])
    return _resource(entry, found.get(entry.id))


async def get_trial_balance(
    books: Books, conn: Connection, tenant_id: str, query: TrialBalanceQuery
) -> LedgerTrialBalance:
    """Per currency (ledger): each kind's posted debits and credits, and the totals.

    Every transfer debits one account and credits another by the same amount in one
    ledger, so in each ledger the total debits equal the total credits.
    """
    entries = await repository.list_accounts(
        conn, tenant_id, currency=None if query.currency is None else query.currency.code
    )
    found = await _lookup(books, [entry.id for entry in entries])
    accounts = [found.get(entry.id, entry.account) for entry in entries]
    report = trial_balance(accounts)
    by_ledger: dict[int, Currency] = {}
    kinds: dict[tuple[int, AccountKind], list[int]] = {}
    for entry, account in zip(entries, accounts, strict=True):
        by_ledger[account.ledger] = entry.currency
        sums = kinds.setdefault((account.ledger, entry.kind), [0, 0, 0])
        sums[0] += account.debits_posted
        sums[1] += account.credits_posted
        sums[2] += normal_balance_of(account)
    if query.currency is not None and not entries:
        by_ledger[ledger_number(query.currency)] = query.currency
    return LedgerTrialBalance.build(report, by_ledger, kinds)


async def get_customer_balance(
    books: Books, conn: Connection, tenant_id: str, customer_id: CustomerId
) -> CustomerBalance:
    """The customer's receivable and credit in each currency it has accounts in (none until
    its first invoice posts)."""
    entries = await repository.list_accounts(conn, tenant_id, customer_id=customer_id)
    found = await _lookup(books, [entry.id for entry in entries])
    per_currency: dict[str, dict[AccountKind, int]] = {}
    for entry in entries:
        account = found.get(entry.id, entry.account)
        per_currency.setdefault(entry.currency.code, {})[entry.kind] = normal_balance_of(account)
    balances = []
    for code in sorted(per_currency):
        currency = Currency.of(code)
        sums = per_currency[code]
        receivable = Money(sums.get(AccountKind.ACCOUNTS_RECEIVABLE, 0), currency)
        credit = Money(sums.get(AccountKind.CUSTOMER_CREDIT, 0), currency)
        balances.append(
            CustomerCurrencyBalance(
                currency=currency,
                accounts_receivable=receivable.to_public(),
                customer_credit=credit.to_public(),
                net_owed=(receivable - credit).to_public(),
            )
        )
    return CustomerBalance(customer_id=customer_id, balances=balances)


__all__ = [
    "InvoiceNotPostedYet",
    "LedgerAccountNotFound",
    "get_account",
    "get_customer_balance",
    "get_trial_balance",
    "list_accounts",
    "post_credit_note_issued",
    "post_invoice_finalized",
    "post_invoice_voided",
]
