"""bill.sh subscriptions service: subscription state machine, billing periods, proration, trials,
plan changes.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
