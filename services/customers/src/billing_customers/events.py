"""Topics the customers service produces.

Both carry the whole customer after the fact (event-carried state transfer), with the
same fields as the API's `Customer` (its `id` as `customer_id`), so a consumer keeps
its projection from either.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from billing_common.currency import Currency
from billing_common.events import EventData, Topic
from billing_common.ids import CustomerId
from billing_customers.schemas import BillingAddress, Customer, TaxId


class CustomerCreated(EventData):
    """The fields after `timezone` arrived later: they default to what a customer created
    before them has (no address, no tax ids, no grace period, no parent)."""

    customer_id: CustomerId
    external_id: str
    name: str
    email: str | None
    currency: Currency
    timezone: str
    billing_address: BillingAddress | None = None
    tax_ids: list[TaxId] = Field(default_factory=list)
    invoice_grace_period_days: int = 0
    parent_id: CustomerId | None = None
    bill_to_parent: bool = False
    metadata: dict[str, str]
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None

    @classmethod
    def of(cls, customer: Customer) -> CustomerCreated:
        return cls(**_snapshot(customer))


class CustomerUpdated(EventData):
    """A customer changed: the whole customer after the change, and the names of the
    fields (as the API spells them) whose value changed."""

    customer_id: CustomerId
    external_id: str
    name: str
    email: str | None
    currency: Currency
    timezone: str
    billing_address: BillingAddress | None
    tax_ids: list[TaxId]
    invoice_grace_period_days: int
    parent_id: CustomerId | None
    bill_to_parent: bool
    metadata: dict[str, str]
    created_at: AwareDatetime
    updated_at: AwareDatetime
    changed_fields: list[str] = Field(min_length=1)

    @classmethod
    def of(cls, customer: Customer, changed_fields: list[str]) -> CustomerUpdated:
        return cls(**_snapshot(customer), changed_fields=changed_fields)


def _snapshot(customer: Customer) -> dict[str, Any]:
    fields = {name: getattr(customer, name) for name in Customer.model_fields}
    del fields["object"]
    fields["customer_id"] = fields.pop("id")
    return fields


CUSTOMER_CREATED = Topic(
    "customers",
    "customer_created",
    CustomerCreated,
    "A customer was created; carries the whole customer (event-carried state transfer).",
)

CUSTOMER_UPDATED = Topic(
    "customers",
    "customer_updated",
    CustomerUpdated,
    "A customer changed; carries the whole customer after the change and the names of "
    "the fields that changed.",
)

PRODUCES = (CUSTOMER_CREATED, CUSTOMER_UPDATED)
