"""A small world for billing scenarios through the public API: a test clock, customers,
meters, a plan, subscriptions, usage, advancing time, and reading invoices and the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billing_common.ids import uuid7
from tests.e2e.support import Api, eventually

CYCLE_DEADLINE = 120.0
CENT = Decimal("0.01")


def usd(amount: str | Decimal) -> dict[str, str]:
    return {"amount": str(amount), "currency": "USD"}


def money(value: dict[str, str]) -> Decimal:
    assert value["currency"] == "USD", value
    return Decimal(value["amount"])


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class World:
    api: Api
    suffix: str = field(default_factory=lambda: uuid7().hex[-8:])
    start: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    clock: dict[str, Any] = field(default_factory=dict)
    calls_meter: str = ""

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.client.post(path, json=body if body is not None else {})
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str, **params: str) -> dict[str, Any]:
        response = self.api.client.get(path, params=params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def setup(self) -> None:
        self.clock = self.post(
            "/v1/test_clocks", {"frozen_time": self.start.isoformat(), "name": self.suffix}
        )
        self.calls_meter = f"calls_{self.suffix}"
        self.post(
            "/v1/meters",
            {
                "key": self.calls_meter,
                "name": "Calls",
                "event_types": [f"call.{self.suffix}"],
                "aggregation": "count",
            },
        )

    def plan(self, code: str, base_fee: str, *, unit_price: str = "0.10", **extra: Any) -> str:
        body = {
            "code": f"{code}-{self.suffix}",
            "name": code,
            "currency": "USD",
            "interval": "month",
            "base_fee": usd(base_fee),
            "base_fee_timing": "in_advance",
            "charges": [
                {
                    "key": "calls",
                    "meter_key": self.calls_meter,
                    "price": {"model": "per_unit", "unit_price": usd(unit_price)},
                }
            ],
            **extra,
        }
        plan = eventually(lambda: self.post("/v1/plans", body))
        plan_id: str = plan["id"]
        return plan_id

    def customer(self, name: str, **extra: Any) -> dict[str, Any]:
        customer = self.api.created_customer(
            {"external_id": f"{name}-{self.suffix}", "name": name, "currency": "USD", **extra}
        )
        eventually(
            lambda: self.post(
                f"/v1/test_clocks/{self.clock['id']}/customers", {"customer_id": customer["id"]}
            )
        )
        return customer

    def subscribe(self, customer: dict[str, Any], plan_id: str, **extra: Any) -> dict[str, Any]:
        body = {
            "customer_id": customer["id"],
            "plan_id": plan_id,
            "start": self.start.isoformat(),
            "billing_anchor": "anniversary",
            **extra,
        }
        return eventually(lambda: self.post("/v1/subscriptions", body))

    def send_calls(self, customer: dict[str, Any], count: int, at: datetime) -> None:
        events = [
            {
                "id": f"call-{customer['id']}-{n}",
                "customer": customer["id"],
                "type": f"call.{self.suffix}",
                "timestamp": at.isoformat(),
            }
            for n in range(count)
        ]
        response = self.api.client.post("/v1/events", json=events)
        assert response.status_code == 202, response.text

        def recorded() -> None:
            usage = self.get(
                f"/v1/meters/{self.calls_meter}/usage",
                customer=customer["id"],
                **{"from": self.start.isoformat(), "to": (at + timedelta(days=1)).isoformat()},
                source="store",
            )
            assert sum(int(p["value"]) for p in usage["data"]) >= count

        eventually(recorded)

    def advance(self, days: int) -> None:
        to = datetime.fromisoformat(self.clock["frozen_time"]) + timedelta(days=days)
        self.clock = self.post(
            f"/v1/test_clocks/{self.clock['id']}/advance", {"to": to.isoformat()}
        )

        def ready() -> None:
            clock = self.get(f"/v1/test_clocks/{self.clock['id']}")
            assert clock["status"] == "ready", clock

        eventually(ready, timeout=CYCLE_DEADLINE, interval=1.0)

    def invoices(self, customer: dict[str, Any]) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.get("/v1/invoices", customer=customer["id"], limit="100")[
            "data"
        ]
        return sorted(data, key=lambda invoice: invoice["period_start"])

    def assert_ledger_balanced(self) -> None:
        trial = self.get("/v1/ledger/trial_balance")
        assert trial["balanced"] is True, trial
        for ledger in trial["ledgers"]:
            assert ledger["debits_posted"] == ledger["credits_posted"], ledger
