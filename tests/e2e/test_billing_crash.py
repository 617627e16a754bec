"""Crash proof of the billing cycle (issue 5): the engine and the invoicing service are
SIGKILLed while a test clock's advance closes many periods, and still every period gets
exactly one finalized invoice with the exact total, the tenant's invoice numbers stay
gapless, the ledger balances and every billing run ends `done`.

Six customers on one test clock, each with an anniversary subscription to a monthly plan
(a base fee in advance and a metered charge), usage in the first two periods; the clock is
advanced past three period ends, so 18 period closes run (three per subscription, one
after another). While they run:

1. the engine dies at its outbox's crash point (`outbox.after_publish:M`: events published,
   rows not marked sent, so they are published again) and invoicing at its consumer's
   (`consumer.after_commit:K`: an effect committed, its offset not, so the message is
   redelivered), M and K random; each is restarted normally as soon as it is dead;
2. then both are SIGKILLed again at a random moment and restarted.

The engine runs with a short saga timeout (5 s instead of 30 s, with 30 attempts instead
of 5: the same window of 150 s) so that a close lost in a crash is re-emitted within the
test's time; re-emitted closes exercise the idempotence of every step per saga.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from billing_common.ids import uuid7
from tests.e2e.support import Api, Services, eventually

pytestmark = pytest.mark.e2e

logger = logging.getLogger(__name__)

CUSTOMERS = 6
PERIODS = 3
BASE_FEE = Decimal(20)
UNIT_PRICE = Decimal("0.10")
CYCLE_DEADLINE = 150.0
ENGINE_ENV = {"ENGINE_SAGA_TIMEOUT_SECONDS": "5", "ENGINE_SAGA_MAX_ATTEMPTS": "30"}
NUMBER = re.compile(r"INV-([0-9]{4})-([0-9]{6,})")


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


def all_of(api: Api, path: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
    return [
        item for page in api.list_pages(path, {**params, "limit": 100}) for item in page["data"]
    ]


def usage_calls(n_customer: int, period: int) -> int:
    """Calls of customer `n_customer` in `period` (0-based); none in the third, which ends
    in the future of the real clock (usage may not be timestamped ahead of it)."""
    return (10 * (n_customer + 1) + 7, 5 * (n_customer + 1) + 3, 0)[period]


def test_engine_and_invoicing_sigkilled_during_cycle_close_invoice_each_period_exactly_once(
    api: Api, services: Services
) -> None:
    rng = random.Random()
    suffix = uuid7().hex[-8:]
    now = datetime.now(UTC).replace(microsecond=0)
    # The clock starts 34 days ago: the first period's and the second's usage can be sent
    # now (the gateway takes timestamps up to 35 days old and none from the future).
    start = now - timedelta(days=34)
    clock = created(api, "/v1/test_clocks", {"frozen_time": start.isoformat(), "name": suffix})
    meter = f"crash_calls_{suffix}"
    created(
        api,
        "/v1/meters",
        {"key": meter, "name": "Calls", "event_types": [f"call.{suffix}"], "aggregation": "count"},
    )
    plan_body = {
        "code": f"crash-{suffix}",
        "name": "Crash",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd(str(BASE_FEE)),
        "base_fee_timing": "in_advance",
        "charges": [
            {
                "key": "calls",
                "meter_key": meter,
                "price": {"model": "per_unit", "unit_price": usd(str(UNIT_PRICE))},
            }
        ],
    }
    plan = eventually(lambda: created(api, "/v1/plans", plan_body))

    customers = [
        api.created_customer(
            {"external_id": f"crash-{suffix}-{n}", "name": f"Crash {n}", "currency": "USD"}
        )
        for n in range(CUSTOMERS)
    ]
    subscriptions: list[dict[str, Any]] = []
    for customer in customers:

        def attach(customer_id: str = customer["id"]) -> dict[str, Any]:
            return created(
                api, f"/v1/test_clocks/{clock['id']}/customers", {"customer_id": customer_id}
            )

        def subscribe(customer_id: str = customer["id"]) -> dict[str, Any]:
            return created(
                api,
                "/v1/subscriptions",
                {
                    "customer_id": customer_id,
                    "plan_id": plan["id"],
                    "start": start.isoformat(),
                    "billing_anchor": "anniversary",
                },
            )

        eventually(attach)
        subscription = eventually(subscribe)
        assert subscription["status"] == "active", subscription
        assert datetime.fromisoformat(subscription["current_period_start"]) == start
        subscriptions.append(subscription)

    # Usage: the first period's a few seconds after the start, the second period's 32 days
    # after it (a month after the start is at most 31 days later, two at least 59).
    second = start + timedelta(days=32)
    events: list[dict[str, Any]] = []
    for n, customer in enumerate(customers):
        for period, at in ((0, start), (1, second)):
            events += [
                {
                    "id": f"{suffix}-{n}-{period}-{k}",
                    "customer": customer["id"],
                    "type": f"call.{suffix}",
                    "timestamp": (at + timedelta(seconds=1 + k)).isoformat(),
                }
                for k in range(usage_calls(n, period))
            ]
    response = api.client.post("/v1/events", json=events)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []

    def usage_recorded() -> None:
        for n, customer in enumerate(customers):
            for period, at in ((0, start), (1, second)):
                response = api.client.get(
                    f"/v1/meters/{meter}/usage",
                    params={
                        "customer": customer["id"],
                        "from": at.isoformat(),
                        "to": (at + timedelta(days=1)).isoformat(),
                        "source": "store",
                    },
                )
                assert response.status_code == 200, response.text
                values = [p["value"] for p in response.json()["data"]]
                assert values == [str(usage_calls(n, period))], (customer["id"], period, values)

    eventually(usage_recorded)

    def invoicing_knows_first_fees() -> None:
        for customer in customers:
            response = api.client.get(f"/v1/customers/{customer['id']}/upcoming_invoice")
            assert response.status_code == 200, response.text
            assert money(response.json()["total"]) == BASE_FEE, response.text

    eventually(invoicing_knows_first_fees)

    # Armed: each dies at its crash point somewhere in the cycle (both are idle now, so
    # the counts start with the cycle's own messages).
    engine_pass = rng.randint(2, 3)
    invoicing_message = rng.randint(4, 30)
    services.restart("engine", BILLING_CRASH_AT=f"outbox.after_publish:{engine_pass}", **ENGINE_ENV)
    services.restart("invoicing", BILLING_CRASH_AT=f"consumer.after_commit:{invoicing_message}")

    target = start + timedelta(days=100)  # past three period ends (≤ 92 days), not four
    advanced = api.client.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"to": target.isoformat()}
    )
    # The relay publishes right after the commit: if the engine's crash wins the race with
    # the response, the gateway answers 503 and the advance stands all the same.
    assert advanced.status_code in (200, 503), advanced.text

    # The engine dies within the first round of closes (its third outbox batch at the
    # latest); restarted at once, it republishes what it had not marked sent and carries
    # on, and invoicing dies somewhere in the first two rounds (a round brings it about
    # 25 messages). `wait_dead` fails the test if a crash point is never reached.
    services.wait_dead("engine")
    services.restart("engine", **ENGINE_ENV)
    services.wait_dead("invoicing")
    services.restart("invoicing")

    def runs() -> list[dict[str, Any]]:
        return all_of(api, "/v1/billing_runs", {"test_clock_id": clock["id"]})

    # A second crash of both at a random moment of what is left of the cycle.
    time.sleep(rng.uniform(0.5, 4.0))
    done_before_kill = sum(run["status"] == "done" for run in runs())
    services.kill("invoicing")
    time.sleep(rng.uniform(0.0, 1.0))
    services.kill("engine")
    services.restart("invoicing")
    services.restart("engine", **ENGINE_ENV)
    scenario = (
        f"crash points: engine outbox.after_publish:{engine_pass},"
        f" invoicing consumer.after_commit:{invoicing_message};"
        f" {done_before_kill} of {CUSTOMERS * PERIODS} runs done at the random SIGKILL"
    )
    logger.info("%s", scenario)

    def clock_ready() -> dict[str, Any]:
        response = api.client.get(f"/v1/test_clocks/{clock['id']}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "ready", (scenario, body)
        return body

    ready = eventually(clock_ready, timeout=CYCLE_DEADLINE, interval=1.0)
    assert datetime.fromisoformat(ready["frozen_time"]) == target
    assert ready["sagas"] == {"pending": 0, "done": CUSTOMERS * PERIODS, "failed": 0}, (
        scenario,
        ready,
    )

    # Every billing run done, one per subscription and period, each with its invoice.
    all_runs = runs()
    assert len(all_runs) == CUSTOMERS * PERIODS, all_runs
    assert {run["status"] for run in all_runs} == {"done"}, all_runs
    run_invoice = {
        (run["subscription_id"], datetime.fromisoformat(run["period_start"])): run
        for run in all_runs
    }
    assert len(run_invoice) == CUSTOMERS * PERIODS, "two runs of one period"

    # Exactly one finalized invoice per closed period, with the exact total.
    ours: list[dict[str, Any]] = []
    for n, (customer, subscription) in enumerate(zip(customers, subscriptions, strict=True)):
        invoices = all_of(api, "/v1/invoices", {"customer": customer["id"]})
        assert [i["status"] for i in invoices] == ["finalized"] * PERIODS, invoices
        by_start = sorted(invoices, key=lambda i: datetime.fromisoformat(i["period_start"]))
        starts = [datetime.fromisoformat(i["period_start"]) for i in by_start]
        assert len(set(starts)) == PERIODS, f"two invoices of one period: {starts}"
        assert starts[0] == start
        for before, after in pairwise(by_start):
            assert before["period_end"] == after["period_start"], (before, after)
        assert datetime.fromisoformat(by_start[-1]["period_end"]) <= target
        for period, invoice in enumerate(by_start):
            assert invoice["subscription_id"] == subscription["id"], invoice
            calls = usage_calls(n, period)
            usage = sum(
                (money(line["amount"]) for line in invoice["lines"] if line["kind"] == "usage"),
                Decimal(0),
            )
            fees = [
                money(line["amount"]) for line in invoice["lines"] if line["kind"] == "base_fee"
            ]
            assert fees == [BASE_FEE], invoice["lines"]
            assert usage == calls * UNIT_PRICE, (calls, invoice["lines"])
            assert money(invoice["total"]) == BASE_FEE + calls * UNIT_PRICE, invoice
            run = run_invoice[(subscription["id"], starts[period])]
            assert run["invoice_id"] == invoice["id"], (run, invoice)
        ours += by_start

    # The tenant's numbers (other tests invoice in this tenant too): each year's are
    # 1..max, none twice, none missing; and this test's invoices are among them.
    numbers: dict[int, list[int]] = defaultdict(list)
    every = all_of(api, "/v1/invoices", {})
    for invoice in every:
        if invoice["number"] is None:
            assert invoice["status"] == "draft", invoice
            continue
        match = NUMBER.fullmatch(invoice["number"])
        assert match is not None, invoice["number"]
        numbers[int(match.group(1))].append(int(match.group(2)))
    for year, sequence in numbers.items():
        assert sorted(sequence) == list(range(1, len(sequence) + 1)), (year, sorted(sequence))
    assert {i["id"] for i in ours} <= {i["id"] for i in every}
    assert len({i["number"] for i in ours}) == len(ours)

    # Posted once each: receivables equal the invoices, and the ledger balances.
    def posted() -> None:
        for customer in customers:
            billed = sum(
                (money(i["total"]) for i in ours if i["customer_id"] == customer["id"]),
                Decimal(0),
            )
            balance = api.client.get(f"/v1/customers/{customer['id']}/balance").json()
            [usd_balance] = balance["balances"]
            assert money(usd_balance["accounts_receivable"]) == billed, (customer, balance)

    eventually(posted)
    trial = api.client.get("/v1/ledger/trial_balance").json()
    assert trial["balanced"] is True, trial
    for ledger in trial["ledgers"]:
        assert ledger["debits_posted"] == ledger["credits_posted"], ledger
