"""bill.sh rating service: rate_all(): turns usage aggregates and price sheets into rated line
items.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
