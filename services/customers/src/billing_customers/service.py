"""Customer use cases: each runs in the transaction its caller opened.

Hierarchy changes lock the rows they depend on: the customer and its new parent, in
id order. Any change that could break the one-level rule takes one of those locks
(a customer gaining a parent locks itself and the parent; a customer created under a
parent locks the parent), so two concurrent changes cannot together build a two-level
hierarchy: the second waits, then sees the first.
"""

from __future__ import annotations

from datetime import datetime

from billing_common.db import Connection
from billing_common.errors import Conflict, NotFound
from billing_common.ids import CustomerId
from billing_common.outbox import OutboxWriter
from billing_customers import domain, repository
from billing_customers.events import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CustomerCreated,
    CustomerUpdated,
)
from billing_customers.schemas import (
    Customer,
    CustomerChildrenQuery,
    CustomerCreate,
    CustomerList,
    CustomerListQuery,
    CustomerUpdate,
)


class ExternalIdTaken(Conflict):
    code = "customer_external_id_taken"
    title = "A customer with this external id exists"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


def _member(customer: Customer) -> domain.HierarchyMember:
    return domain.HierarchyMember(customer.id, customer.currency, customer.parent_id)


async def create_customer(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    request: CustomerCreate,
    *,
    now: datetime,
) -> Customer:
    customer = Customer(
        id=CustomerId.new(),
        external_id=request.external_id,
        name=request.name,
        email=request.email,
        currency=request.currency,
        timezone=request.timezone,
        billing_address=request.billing_address,
        tax_ids=request.tax_ids,
        invoice_grace_period_days=request.invoice_grace_period_days,
        parent_id=request.parent_id,
        bill_to_parent=request.bill_to_parent,
        metadata=request.metadata,
        created_at=now,
        updated_at=now,
    )
    parent = None
    if customer.parent_id is not None:
        parent = (await repository.lock(conn, tenant_id, [customer.parent_id])).get(
            customer.parent_id
        )
    domain.check_hierarchy(
        _member(customer),
        bill_to_parent=customer.bill_to_parent,
        has_children=False,
        parent=None if parent is None else _member(parent),
    )
    try:
        await repository.insert(conn, tenant_id, customer)
    except repository.DuplicateExternalId as exc:
        raise ExternalIdTaken(
            f"external_id {request.external_id!r} is already used by another customer"
        ) from exc
    await outbox.add(
        conn,
        CUSTOMER_CREATED,
        CustomerCreated.of(customer),
        subject=customer.id,
        tenant_id=tenant_id,
    )
    return customer


async def update_customer(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    customer_id: str,
    request: CustomerUpdate,
    *,
    now: datetime,
) -> Customer:
    """Apply the fields `request` names. A request that changes nothing answers the
    customer as it is, writes nothing and publishes nothing."""
    changes = request.changes()
    new_parent = changes.get("parent_id")
    locked = await repository.lock(
        conn, tenant_id, [customer_id] if new_parent is None else [customer_id, new_parent]
    )
    before = locked.get(customer_id)
    if before is None:
        raise CustomerNotFound(f"no customer {customer_id}")
    candidate = before.model_copy(update=changes)
    changed = domain.changed_fields(
        before.model_dump(exclude={"updated_at"}), candidate.model_dump(exclude={"updated_at"})
    )
    if not changed:
        return before
    if "parent_id" in changed or "bill_to_parent" in changed:
        parent: Customer | None = None
        if "parent_id" in changed:
            parent = None if candidate.parent_id is None else locked.get(candidate.parent_id)
        elif candidate.parent_id is not None:
            # Only bill_to_parent changes: the parent stays as it is (its currency never
            # changes, and having a child it cannot become a child), so no lock is needed.
            parent = await repository.get(conn, tenant_id, candidate.parent_id)
        domain.check_hierarchy(
            _member(candidate),
            bill_to_parent=candidate.bill_to_parent,
            has_children=(
                "parent_id" in changed
                and candidate.parent_id is not None
                and await repository.has_children(conn, tenant_id, customer_id)
            ),
            parent=None if parent is None else _member(parent),
        )
    after = candidate.model_copy(update={"updated_at": now})
    try:
        await repository.update(conn, tenant_id, after)
    except repository.DuplicateExternalId as exc:
        raise ExternalIdTaken(
            f"external_id {after.external_id!r} is already used by another customer"
        ) from exc
    await outbox.add(
        conn,
        CUSTOMER_UPDATED,
        CustomerUpdated.of(after, changed),
        subject=after.id,
        tenant_id=tenant_id,
    )
    return after


async def get_customer(conn: Connection, tenant_id: str, customer_id: str) -> Customer:
    customer = await repository.get(conn, tenant_id, customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id}")
    return customer


async def list_customers(
    conn: Connection, tenant_id: str, query: CustomerListQuery
) -> CustomerList:
    customers, has_more = await repository.list_page(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        external_id=query.external_id,
        parent_id=query.parent_id,
    )
    return _page(customers, has_more)


async def list_children(
    conn: Connection, tenant_id: str, customer_id: str, query: CustomerChildrenQuery
) -> CustomerList:
    """The children of a customer that exists (404 otherwise), oldest first."""
    await get_customer(conn, tenant_id, customer_id)
    customers, has_more = await repository.list_page(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        external_id=None,
        parent_id=customer_id,
    )
    return _page(customers, has_more)


def _page(customers: list[Customer], has_more: bool) -> CustomerList:
    return CustomerList(
        data=customers,
        has_more=has_more,
        next_cursor=customers[-1].id if has_more and customers else None,
    )
