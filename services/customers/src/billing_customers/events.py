"""Topics the customers service produces."""

from __future__ import annotations

from pydantic import AwareDatetime

from billing_common.currency import Currency
from billing_common.events import EventData, Topic
from billing_common.ids import CustomerId


class CustomerCreated(EventData):
    customer_id: CustomerId
    external_id: str
    name: str
    email: str | None
    currency: Currency
    timezone: str
    metadata: dict[str, str]
    created_at: AwareDatetime


CUSTOMER_CREATED = Topic(
    "customers",
    "customer_created",
    CustomerCreated,
    "A customer was created; carries the whole customer (event-carried state transfer).",
)

PRODUCES = (CUSTOMER_CREATED,)
