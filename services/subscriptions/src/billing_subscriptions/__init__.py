"""bill.sh subscriptions service: subscription state machine, billing periods, proration, trials,
plan changes.

The pure domain is built: `periods` (where periods begin and end, in the
customer's timezone), `proration` (fractions and prorated amounts), `policy`
(the tenant's settings) and `domain` (the state machine and what each
transition bills). Not wired yet: the process starts, connects, migrates its
schema (the outbox and inbox) and answers /health, and does nothing else.
"""
