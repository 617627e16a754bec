"""bill.sh demo: seed data for development, loaded through the public API.

`python -m billing_demo seed --gateway URL --api-key KEY` creates demo customers
(idempotently); `make dev` runs it once the platform is up. As a service the process
only starts, migrates its schema and answers /health.
"""
