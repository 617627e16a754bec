"""bill.sh spend-alerts service: usage and spend thresholds, soft and hard limits.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
