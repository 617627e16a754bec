"""bill.sh pricing service: the catalog: products, plans and their versions, per-customer
price overrides, coupons; and the meters it projects to refuse charges on unknown ones."""
