"""bill.sh reporting service: AR aging, MRR movements, deferred revenue (ASC 606).

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
