"""bill.sh engine service: the billing clock: finds due periods and drives the cycle-close saga by
events.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
