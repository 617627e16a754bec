"""A period's invoice with the plan's minimum commitment and the subscription's coupons,
from parsed events: exact amounts, and which periods each coupon's duration reaches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing_common.db import Pool, transaction
from billing_common.ids import CustomerId, PlanId
from billing_invoicing import repository, service
from billing_invoicing.domain import Invoice
from billing_invoicing.events import INVOICE_FINALIZED
from billing_invoicing.service import ProjectionBehind

from .conftest import (
    APRIL,
    JUNE,
    MAY,
    TENANT,
    Subscription,
    apply,
    coupon_created,
    customer_created,
    outbox_events,
    pico,
)

pytestmark = pytest.mark.service

JULY = datetime(2026, 7, 1, tzinfo=UTC)
AUGUST = datetime(2026, 8, 1, tzinfo=UTC)
MONTHS = [APRIL, MAY, JUNE, JULY, AUGUST]


async def subscribed(pool: Pool, sub: Subscription, periods: int = 1) -> None:
    """The customer, the subscription (renewed `periods - 1` times) and each period's fee."""
    events: list[Any] = [customer_created(sub.customer_id), sub.created()]
    events.append(sub.effects(1, APRIL, ("period_fee", sub.fee, APRIL, MAY)))
    for index in range(1, periods):
        start, end = MONTHS[index], MONTHS[index + 1]
        revision = index + 1
        events.append(sub.updated(revision, "renew", start, start=start, end=end))
        events.append(sub.effects(revision, start, ("period_fee", sub.fee, start, end)))
    await apply(pool, *events)


async def bill(
    pool: Pool, invoicing: service.Invoicing, sub: Subscription, index: int = 0, **kw: Any
) -> Invoice:
    """Bill the subscription's `index`-th period (0: April) and return its invoice."""
    event = sub.rated(MONTHS[index], MONTHS[index + 1], **kw)
    async with transaction(pool) as conn:
        await invoicing.period_rated(conn, event)
        invoice_id = await repository.invoice_of_saga(conn, event.data.saga_id)
        assert invoice_id is not None
        stored = await repository.get_invoice(conn, TENANT, invoice_id)
    assert stored is not None
    return stored.invoice


def lines(invoice: Invoice) -> list[tuple[str, str]]:
    return [(line.kind.value, str(line.amount)) for line in invoice.lines]


def discounts(invoice: Invoice) -> list[tuple[str, str]]:
    return [(d.coupon_code, str(d.amount)) for d in invoice.discounts]


class TestMinimumCommitment:
    async def test_charges_short_of_the_minimum_get_a_true_up_line(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        """Plan 49 + usage 30 = 79 billed, minimum 100: true-up 21, total 100."""
        sub = Subscription(CustomerId.new(), fee="49")
        await subscribed(invoicing_pool, sub)
        invoice = await bill(invoicing_pool, invoicing, sub, usage="30", minimum="100")
        assert lines(invoice) == [
            ("base_fee", "49 USD"),
            ("usage", "30 USD"),
            ("minimum_commitment", "21 USD"),
        ]
        assert str(invoice.total) == "100 USD"
        [fact] = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert fact["total"] == {"amount": pico("100"), "currency": "USD"}
        assert [line["kind"] for line in fact["lines"]] == [
            "base_fee",
            "usage",
            "minimum_commitment",
        ]

    async def test_charges_above_the_minimum_get_no_true_up(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = Subscription(CustomerId.new(), fee="49")
        await subscribed(invoicing_pool, sub)
        invoice = await bill(invoicing_pool, invoicing, sub, usage="30", minimum="75")
        assert lines(invoice) == [("base_fee", "49 USD"), ("usage", "30 USD")]
        assert str(invoice.total) == "79 USD"


class TestCoupons:
    async def test_a_percentage_forever_discounts_every_period(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        """Plan 49 + usage 30 = 79, 10 % off: discount 7.90, total 71.10, each period."""
        ten = coupon_created("TEN", percent_off="10")
        await apply(invoicing_pool, ten)
        sub = Subscription(CustomerId.new(), fee="49", coupons=((ten.data.coupon_id, 0),))
        await subscribed(invoicing_pool, sub, periods=2)
        for index in (0, 1):
            invoice = await bill(invoicing_pool, invoicing, sub, index, usage="30")
            assert str(invoice.subtotal) == "79 USD"
            assert discounts(invoice) == [("TEN", "7.9 USD")]
            assert str(invoice.total) == "71.1 USD"
        facts = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert [(f["discount_total"]["amount"], f["total"]["amount"]) for f in facts] == [
            (pico("7.9"), pico("71.1")),
            (pico("7.9"), pico("71.1")),
        ]

    async def test_once_applies_to_the_first_period_only(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        welcome = coupon_created("WELCOME", amount_off="15", duration="once")
        await apply(invoicing_pool, welcome)
        sub = Subscription(CustomerId.new(), fee="49", coupons=((welcome.data.coupon_id, 0),))
        await subscribed(invoicing_pool, sub, periods=2)
        first = await bill(invoicing_pool, invoicing, sub, 0, usage="30")
        second = await bill(invoicing_pool, invoicing, sub, 1, usage="30")
        assert (discounts(first), str(first.total)) == ([("WELCOME", "15 USD")], "64 USD")
        assert (discounts(second), str(second.total)) == ([], "79 USD")

    async def test_repeating_2_applies_to_periods_1_and_2_only(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        twice = coupon_created("TWICE", percent_off="25", duration="repeating", duration_periods=2)
        await apply(invoicing_pool, twice)
        sub = Subscription(CustomerId.new(), fee="49", coupons=((twice.data.coupon_id, 0),))
        await subscribed(invoicing_pool, sub, periods=3)
        totals = [
            (discounts(invoice), str(invoice.total))
            for invoice in [
                await bill(invoicing_pool, invoicing, sub, index, usage="30") for index in range(3)
            ]
        ]
        # 25 % of 79 = 19.75
        assert totals == [
            ([("TWICE", "19.75 USD")], "59.25 USD"),
            ([("TWICE", "19.75 USD")], "59.25 USD"),
            ([], "79 USD"),
        ]

    async def test_a_coupon_counts_from_the_period_it_starts_at(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        once = coupon_created("LATER", amount_off="10", duration="once")
        await apply(invoicing_pool, once)
        sub = Subscription(CustomerId.new(), fee="49", coupons=((once.data.coupon_id, 1),))
        await subscribed(invoicing_pool, sub, periods=3)
        found = [
            discounts(await bill(invoicing_pool, invoicing, sub, index, usage="30"))
            for index in range(3)
        ]
        assert found == [[], [("LATER", "10 USD")], []]

    async def test_percentages_then_fixed_amounts_on_top_of_the_true_up(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        """79 billed, minimum 100 (true-up 21), then 10 % (10) and 5 off: total 85."""
        five = coupon_created("FIVE", amount_off="5")
        ten = coupon_created("TEN", percent_off="10")
        await apply(invoicing_pool, five, ten)
        coupons = ((five.data.coupon_id, 0), (ten.data.coupon_id, 0))
        sub = Subscription(CustomerId.new(), fee="49", coupons=coupons)
        await subscribed(invoicing_pool, sub)
        invoice = await bill(invoicing_pool, invoicing, sub, usage="30", minimum="100")
        assert lines(invoice)[-1] == ("minimum_commitment", "21 USD")
        assert discounts(invoice) == [("TEN", "10 USD"), ("FIVE", "5 USD")]
        assert str(invoice.total) == "85 USD"

    async def test_a_coupon_limited_to_other_plans_takes_nothing(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        sub = Subscription(CustomerId.new(), fee="49")
        elsewhere = coupon_created("ELSEWHERE", percent_off="50", plan_ids=(PlanId.new(),))
        await apply(invoicing_pool, elsewhere)
        sub.coupons = ((elsewhere.data.coupon_id, 0),)
        await subscribed(invoicing_pool, sub)
        invoice = await bill(invoicing_pool, invoicing, sub, usage="30")
        assert (discounts(invoice), str(invoice.total)) == ([], "79 USD")

    async def test_a_coupon_not_yet_known_parks_the_period_until_it_arrives(
        self, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        ten = coupon_created("TEN", percent_off="10")
        sub = Subscription(CustomerId.new(), fee="49", coupons=((ten.data.coupon_id, 0),))
        await subscribed(invoicing_pool, sub)
        with pytest.raises(ProjectionBehind, match="coupons"):
            await bill(invoicing_pool, invoicing, sub, usage="30")
        rated = sub.rated(APRIL, MAY, usage="30")
        async with transaction(invoicing_pool) as conn:
            await invoicing.bill_or_park(conn, rated)
        assert await invoicing_pool.fetchval("SELECT count(*) FROM parked_periods") == 1
        async with transaction(invoicing_pool) as conn:
            await invoicing.coupon_created(conn, ten)
        assert await invoicing_pool.fetchval("SELECT count(*) FROM parked_periods") == 0
        [fact] = await outbox_events(invoicing_pool, INVOICE_FINALIZED)
        assert fact["discount_total"]["amount"] == pico("7.9")
        assert fact["total"]["amount"] == pico("71.1")
