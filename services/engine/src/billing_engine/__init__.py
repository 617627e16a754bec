"""bill.sh engine service: the billing clock. It finds the periods that ended on each
customer's clock (the real one, or a test clock) and starts their close saga by events,
retries what does not finish, and serves test clocks (Stripe-like) and billing runs.
"""
