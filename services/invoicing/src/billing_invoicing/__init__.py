"""bill.sh invoicing service: fees, draft/finalize/void, numbering, credit notes, taxes.

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
