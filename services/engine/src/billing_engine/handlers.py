"""What the engine consumes, each in the consumer's inbox transaction (a redelivery
changes nothing): subscriptions and customers (projections) and finalized invoices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated
from billing_engine import service
from billing_invoicing.events import INVOICE_FINALIZED, InvoiceFinalized
from billing_subscriptions.events import (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SubscriptionCreated,
    SubscriptionUpdated,
)


async def subscription_created(conn: Connection, event: CloudEvent[SubscriptionCreated]) -> None:
    await service.project_subscription(conn, event.tenantid, event.data)


async def subscription_updated(conn: Connection, event: CloudEvent[SubscriptionUpdated]) -> None:
    """Keeps the latest revision: an older one arriving late is ignored."""
    await service.project_subscription(conn, event.tenantid, event.data)


async def customer_created(conn: Connection, event: CloudEvent[CustomerCreated]) -> None:
    await service.project_customer(conn, event)


def invoice_finalized(
    clock: Callable[[], datetime],
) -> Callable[[Connection, CloudEvent[InvoiceFinalized]], Awaitable[None]]:
    async def handle(conn: Connection, event: CloudEvent[InvoiceFinalized]) -> None:
        await service.invoice_finalized(conn, event, now=clock())

    return handle


def register(runtime: ServiceRuntime) -> None:
    """Route every topic of `events.CONSUMES` to its handler."""
    runtime.consumer.handle(SUBSCRIPTION_CREATED, subscription_created)
    runtime.consumer.handle(SUBSCRIPTION_UPDATED, subscription_updated)
    runtime.consumer.handle(CUSTOMER_CREATED, customer_created)
    runtime.consumer.handle(INVOICE_FINALIZED, invoice_finalized(runtime.clock))
