"""bill.sh notifications service: outgoing webhooks to customers' endpoints: signed, retried,
circuit-broken.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
