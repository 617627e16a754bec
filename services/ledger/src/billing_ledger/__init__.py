"""bill.sh ledger service: double-entry accounts and transfers with TigerBeetle semantics.

It posts invoicing's facts (`invoice_finalized`, `invoice_voided`,
`credit_note_issued`) as linked chains of balanced transfers (`postings`), on
TigerBeetle or on an in-process ledger journaled in PostgreSQL (`books`), and
serves accounts, balances and trial balances (`api`).
"""
