"""bill.sh wallet service: prepaid credit wallets, draw-down, auto-recharge.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
