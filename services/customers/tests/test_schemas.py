from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from billing_common.currency import Currency
from billing_common.errors import BillingError, ValidationFailed
from billing_common.ids import CustomerId
from billing_customers.domain import (
    CustomerFieldImmutable,
    InvalidCountry,
    InvalidTaxIdType,
    InvalidTaxIdValue,
)
from billing_customers.events import CustomerCreated, CustomerUpdated
from billing_customers.schemas import BillingAddress, Customer, CustomerCreate, CustomerUpdate

VALID = {"external_id": "acme-1", "name": "Acme", "currency": "eur", "timezone": "Europe/Paris"}
ADDRESS = {"line1": "1 Rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "fr"}


def test_a_valid_request_normalizes_the_currency() -> None:
    request = CustomerCreate.model_validate(VALID)
    assert request.currency.code == "EUR"
    assert request.metadata == {}


def test_new_fields_have_defaults() -> None:
    request = CustomerCreate.model_validate(VALID)
    assert request.billing_address is None
    assert request.tax_ids == []
    assert request.invoice_grace_period_days == 0
    assert request.parent_id is None
    assert request.bill_to_parent is False


def test_address_and_tax_ids_are_normalized() -> None:
    request = CustomerCreate.model_validate(
        {
            **VALID,
            "billing_address": ADDRESS,
            "tax_ids": [{"type": "eu_vat", "value": "fr 12 345678901"}],
            "invoice_grace_period_days": 30,
        }
    )
    assert request.billing_address == BillingAddress(
        line1="1 Rue de Rivoli", city="Paris", postal_code="75001", country="FR"
    )
    assert [(t.type, t.value) for t in request.tax_ids] == [("eu_vat", "FR12345678901")]
    assert request.invoice_grace_period_days == 30


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XYZ"}, "currency"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"external_id": "has space"}, "external_id"),
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
        ({"metadata": {str(i): "v" for i in range(51)}}, "metadata"),
        ({"invoice_grace_period_days": 31}, "invoice_grace_period_days"),
        ({"invoice_grace_period_days": -1}, "invoice_grace_period_days"),
        ({"billing_address": {"line1": "x", "country": "FR"}}, "billing_address"),
        ({"billing_address": {**ADDRESS, "country": "FRA"}}, "billing_address"),
        ({"tax_ids": [{"type": "us_ein"}]}, "tax_ids"),
        ({"tax_ids": [{"type": "us_ein", "value": f"12-345678{i}"} for i in range(11)]}, "tax_ids"),
        ({"parent_id": "inv_01JD3Q0000000000000000000"}, "parent_id"),
        ({"bill_to_parent": "maybe"}, "bill_to_parent"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerCreate.model_validate({**VALID, **change})
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        (
            {"billing_address": {**ADDRESS, "country": "UK"}},
            InvalidCountry,
            "billing_address.country",
        ),
        (
            {"tax_ids": [{"type": "us_ein", "value": "12-3456789"}, {"type": "vat", "value": "1"}]},
            InvalidTaxIdType,
            "tax_ids.1.type",
        ),
        ({"tax_ids": [{"type": "gb_vat", "value": "123"}]}, InvalidTaxIdValue, "tax_ids.0.value"),
    ],
)
def test_refusals_with_their_own_code_name_the_field(
    change: dict[str, object], error: type[BillingError], field: str
) -> None:
    for model in (CustomerCreate, CustomerUpdate):
        body = {**VALID, **change} if model is CustomerCreate else change
        with pytest.raises(error) as caught:
            model.model_validate(body)
        assert caught.value.extensions["errors"][0]["field"] == field


class TestCustomerUpdate:
    def test_only_the_named_fields_change_and_null_clears(self) -> None:
        update = CustomerUpdate.model_validate({"name": "New", "email": None, "parent_id": None})
        assert update.changes() == {"name": "New", "email": None, "parent_id": None}

    def test_currency_cannot_change(self) -> None:
        with pytest.raises(CustomerFieldImmutable) as caught:
            CustomerUpdate.model_validate({"name": "x", "currency": "USD"})
        assert caught.value.extensions["fields"] == ["currency"]

    def test_an_empty_update_is_refused(self) -> None:
        with pytest.raises(ValidationFailed, match="at least one field"):
            CustomerUpdate.model_validate({})

    @pytest.mark.parametrize(
        "field", ["name", "external_id", "timezone", "tax_ids", "metadata", "bill_to_parent"]
    )
    def test_only_clearable_fields_take_null(self, field: str) -> None:
        with pytest.raises(ValidationFailed) as caught:
            CustomerUpdate.model_validate({field: None})
        assert caught.value.code == "validation_failed"
        assert caught.value.extensions["errors"] == [
            {"field": field, "message": "cannot be null", "type": "null"}
        ]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"timezone": "Nowhere/City"}, "timezone"),
            ({"invoice_grace_period_days": 45}, "invoice_grace_period_days"),
            ({"object": "customer"}, "object"),
            ({"id": "cus_x"}, "id"),
        ],
    )
    def test_invalid_fields_are_named(self, change: dict[str, object], field: str) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerUpdate.model_validate(change)
        assert field in {str(error["loc"][0]) for error in caught.value.errors()}


class TestEvents:
    def test_customer_created_before_the_new_fields_still_reads(self) -> None:
        """An event written by the previous version, without the new fields."""
        old: dict[str, Any] = {
            "customer_id": str(CustomerId.new()),
            "external_id": "a",
            "name": "A",
            "email": None,
            "currency": "USD",
            "timezone": "UTC",
            "metadata": {},
            "created_at": "2026-04-01T08:00:00Z",
        }
        event = CustomerCreated.model_validate(old)
        assert event.billing_address is None
        assert event.tax_ids == []
        assert event.invoice_grace_period_days == 0
        assert event.parent_id is None
        assert event.bill_to_parent is False
        assert event.updated_at is None

    def test_events_carry_exactly_the_fields_of_the_api_customer(self) -> None:
        customer_fields = (set(Customer.model_fields) - {"object", "id"}) | {"customer_id"}
        assert set(CustomerCreated.model_fields) == customer_fields
        assert set(CustomerUpdated.model_fields) == customer_fields | {"changed_fields"}

    def test_an_update_names_what_changed(self) -> None:
        now = datetime(2026, 4, 1, tzinfo=UTC)
        customer = Customer(
            id=CustomerId.new(),
            external_id="a",
            name="A",
            email=None,
            currency=Currency.of("USD"),
            timezone="UTC",
            metadata={},
            created_at=now,
            updated_at=now,
        )
        with pytest.raises(ValidationError):
            CustomerUpdated.of(customer, [])
        event = CustomerUpdated.of(customer, ["name"])
        assert event.customer_id == customer.id
        assert event.changed_fields == ["name"]
