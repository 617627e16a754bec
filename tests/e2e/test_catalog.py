"""The catalog across services: pricing learns meters from metering's events, and
metering learns from pricing's which meters plans charge on."""

from __future__ import annotations

from typing import Any

import pytest

from billing_common.ids import uuid7
from tests.e2e.support import Api, assert_problem, eventually

pytestmark = pytest.mark.e2e


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"from_units": "0", "up_to": "100", "unit_price": usd("0.10")},
        {"from_units": "100", "up_to": None, "unit_price": usd("0.05")},
    ],
}


def plan(code: str, meter: str, price: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": code,
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd("49"),
        "charges": [{"key": "usage", "meter_key": meter, "price": price}],
    }


def test_a_plan_charges_on_a_meter_which_then_cannot_be_deleted(api: Api) -> None:
    suffix = uuid7().hex[-8:]
    meter = f"calls_{suffix}"
    created = api.client.post(
        "/v1/meters",
        json={"key": meter, "name": "Calls", "event_types": ["call"], "aggregation": "count"},
    )
    assert created.status_code == 201, created.text

    # Pricing knows the meter once metering's meter_created reached it (a projection).
    def publish() -> dict[str, Any]:
        response = api.client.post("/v1/plans", json=plan(f"pro-{suffix}", meter, GRADUATED))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    published = eventually(publish)
    assert (published["version"], published["meter_keys"]) == (1, [meter])

    # Metering knows the plan once pricing's plan_published reached it.
    def in_use() -> None:
        assert api.client.get(f"/v1/meters/{meter}").json()["plans"] == [published["id"]]

    eventually(in_use)
    assert_problem(api.client.delete(f"/v1/meters/{meter}"), 409, "meter_in_use")
    assert api.client.get(f"/v1/meters/{meter}").json()["archived"] is False


def test_catalog_refusals_are_problems_with_specific_codes(api: Api) -> None:
    suffix = uuid7().hex[-8:]
    gap = {
        "model": "graduated",
        "tiers": [
            {"from_units": "0", "up_to": "100", "unit_price": usd("0.10")},
            {"from_units": "150", "up_to": None, "unit_price": usd("0.05")},
        ],
    }
    cases = [
        (plan(f"a-{suffix}", "no_such_meter", GRADUATED), 422, "unknown_meter"),
        (
            plan(f"b-{suffix}", "no_such_meter", {"model": "per_unit", "unit_price": usd("-1")}),
            422,
            None,
        ),
    ]
    for body, status, code in cases:
        response = api.client.post("/v1/plans", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        if code is not None:
            assert response.json()["code"] == code
    meter = f"m_{suffix}"
    api.client.post(
        "/v1/meters",
        json={"key": meter, "name": "M", "event_types": ["m"], "aggregation": "count"},
    )

    def gap_refused() -> None:
        assert_problem(
            api.client.post("/v1/plans", json=plan(f"c-{suffix}", meter, gap)),
            422,
            "tiers_not_contiguous",
        )

    eventually(gap_refused)
    eur = plan(
        f"d-{suffix}",
        meter,
        {"model": "per_unit", "unit_price": {"amount": "1", "currency": "EUR"}},
    )
    assert_problem(api.client.post("/v1/plans", json=eur), 422, "currency_mismatch")
