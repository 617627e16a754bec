"""bill.sh dunning service: retry schedules for failed payments, escalation, suspension.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
