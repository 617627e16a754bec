"""The public API shapes of customers (validated by the gateway and by the service)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from billing_common.currency import Currency
from billing_common.ids import CustomerId
from billing_customers.domain import validate_timezone

ExternalId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Metadata = Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=50)]


class CustomerCreate(BaseModel):
    """`POST /v1/customers`."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId = Field(description="Your id for this customer; unique per tenant")
    name: str = Field(min_length=1, max_length=500)
    email: Email | None = None
    currency: Currency = Field(description="ISO 4217 code the customer is billed in")
    timezone: str = Field(default="UTC", description="IANA timezone where billing days begin")
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return validate_timezone(value)


class Customer(BaseModel):
    """A customer as the API returns it."""

    model_config = ConfigDict(frozen=True)

    object: str = "customer"
    id: CustomerId
    external_id: str
    name: str
    email: str | None
    currency: Currency
    timezone: str
    metadata: dict[str, str]
    created_at: AwareDatetime


class CustomerList(BaseModel):
    object: str = "list"
    data: list[Customer]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class CustomerListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: CustomerId | None = None
    external_id: str | None = None
