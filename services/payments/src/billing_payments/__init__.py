"""bill.sh payments service: Stripe PaymentIntents, webhook verification, refunds.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
