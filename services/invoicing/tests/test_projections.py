from __future__ import annotations

from datetime import timedelta

import pytest

from billing_common.db import Pool
from billing_common.ids import CustomerId
from billing_invoicing import repository
from billing_invoicing.projections import revision_bills

from .conftest import APRIL, MAY, TENANT, Subscription, apply, customer_created

pytestmark = pytest.mark.service


class TestRevisionBills:
    @pytest.mark.parametrize(
        ("action", "from_status", "to_status", "scheduled", "bills"),
        [
            ("start", None, "active", None, True),
            ("start", None, "trialing", None, False),
            ("end_trial", "trialing", "active", None, True),
            ("end_trial", "trialing", "canceled", None, False),
            ("renew", "active", "active", None, True),
            ("renew", "past_due", "past_due", None, True),
            ("renew", "paused", "paused", None, False),
            ("renew", "active", "canceled", None, False),
            ("pause", "active", "paused", None, True),
            ("resume", "paused", "active", None, True),
            ("change_plan", "active", "active", None, True),
            ("change_plan", "active", "active", "plan_next", False),
            ("change_plan", "trialing", "trialing", None, False),
            ("cancel_at_period_end", "active", "active", None, False),
            ("cancel_now", "active", "canceled", None, False),
            ("mark_past_due", "active", "past_due", None, False),
        ],
    )
    def test_mirrors_what_subscriptions_bill(
        self,
        action: str,
        from_status: str | None,
        to_status: str,
        scheduled: str | None,
        bills: bool,
    ) -> None:
        assert revision_bills(action, from_status, to_status, scheduled) is bills


class TestProjections:
    async def test_customer_keeps_the_newest_snapshot(self, invoicing_pool: Pool) -> None:
        customer = CustomerId.new()
        parent = CustomerId.new()
        newer = customer_created(
            customer,
            name="New name",
            grace_days=5,
            parent_id=parent,
            bill_to_parent=True,
            updated_at=APRIL + timedelta(days=2),
        )
        older = customer_created(customer, name="Old name", updated_at=APRIL)
        await apply(invoicing_pool, newer, older)
        async with invoicing_pool.acquire() as conn:
            known = await repository.get_customer(conn, TENANT, customer)
        assert known is not None
        assert known.name == "New name"
        assert known.invoice_grace_period_days == 5
        assert known.parent_id == parent
        assert known.bill_to_parent is True
        assert known.country == "FR"
        assert known.currency.code == "USD"

    async def test_revisions_and_effects_are_kept_once(self, invoicing_pool: Pool) -> None:
        sub = Subscription(CustomerId.new())
        effects = sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY))
        await apply(invoicing_pool, sub.created(), sub.created(), effects, effects)
        async with invoicing_pool.acquire() as conn:
            revisions = await repository.get_revisions(conn, TENANT, sub.id)
            pending = await repository.pending_effects(conn, TENANT, [sub.customer_id])
        assert [(r.revision, r.action, r.bills) for r in revisions] == [(1, "start", True)]
        assert [(e.reason, str(e.amount), e.service_start) for e in pending] == [
            ("period_fee", "30 USD", APRIL)
        ]

    async def test_period_closing_keeps_the_revision_it_saw(self, invoicing_pool: Pool) -> None:
        sub = Subscription(CustomerId.new())
        closing = sub.closing(APRIL, MAY, revision=3)
        await apply(invoicing_pool, closing)
        async with invoicing_pool.acquire() as conn:
            assert await repository.closing_revision(conn, closing.data.saga_id) == 3
