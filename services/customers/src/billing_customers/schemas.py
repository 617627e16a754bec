"""The public API shapes of customers (validated by the gateway and by the service)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from billing_common.currency import Currency
from billing_common.errors import ValidationFailed
from billing_common.ids import CustomerId
from billing_customers.domain import (
    MAX_INVOICE_GRACE_PERIOD_DAYS,
    MAX_TAX_IDS,
    TAX_ID_TYPES,
    normalize_tax_ids,
    refuse_immutable_fields,
    validate_country,
    validate_timezone,
)

ExternalId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[str, Field(min_length=1, max_length=500)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Metadata = Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=50)]
GracePeriodDays = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_INVOICE_GRACE_PERIOD_DAYS,
        description="Days a draft invoice waits before it is finalized (0 to 30)",
    ),
]
AddressLine = Annotated[str, Field(min_length=1, max_length=200)]


class BillingAddress(BaseModel):
    """Where the customer is billed; `country` decides its taxes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line1: AddressLine
    line2: AddressLine | None = None
    city: AddressLine
    state: AddressLine | None = Field(default=None, description="State, province, county or region")
    postal_code: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    country: str = Field(
        pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2 code, e.g. 'FR', 'US'"
    )


class TaxId(BaseModel):
    """One tax id of the customer (a VAT number, an EIN...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        min_length=1,
        max_length=32,
        description=f"One of: {', '.join(sorted(TAX_ID_TYPES))}",
    )
    value: str = Field(min_length=1, max_length=64)


TaxIds = Annotated[list[TaxId], Field(max_length=MAX_TAX_IDS)]


def _validated_address(address: BillingAddress | None) -> BillingAddress | None:
    if address is None:
        return None
    return address.model_copy(update={"country": validate_country(address.country)})


def _validated_tax_ids(tax_ids: list[TaxId]) -> list[TaxId]:
    normalized = normalize_tax_ids([(tax_id.type, tax_id.value) for tax_id in tax_ids])
    return [TaxId(type=type_, value=value) for type_, value in normalized]


class CustomerCreate(BaseModel):
    """`POST /v1/customers`."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId = Field(description="Your id for this customer; unique per tenant")
    name: Name
    email: Email | None = None
    currency: Currency = Field(description="ISO 4217 code the customer is billed in; final")
    timezone: str = Field(default="UTC", description="IANA timezone where billing days begin")
    billing_address: BillingAddress | None = None
    tax_ids: TaxIds = Field(default_factory=list)
    invoice_grace_period_days: GracePeriodDays = 0
    parent_id: CustomerId | None = Field(
        default=None,
        description="A root customer of the same tenant and currency; a child has no children",
    )
    bill_to_parent: bool = Field(
        default=False,
        description="Bill this child's charges on its parent's invoice (requires parent_id)",
    )
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return validate_timezone(value)

    @field_validator("billing_address")
    @classmethod
    def _known_country(cls, value: BillingAddress | None) -> BillingAddress | None:
        return _validated_address(value)

    @field_validator("tax_ids")
    @classmethod
    def _known_tax_ids(cls, value: list[TaxId]) -> list[TaxId]:
        return _validated_tax_ids(value)


#: Fields an update may set to null (clearing them); the others take a value or are absent.
NULLABLE_UPDATE_FIELDS = frozenset({"email", "billing_address", "parent_id"})


class CustomerUpdate(BaseModel):
    """`PATCH /v1/customers/{customer_id}`: the fields named change, the others stay.

    `email`, `billing_address` and `parent_id` may be set to null to clear them;
    `tax_ids` and `metadata` are replaced whole. `external_id` may change if no other
    customer of the tenant has the new one. `currency` never changes: everything already
    owed by the customer, and its children, is in that currency.
    """

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId | None = None
    name: Name | None = None
    email: Email | None = None
    timezone: str | None = None
    billing_address: BillingAddress | None = None
    tax_ids: TaxIds | None = None
    invoice_grace_period_days: GracePeriodDays | None = None
    parent_id: CustomerId | None = None
    bill_to_parent: bool | None = None
    metadata: Metadata | None = None

    @model_validator(mode="before")
    @classmethod
    def _immutable_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_immutable_fields(list(data))
        return data

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)

    @field_validator("billing_address")
    @classmethod
    def _known_country(cls, value: BillingAddress | None) -> BillingAddress | None:
        return _validated_address(value)

    @field_validator("tax_ids")
    @classmethod
    def _known_tax_ids(cls, value: list[TaxId] | None) -> list[TaxId] | None:
        return None if value is None else _validated_tax_ids(value)

    @model_validator(mode="after")
    def _names_something_and_nulls_only_what_clears(self) -> Self:
        if not self.model_fields_set:
            raise ValidationFailed(
                "a customer update names at least one field",
                errors=[{"field": "(body)", "message": "no field to change", "type": "empty"}],
            )
        nulled = sorted(
            name
            for name in self.model_fields_set - NULLABLE_UPDATE_FIELDS
            if getattr(self, name) is None
        )
        if nulled:
            raise ValidationFailed(
                f"{', '.join(nulled)} cannot be null (only "
                f"{', '.join(sorted(NULLABLE_UPDATE_FIELDS))} can be cleared)",
                errors=[
                    {"field": name, "message": "cannot be null", "type": "null"} for name in nulled
                ],
            )
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this update names, with their new values (None clears)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


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
    billing_address: BillingAddress | None = None
    tax_ids: list[TaxId] = Field(default_factory=list)
    invoice_grace_period_days: int = 0
    parent_id: CustomerId | None = None
    bill_to_parent: bool = False
    metadata: dict[str, str]
    created_at: AwareDatetime
    updated_at: AwareDatetime


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
    parent_id: CustomerId | None = Field(default=None, description="Only this customer's children")


class CustomerChildrenQuery(BaseModel):
    """`GET /v1/customers/{customer_id}/children`."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: CustomerId | None = None
