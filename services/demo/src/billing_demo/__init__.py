"""bill.sh demo service: seed data for development, loaded through the public API.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
