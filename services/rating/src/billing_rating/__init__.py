"""bill.sh rating service: rate_all(): turns usage aggregates and price sheets into rated line
items.

`domain.rate_all` is the pure engine; the service keeps its own projection of the
catalog (plan versions and price overrides, from pricing's events), rebuilds a plan
version's price sheet from it (`service.rate_period`, what the billing cycle calls), and
answers `POST /v1/rating/preview`.
"""
