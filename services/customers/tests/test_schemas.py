from __future__ import annotations

import pytest
from pydantic import ValidationError

from billing_customers.schemas import CustomerCreate

VALID = {"external_id": "acme-1", "name": "Acme", "currency": "eur", "timezone": "Europe/Paris"}


def test_a_valid_request_normalizes_the_currency() -> None:
    request = CustomerCreate.model_validate(VALID)
    assert request.currency.code == "EUR"
    assert request.metadata == {}


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
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerCreate.model_validate({**VALID, **change})
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}
