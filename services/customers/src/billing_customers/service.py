"""Customer use cases: each runs in the transaction its caller opened."""

from __future__ import annotations

from datetime import datetime

from billing_common.db import Connection
from billing_common.errors import Conflict, NotFound
from billing_common.ids import CustomerId
from billing_common.outbox import OutboxWriter
from billing_customers import repository
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated
from billing_customers.schemas import Customer, CustomerCreate, CustomerList, CustomerListQuery


class ExternalIdTaken(Conflict):
    code = "customer_external_id_taken"
    title = "A customer with this external id exists"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


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
        metadata=request.metadata,
        created_at=now,
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
        CustomerCreated(
            customer_id=customer.id,
            external_id=customer.external_id,
            name=customer.name,
            email=customer.email,
            currency=customer.currency,
            timezone=customer.timezone,
            metadata=customer.metadata,
            created_at=customer.created_at,
        ),
        subject=customer.id,
        tenant_id=tenant_id,
    )
    return customer


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
    )
    return CustomerList(
        data=customers,
        has_more=has_more,
        next_cursor=customers[-1].id if has_more and customers else None,
    )
