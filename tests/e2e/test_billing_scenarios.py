"""Billing scenarios on test clocks, each with amounts computed by hand, and the ledger
balanced after each: a trial converting to paid, a downgrade at period end, a credit note,
a parent billed for two children, a minimum commitment with a coupon."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from tests.e2e.billing import World, cents, money, usd
from tests.e2e.support import Api, assert_problem, eventually

pytestmark = pytest.mark.e2e


def test_a_trial_bills_nothing_then_converts_to_a_full_paid_period(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("trial", "20", trial_days=14)
    customer = world.customer("trialist")
    subscription = world.subscribe(customer, plan)
    assert subscription["status"] == "trialing"
    assert subscription["trial_end"] is not None

    world.advance(days=15)
    converted = world.get(f"/v1/subscriptions/{subscription['id']}")
    assert converted["status"] == "active"
    assert world.invoices(customer) == []  # the trial itself is never invoiced

    world.advance(days=31)
    [invoice] = world.invoices(customer)
    assert invoice["status"] == "finalized"
    # The first paid period starts when the trial ends and pays the whole fee: 20.
    fees = [money(line["amount"]) for line in invoice["lines"] if line["kind"] == "base_fee"]
    assert fees == [Decimal(20)]
    assert money(invoice["total"]) == Decimal(20)
    world.assert_ledger_balanced()


def test_a_downgrade_takes_effect_at_period_end(api: Api) -> None:
    world = World(api)
    world.setup()
    pro = world.plan("pro", "60")
    basic = world.plan("basic", "20")
    customer = world.customer("downgrader")
    subscription = world.subscribe(customer, pro)
    changed = world.post(f"/v1/subscriptions/{subscription['id']}/change_plan", {"plan_id": basic})
    assert changed["plan_id"] == pro  # still on pro until the period ends
    assert changed["scheduled_plan_id"] == basic

    world.advance(days=32)
    world.advance(days=31)
    first, second = world.invoices(customer)[:2]
    # The first period on pro (60), the second on basic (20): no proration either way.
    assert money(first["total"]) == Decimal(60)
    assert money(second["total"]) == Decimal(20)
    renewed = world.get(f"/v1/subscriptions/{subscription['id']}")
    assert renewed["plan_id"] == basic
    world.assert_ledger_balanced()


def test_a_credit_note_returns_a_line_to_the_customers_balance(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("credited", "49", unit_price="0.10")
    customer = world.customer("credited")
    world.subscribe(customer, plan)
    world.send_calls(customer, 300, world.start + timedelta(seconds=5))
    world.advance(days=32)
    [invoice] = world.invoices(customer)
    assert money(invoice["total"]) == Decimal(79)  # 49 + 300 x 0.10
    [usage_line] = [line for line in invoice["lines"] if line["kind"] == "usage"]

    note = world.post(
        "/v1/credit_notes",
        {
            "invoice_id": invoice["id"],
            "lines": [{"line_id": usage_line["id"]}],
            "reason": "product_unsatisfactory",
            "outcome": "customer_balance",
        },
    )
    assert money(note["total"]) == Decimal(30)
    again = api.client.post(
        "/v1/credit_notes",
        json={
            "invoice_id": invoice["id"],
            "lines": [{"line_id": usage_line["id"], "amount": {"amount": "1", "currency": "USD"}}],
            "reason": "other",
            "outcome": "customer_balance",
        },
    )
    assert_problem(again, 409, "credit_note_line_not_creditable")  # nothing left of it

    def credited() -> None:
        [balance] = world.get(f"/v1/customers/{customer['id']}/balance")["balances"]
        assert money(balance["accounts_receivable"]) == Decimal(79)
        assert money(balance["customer_credit"]) == Decimal(30)
        assert money(balance["net_owed"]) == Decimal(49)

    eventually(credited)
    world.assert_ledger_balanced()


def test_a_parent_is_billed_for_its_two_children_on_one_invoice(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("family", "10", unit_price="0.50")
    parent = world.customer("parent", invoice_grace_period_days=5)
    children = [
        world.customer(f"child{n}", parent_id=parent["id"], bill_to_parent=True) for n in (1, 2)
    ]
    for n, child in enumerate(children, start=1):
        world.subscribe(child, plan)
        world.send_calls(child, 10 * n, world.start + timedelta(seconds=5))

    # Past the period's end, inside the parent's 5-day grace period: one open draft.
    to = world.start + timedelta(days=32)
    world.post(f"/v1/test_clocks/{world.clock['id']}/advance", {"to": to.isoformat()})

    def consolidated() -> None:
        invoices = world.invoices(parent)
        assert [invoice["status"] for invoice in invoices] == ["draft"], invoices
        billed_for = {line["child_customer_id"] for line in invoices[0]["lines"]}
        assert billed_for == {child["id"] for child in children}, invoices[0]["lines"]

    eventually(consolidated, timeout=120, interval=1.0)
    world.clock = world.get(f"/v1/test_clocks/{world.clock['id']}")
    world.advance(days=6)  # the grace period ends: the draft is finalized
    [final] = world.invoices(parent)
    assert final["status"] == "finalized"
    # Each child: base fee 10; usage 10 x 0.50 = 5 and 20 x 0.50 = 10.
    assert money(final["total"]) == Decimal(35)
    assert all(world.invoices(child) == [] for child in children)
    world.assert_ledger_balanced()


PICO = Decimal("0.000000000001")


def used(fee: Decimal, days: int, period_days: int) -> Decimal:
    """The subscriptions domain's part of `fee` used by `days` of a period, to the pico-unit."""
    return (fee * days / period_days).quantize(PICO, rounding=ROUND_HALF_UP)


def period_days(subscription: dict[str, Any]) -> int:
    start = datetime.fromisoformat(subscription["current_period_start"])
    end = datetime.fromisoformat(subscription["current_period_end"])
    return (end.date() - start.date()).days


def advance_on_clock(world: World, days: int) -> None:
    """Advance within a period, then give subscriptions a moment to learn the clock's time
    (the advance reaches it as an event)."""
    world.advance(days=days)
    time.sleep(1.5)


def test_a_mid_period_upgrade_credits_the_old_plan_and_charges_the_new_one(api: Api) -> None:
    world = World(api)
    world.setup()
    pro = world.plan("pro", "30")
    premium = world.plan("premium", "60")
    customer = world.customer("upgrader")
    subscription = world.subscribe(customer, pro)
    days = period_days(subscription)
    advance_on_clock(world, 10)
    upgraded = world.post(
        f"/v1/subscriptions/{subscription['id']}/change_plan", {"plan_id": premium}
    )
    assert upgraded["plan_id"] == premium  # an upgrade takes effect now
    world.advance(days=25)
    [invoice] = world.invoices(customer)
    credit = -(Decimal(30) - used(Decimal(30), 10, days))
    charge = Decimal(60) - used(Decimal(60), 10, days)
    lines = sorted((line["kind"], money(line["amount"])) for line in invoice["lines"])
    assert [line for line in lines if line[0] == "base_fee"] == [("base_fee", Decimal(30))]
    assert sorted(amount for kind, amount in lines if kind == "proration") == [
        cents(credit),
        cents(charge),
    ]
    assert money(invoice["total"]) == Decimal(30) + cents(credit) + cents(charge)
    world.assert_ledger_balanced()


def test_cancel_now_makes_a_final_prorated_invoice(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("leaver", "30", unit_price="1")
    customer = world.customer("leaver")
    subscription = world.subscribe(customer, plan)
    days = period_days(subscription)
    world.send_calls(customer, 4, world.start + timedelta(seconds=5))
    advance_on_clock(world, 6)
    canceled = world.post(f"/v1/subscriptions/{subscription['id']}/cancel", {"at": "now"})
    assert canceled["status"] == "canceled"

    def final_invoice() -> dict[str, Any]:
        invoices = world.invoices(customer)
        assert len(invoices) == 1, invoices
        assert invoices[0]["status"] == "finalized", invoices[0]
        invoice: dict[str, Any] = invoices[0]
        return invoice

    invoice = eventually(final_invoice, timeout=120, interval=1.0)
    credit = -(Decimal(30) - used(Decimal(30), 6, days))
    # The period's fee, the unused rest credited, and the 4 calls at 1 each.
    assert money(invoice["total"]) == Decimal(30) + cents(credit) + Decimal(4)
    world.assert_ledger_balanced()


def test_a_paused_stretch_of_a_period_is_not_billed(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("pauser", "30")
    customer = world.customer("pauser")
    subscription = world.subscribe(customer, plan)
    days = period_days(subscription)
    advance_on_clock(world, 10)
    paused = world.post(f"/v1/subscriptions/{subscription['id']}/pause")
    assert paused["status"] == "paused"
    advance_on_clock(world, 10)
    resumed = world.post(f"/v1/subscriptions/{subscription['id']}/resume")
    assert resumed["status"] == "active"
    world.advance(days=15)
    [invoice] = world.invoices(customer)
    credit = -(Decimal(30) - used(Decimal(30), 10, days))
    charge = Decimal(30) - used(Decimal(30), 20, days)
    # Days 10 to 20 were paused: the fee, less the rest from day 10, plus the rest from 20.
    assert money(invoice["total"]) == Decimal(30) + cents(credit) + cents(charge)
    world.assert_ledger_balanced()


def test_a_minimum_commitment_true_up_and_a_percentage_coupon(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("committed", "49", unit_price="1", minimum_commitment=usd("100"))
    coupon = world.post(
        "/v1/coupons",
        {
            "code": f"TEN-{world.suffix}",
            "name": "Ten percent",
            "percent_off": "10",
            "duration": "forever",
        },
    )
    customer = world.customer("committed")
    subscription = world.subscribe(customer, plan, coupons=[coupon["id"]])
    assert subscription["coupons"] == [
        {"coupon_id": coupon["id"], "code": coupon["code"], "start_period": 0}
    ]
    world.send_calls(customer, 30, world.start + timedelta(seconds=5))
    world.advance(days=32)

    def first_invoice() -> dict[str, Any]:
        invoices = world.invoices(customer)
        assert invoices, invoices
        assert invoices[0]["status"] == "finalized", invoices[0]
        invoice: dict[str, Any] = invoices[0]
        return invoice

    invoice = eventually(first_invoice, timeout=120, interval=1.0)
    # Base fee 49 + 30 calls at 1 = 79 billed, short of the minimum 100: true-up 21.
    lines = [(line["kind"], money(line["amount"])) for line in invoice["lines"]]
    assert lines == [
        ("base_fee", Decimal(49)),
        ("usage", Decimal(30)),
        ("minimum_commitment", Decimal(21)),
    ]
    # 10 % off the subtotal of 100, before tax: 10; total 90.
    assert [(d["coupon_code"], money(d["amount"])) for d in invoice["discounts"]] == [
        (coupon["code"], Decimal(10))
    ]
    assert money(invoice["subtotal"]) == Decimal(100)
    assert money(invoice["discount_total"]) == Decimal(10)
    assert money(invoice["total"]) == Decimal(90)
    world.assert_ledger_balanced()
