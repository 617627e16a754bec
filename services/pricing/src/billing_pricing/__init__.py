"""bill.sh pricing service: the catalog: products, plans, prices, plan versions, price overrides.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
