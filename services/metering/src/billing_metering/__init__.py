"""bill.sh metering service: usage events: meter definitions, ingestion, dedup, aggregation
(ClickHouse), hot accumulators (Redis).

Not built yet: the process starts, connects, migrates its schema (the
outbox and inbox) and answers /health, and does nothing else.
"""
