"""bill.sh subscriptions service: subscription state machine, billing periods, proration, trials,
plan changes.

The pure domain: `periods` (where periods begin and end, in the customer's timezone),
`proration` (fractions and prorated amounts), `policy` (the tenant's settings) and `domain`
(the state machine and what each transition bills). Around it: `projections` (plan
versions from pricing, customers from customers), `repository` (its schema), `service`
(the use cases, "now" passed in), `api` (`/v1/subscriptions`, `/v1/subscription_policy`)
and `events` (what it produces and consumes).
"""
