"""The billing cycle end to end: plan, subscription on a test clock, usage, the clock
advanced past the period's end, and the invoice every line of which this test computes by
hand, posted to a ledger that balances.

The path: engine `period_closing` → metering `period_usage_computed` → rating
`period_rated` → invoicing `invoice_finalized` → ledger, and subscriptions renews.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_common.ids import uuid7
from tests.e2e.support import Api, eventually

pytestmark = pytest.mark.e2e

CYCLE_DEADLINE = 120.0


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def money(value: dict[str, str]) -> Decimal:
    assert value["currency"] == "USD", value
    return Decimal(value["amount"])


def created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_month_of_usage_on_a_test_clock_becomes_an_exact_invoice_on_a_balanced_ledger(
    api: Api,
) -> None:
    suffix = uuid7().hex[-8:]
    start = datetime.now(UTC).replace(microsecond=0)
    clock = created(api, "/v1/test_clocks", {"frozen_time": start.isoformat(), "name": suffix})
    customer = api.created_customer(
        {"external_id": f"cycle-{suffix}", "name": "Cycle Co", "currency": "USD"}
    )
    calls, storage = f"calls_{suffix}", f"storage_{suffix}"
    created(
        api,
        "/v1/meters",
        {"key": calls, "name": "Calls", "event_types": [f"call.{suffix}"], "aggregation": "count"},
    )
    created(
        api,
        "/v1/meters",
        {
            "key": storage,
            "name": "Storage",
            "event_types": [f"store.{suffix}"],
            "aggregation": "sum",
            "value_property": "gb",
        },
    )
    plan_body = {
        "code": f"pro-{suffix}",
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd("49"),
        "base_fee_timing": "in_advance",
        "charges": [
            {
                "key": "calls",
                "meter_key": calls,
                "price": {
                    "model": "graduated",
                    "tiers": [
                        {"from_units": "0", "up_to": "100", "unit_price": usd("0.10")},
                        {"from_units": "100", "up_to": None, "unit_price": usd("0.05")},
                    ],
                },
            },
            {
                "key": "storage",
                "meter_key": storage,
                "price": {"model": "package", "package_size": "10", "package_price": usd("5")},
            },
        ],
    }
    # Pricing knows the meters, and the engine the customer, once their events arrived.
    plan = eventually(lambda: created(api, "/v1/plans", plan_body))
    eventually(
        lambda: created(
            api, f"/v1/test_clocks/{clock['id']}/customers", {"customer_id": customer["id"]}
        )
    )
    subscription = eventually(
        lambda: created(
            api,
            "/v1/subscriptions",
            {
                "customer_id": customer["id"],
                "plan_id": plan["id"],
                "start": start.isoformat(),
                "billing_anchor": "anniversary",
            },
        )
    )
    assert subscription["status"] == "active"

    # 1,500 calls and 23 GB during the first period.
    events: list[dict[str, Any]] = [
        {
            "id": f"call-{n}",
            "customer": customer["external_id"],
            "type": f"call.{suffix}",
            "timestamp": (start + timedelta(milliseconds=n)).isoformat(),
        }
        for n in range(1500)
    ]
    events += [
        {
            "id": f"gb-{n}",
            "customer": customer["id"],
            "type": f"store.{suffix}",
            "timestamp": (start + timedelta(seconds=1)).isoformat(),
            "properties": {"gb": gb},
        }
        for n, gb in enumerate(["10.5", "12.5"])
    ]
    for offset in range(0, len(events), 1000):
        response = api.client.post("/v1/events", json=events[offset : offset + 1000])
        assert response.status_code == 202, response.text
        assert response.json()["rejected"] == []

    def usage_recorded() -> None:
        for meter, expected in ((calls, "1500"), (storage, "23")):
            response = api.client.get(
                f"/v1/meters/{meter}/usage",
                params={
                    "customer": customer["id"],
                    "from": start.isoformat(),
                    "to": (start + timedelta(days=1)).isoformat(),
                    "source": "store",
                },
            )
            assert response.status_code == 200, response.text
            assert [p["value"] for p in response.json()["data"]] == [expected]

    eventually(usage_recorded)

    advanced = created(
        api,
        f"/v1/test_clocks/{clock['id']}/advance",
        {"to": (start + timedelta(days=32)).isoformat()},
    )
    assert advanced["status"] in ("advancing", "ready")

    def clock_ready() -> dict[str, Any]:
        response = api.client.get(f"/v1/test_clocks/{clock['id']}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "ready", body
        return body

    ready = eventually(clock_ready, timeout=CYCLE_DEADLINE, interval=1.0)
    assert ready["sagas"]["done"] >= 1

    response = api.client.get("/v1/invoices", params={"customer": customer["id"]})
    assert response.status_code == 200, response.text
    [invoice] = [i for i in response.json()["data"] if i["status"] != "draft"]
    assert invoice["status"] == "finalized"
    assert invoice["number"].startswith(f"INV-{start.year}-")
    by_kind = sorted((line["kind"], money(line["amount"])) for line in invoice["lines"])
    # Base fee 49 in advance; calls 100 x 0.10 + 1,400 x 0.05 = 80; storage 23 GB in
    # packages of 10 rounded up: 3 x 5 = 15.
    assert by_kind == [
        ("base_fee", Decimal(49)),
        ("usage", Decimal(15)),
        ("usage", Decimal(80)),
    ]
    assert money(invoice["subtotal"]) == Decimal(144)
    assert money(invoice["total"]) == Decimal(144)

    pdf = api.client.get(f"/v1/invoices/{invoice['id']}/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.content.startswith(b"%PDF-")

    def posted() -> None:
        balance = api.client.get(f"/v1/customers/{customer['id']}/balance").json()
        [usd_balance] = balance["balances"]
        assert money(usd_balance["accounts_receivable"]) == Decimal(144)

    eventually(posted)
    trial = api.client.get("/v1/ledger/trial_balance").json()
    assert trial["balanced"] is True
    for ledger in trial["ledgers"]:
        assert ledger["debits_posted"] == ledger["credits_posted"]

    # The subscription moved on to its second period.
    renewed = api.client.get(f"/v1/subscriptions/{subscription['id']}").json()
    assert renewed["current_period_start"] != subscription["current_period_start"]
