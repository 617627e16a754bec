"""bill.sh metering service: meter definitions, usage ingestion (batches from Kafka), dedup,
aggregation in ClickHouse, current-period accumulators in Redis, usage queries."""
