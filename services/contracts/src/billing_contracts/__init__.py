"""bill.sh contracts service: contracts, amendment chain, co-terming, commitments, draw-down, true-
up.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
