"""bill.sh ledger service: double-entry accounts and transfers with TigerBeetle semantics.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
