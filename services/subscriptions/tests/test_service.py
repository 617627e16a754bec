from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent, Topic
from billing_common.ids import CustomerId, PlanId
from billing_common.money import Money
from billing_subscriptions import service
from billing_subscriptions.domain import (
    InstantOutsideCurrentPeriod,
    InvalidPlanChange,
    InvalidSubscriptionTransition,
    SubscriptionStatus,
)
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BillingEffectsRecorded,
)
from billing_subscriptions.periods import Anchor
from billing_subscriptions.policy import ChangeTiming, SubscriptionPolicy
from billing_subscriptions.schemas import (
    Subscription,
    SubscriptionCancel,
    SubscriptionChangePlan,
    SubscriptionCreate,
    SubscriptionListQuery,
)

from .conftest import NOW, TENANT, Catalog, outbox_at

pytestmark = pytest.mark.service

S = SubscriptionStatus
MISMATCH = service.CustomerPlanCurrencyMismatch
APRIL_21 = datetime(2026, 4, 21, 10, 0, tzinfo=UTC)
APRIL_26 = datetime(2026, 4, 26, 10, 0, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
JUNE_1 = datetime(2026, 6, 1, tzinfo=UTC)


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


async def outbox_events(pool: Pool) -> list[tuple[str, str, bytes]]:
    rows = await pool.fetch("SELECT topic, key, payload FROM outbox ORDER BY seq")
    return [(row["topic"], row["key"], bytes(row["payload"])) for row in rows]


async def events_of(pool: Pool, topic: Topic[Any]) -> list[CloudEvent[Any]]:
    return [
        topic.parse(payload) for name, _, payload in await outbox_events(pool) if name == topic.name
    ]


def effects_of(event: CloudEvent[BillingEffectsRecorded]) -> list[tuple[str, str, int, Money]]:
    return [
        (e.reason.value, e.plan_id, e.plan_version, e.amount.to_money()) for e in event.data.effects
    ]


async def subscribe(
    pool: Pool,
    customer_id: CustomerId,
    plan_id: PlanId,
    *,
    now: datetime = NOW,
    **fields: Any,
) -> Subscription:
    request = SubscriptionCreate(customer_id=customer_id, plan_id=plan_id, **fields)
    async with transaction(pool) as conn:
        return await service.create_subscription(conn, outbox_at(now), TENANT, request, now=now)


class TestCreateSubscription:
    async def test_an_active_calendar_subscription_charges_its_prorated_first_period(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog.basic, plan_version=1)
        assert sub.id.startswith("sub_")
        assert (sub.status, sub.plan_id, sub.plan_version) == (S.ACTIVE, catalog.basic, 1)
        assert (sub.current_period_start, sub.current_period_end) == (NOW, MAY_1)
        assert sub.current_period_fee is not None
        assert sub.current_period_fee.amount == "20"  # 20 of April's 30 days, of 30 USD
        assert sub.billing_anchor is Anchor.CALENDAR
        assert sub.timezone == "UTC"
        assert sub.created_at == sub.updated_at == NOW

        events = await outbox_events(subscriptions_pool)
        assert [(topic, key) for topic, key, _ in events] == [
            (SUBSCRIPTION_CREATED.name, catalog.alice),
            (BILLING_EFFECTS_RECORDED.name, catalog.alice),
        ]
        created = SUBSCRIPTION_CREATED.parse(events[0][2])
        assert created.tenantid == TENANT
        assert created.data.subscription_id == sub.id
        assert created.data.revision == 1
        assert created.data.base_fee.amount == 30 * 10**12
        assert created.data.current_period_fee is not None
        assert created.data.current_period_fee.amount == 20 * 10**12
        billed = BILLING_EFFECTS_RECORDED.parse(events[1][2])
        assert billed.data.action == "start"
        assert billed.data.revision == 1
        assert effects_of(billed) == [("period_fee", catalog.basic, 1, usd("20"))]
        assert (billed.data.effects[0].service_start, billed.data.effects[0].service_end) == (
            NOW,
            MAY_1,
        )
        assert billed.data.effects[0].base_fee_timing.value == "in_advance"
        assert billed.data.net.to_money() == usd("20")
        assert b'"amount":"20000000000000"' in events[1][2]  # wire money: pico-units as text

    async def test_the_latest_version_is_the_default_and_its_trial_applies(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog.basic)
        assert (sub.plan_version, sub.status) == (2, S.TRIALING)
        assert sub.trial_end == datetime(2026, 4, 18, 10, 0, tzinfo=UTC)
        assert sub.current_period_start is None
        assert sub.current_period_fee is None
        assert [topic for topic, _, _ in await outbox_events(subscriptions_pool)] == [
            SUBSCRIPTION_CREATED.name  # a trial bills nothing
        ]

    async def test_trial_days_override_the_plan(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        no_trial = await subscribe(subscriptions_pool, catalog.alice, catalog.basic, trial_days=0)
        assert (no_trial.status, no_trial.plan_version) == (S.ACTIVE, 2)
        trial = await subscribe(
            subscriptions_pool, catalog.alice, catalog.basic, plan_version=1, trial_days=3
        )
        assert trial.status is S.TRIALING
        assert trial.trial_end == datetime(2026, 4, 14, 10, 0, tzinfo=UTC)

    async def test_a_start_date_is_midnight_in_the_customers_timezone(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(
            subscriptions_pool,
            catalog.bruno,
            catalog.basic,
            plan_version=1,
            start=date(2026, 5, 1),
            billing_anchor=Anchor.ANNIVERSARY,
        )
        paris_may_1 = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # CEST is UTC+2
        assert sub.timezone == "Europe/Paris"
        assert sub.billing_starts_at == paris_may_1
        assert sub.current_period_start == paris_may_1
        assert sub.current_period_end == datetime(2026, 5, 31, 22, 0, tzinfo=UTC)
        assert sub.current_period_fee is not None
        assert sub.current_period_fee.amount == "30"

    async def test_an_explicit_instant_starts_there(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(
            subscriptions_pool, catalog.alice, catalog.pro, start=datetime(2026, 4, 1, tzinfo=UTC)
        )
        assert (sub.current_period_start, sub.current_period_end) == (
            datetime(2026, 4, 1, tzinfo=UTC),
            MAY_1,
        )
        assert sub.current_period_fee is not None
        assert sub.current_period_fee.amount == "60"

    @pytest.mark.parametrize(
        ("case", "error", "code"),
        [
            ("customer", service.UnknownCustomer, "unknown_customer"),
            ("plan", service.UnknownPlan, "unknown_plan"),
            ("version", service.UnknownPlanVersion, "unknown_plan_version"),
            ("customer_currency", MISMATCH, "subscription_currency_mismatch"),
            ("plan_currency", MISMATCH, "subscription_currency_mismatch"),
        ],
    )
    async def test_what_cannot_be_subscribed_is_refused_and_writes_nothing(
        self,
        subscriptions_pool: Pool,
        catalog: Catalog,
        case: str,
        error: type[Exception],
        code: str,
    ) -> None:
        customer, plan, version = catalog.alice, catalog.basic, None
        if case == "customer":
            customer = CustomerId.new()
        elif case == "plan":
            plan = PlanId.new()
        elif case == "version":
            version = 9
        elif case == "customer_currency":
            customer = catalog.chloe
        else:
            plan = catalog.euro
        with pytest.raises(error) as raised:
            await subscribe(subscriptions_pool, customer, plan, plan_version=version)
        assert getattr(raised.value, "code", None) == code
        assert getattr(raised.value, "status", None) == 422
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM subscriptions") == 0
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM outbox") == 0

    async def test_external_ids_are_unique_per_tenant(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        await subscribe(subscriptions_pool, catalog.alice, catalog.pro, external_id="a")
        with pytest.raises(service.ExternalIdTaken, match="'a' is already used"):
            await subscribe(subscriptions_pool, catalog.alice, catalog.pro, external_id="a")
        await subscribe(subscriptions_pool, catalog.alice, catalog.pro)  # None is not an id
        await subscribe(subscriptions_pool, catalog.alice, catalog.pro)
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM subscriptions") == 3


class TestTransitions:
    async def active(
        self, pool: Pool, catalog: Catalog, plan: PlanId | None = None
    ) -> Subscription:
        return await subscribe(pool, catalog.alice, plan or catalog.basic, plan_version=1)

    async def test_cancel_now_credits_the_unused_rest_of_the_period(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            canceled = await service.cancel_subscription(
                conn, outbox_at(APRIL_21), TENANT, sub.id, SubscriptionCancel(), now=APRIL_21
            )
        assert (canceled.status, canceled.canceled_at, canceled.updated_at) == (
            S.CANCELED,
            APRIL_21,
            APRIL_21,
        )
        updated = await events_of(subscriptions_pool, SUBSCRIPTION_UPDATED)
        assert len(updated) == 1
        assert updated[0].data.revision == 2
        assert updated[0].data.transition.model_dump() == {
            "action": "cancel_now",
            "from_status": S.ACTIVE,
            "to_status": S.CANCELED,
            "at": APRIL_21,
        }
        billed = await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert [b.data.action for b in billed] == ["start", "cancel_now"]
        assert effects_of(billed[1]) == [("unused_time", catalog.basic, 1, usd("-10"))]
        assert (billed[1].data.effects[0].service_start, billed[1].data.effects[0].service_end) == (
            APRIL_21,
            MAY_1,
        )
        assert billed[1].data.net.to_money() == usd("-10")
        assert billed[1].data.revision == 2

        async with transaction(subscriptions_pool) as conn:
            assert await service.get_subscription(conn, TENANT, sub.id) == canceled

    async def test_an_invalid_transition_is_a_conflict_and_changes_nothing(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            await service.cancel_subscription(
                conn, outbox_at(), TENANT, sub.id, SubscriptionCancel(), now=APRIL_21
            )
        before = await subscriptions_pool.fetchval("SELECT count(*) FROM outbox")
        with pytest.raises(InvalidSubscriptionTransition, match="canceled -> paused"):
            async with transaction(subscriptions_pool) as conn:
                await service.pause_subscription(conn, outbox_at(), TENANT, sub.id, now=APRIL_26)
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM outbox") == before
        assert await subscriptions_pool.fetchval("SELECT revision FROM subscriptions") == 2

    async def test_cancel_at_period_end_keeps_the_status_and_bills_nothing(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        request = SubscriptionCancel(at=ChangeTiming.PERIOD_END)
        async with transaction(subscriptions_pool) as conn:
            pending = await service.cancel_subscription(
                conn, outbox_at(), TENANT, sub.id, request, now=APRIL_21
            )
        assert (pending.status, pending.cancel_at_period_end, pending.cancel_at) == (
            S.ACTIVE,
            True,
            MAY_1,
        )
        assert len(await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED)) == 1
        async with transaction(subscriptions_pool) as conn:
            renewed = await service.renew_subscription(conn, outbox_at(), TENANT, sub.id, now=MAY_1)
        assert (renewed.status, renewed.canceled_at) == (S.CANCELED, MAY_1)

    async def test_pause_credits_and_resume_charges_the_rest(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            paused = await service.pause_subscription(
                conn, outbox_at(), TENANT, sub.id, now=APRIL_21
            )
        assert (paused.status, paused.paused_at) == (S.PAUSED, APRIL_21)
        async with transaction(subscriptions_pool) as conn:
            resumed = await service.resume_subscription(
                conn, outbox_at(), TENANT, sub.id, now=APRIL_26
            )
        assert (resumed.status, resumed.paused_at) == (S.ACTIVE, None)
        billed = await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert [(b.data.action, effects_of(b)) for b in billed[1:]] == [
            ("pause", [("unused_time", catalog.basic, 1, usd("-10"))]),
            ("resume", [("remaining_time", catalog.basic, 1, usd("5"))]),
        ]
        with pytest.raises(InvalidSubscriptionTransition, match="active -> active"):
            async with transaction(subscriptions_pool) as conn:
                await service.resume_subscription(conn, outbox_at(), TENANT, sub.id, now=APRIL_26)

    async def test_pausing_outside_the_current_period_is_a_conflict(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        with pytest.raises(InstantOutsideCurrentPeriod):
            async with transaction(subscriptions_pool) as conn:
                await service.pause_subscription(conn, outbox_at(), TENANT, sub.id, now=JUNE_1)

    async def test_an_upgrade_now_credits_the_old_plan_and_charges_the_new(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            changed = await service.change_subscription_plan(
                conn,
                outbox_at(),
                TENANT,
                sub.id,
                SubscriptionChangePlan(plan_id=catalog.pro),
                now=APRIL_21,
            )
        assert (changed.plan_id, changed.plan_version, changed.base_fee.amount) == (
            catalog.pro,
            1,
            "60",
        )
        assert changed.current_period_fee is not None
        assert changed.current_period_fee.amount == "40"
        billed = (await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED))[-1]
        assert billed.data.action == "change_plan"
        assert effects_of(billed) == [
            ("unused_time", catalog.basic, 1, usd("-10")),
            ("remaining_time", catalog.pro, 1, usd("20")),
        ]
        assert billed.data.net.to_money() == usd("10")

    async def test_a_new_version_of_the_same_plan_is_tracked_by_version(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            changed = await service.change_subscription_plan(
                conn,
                outbox_at(),
                TENANT,
                sub.id,
                SubscriptionChangePlan(plan_id=catalog.basic),  # latest: v2, 45 a month
                now=APRIL_21,
            )
        assert (changed.plan_id, changed.plan_version) == (catalog.basic, 2)
        billed = (await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED))[-1]
        assert effects_of(billed) == [
            ("unused_time", catalog.basic, 1, usd("-10")),
            ("remaining_time", catalog.basic, 2, usd("15")),  # 45 x 20/30 for the stub, half
        ]
        with pytest.raises(InvalidPlanChange, match="already on plan"):
            async with transaction(subscriptions_pool) as conn:
                await service.change_subscription_plan(
                    conn,
                    outbox_at(),
                    TENANT,
                    sub.id,
                    SubscriptionChangePlan(plan_id=catalog.basic, plan_version=2),
                    now=APRIL_21,
                )

    async def test_a_downgrade_is_scheduled_and_the_renewal_applies_its_version(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog, catalog.pro)
        async with transaction(subscriptions_pool) as conn:
            scheduled = await service.change_subscription_plan(
                conn,
                outbox_at(),
                TENANT,
                sub.id,
                SubscriptionChangePlan(plan_id=catalog.basic, plan_version=1),
                now=APRIL_21,
            )
        assert (
            scheduled.plan_id,
            scheduled.scheduled_plan_id,
            scheduled.scheduled_plan_version,
        ) == (
            catalog.pro,
            catalog.basic,
            1,
        )
        async with transaction(subscriptions_pool) as conn:
            renewed = await service.renew_subscription(conn, outbox_at(), TENANT, sub.id, now=MAY_1)
        assert (renewed.plan_id, renewed.plan_version, renewed.scheduled_plan_id) == (
            catalog.basic,
            1,
            None,
        )
        assert (renewed.current_period_start, renewed.current_period_end) == (MAY_1, JUNE_1)
        billed = (await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED))[-1]
        assert (billed.data.action, billed.data.revision) == ("renew", 3)
        assert effects_of(billed) == [("period_fee", catalog.basic, 1, usd("30"))]

    async def test_a_trial_ends_into_its_first_charged_period(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog.basic)  # v2: 7 days
        assert sub.trial_end is not None
        async with transaction(subscriptions_pool) as conn:
            active = await service.end_subscription_trial(
                conn, outbox_at(), TENANT, sub.id, now=sub.trial_end
            )
        assert (active.status, active.current_period_start) == (S.ACTIVE, sub.trial_end)
        billed = await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert [b.data.action for b in billed] == ["end_trial"]
        assert effects_of(billed[0]) == [("period_fee", catalog.basic, 2, usd("19.5"))]

    async def test_an_unknown_subscription_is_not_found(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        sub = await self.active(subscriptions_pool, catalog)
        async with transaction(subscriptions_pool) as conn:
            with pytest.raises(service.SubscriptionNotFound):
                await service.get_subscription(conn, "ten_2", sub.id)
            with pytest.raises(service.SubscriptionNotFound):
                await service.pause_subscription(conn, outbox_at(), "ten_2", sub.id, now=APRIL_21)


class TestPolicy:
    async def test_defaults_until_set_then_the_tenants_policy_applies(
        self, subscriptions_pool: Pool, catalog: Catalog
    ) -> None:
        async with transaction(subscriptions_pool) as conn:
            assert await service.get_policy(conn, TENANT) == SubscriptionPolicy()
            no_credit = SubscriptionPolicy(prorate_on_cancel=False)
            await service.set_policy(conn, TENANT, no_credit, now=NOW)
            assert await service.get_policy(conn, TENANT) == no_credit
            assert await service.get_policy(conn, "ten_2") == SubscriptionPolicy()
        sub = await subscribe(subscriptions_pool, catalog.alice, catalog.pro)
        async with transaction(subscriptions_pool) as conn:
            await service.cancel_subscription(
                conn, outbox_at(), TENANT, sub.id, SubscriptionCancel(), now=APRIL_21
            )
        billed = await events_of(subscriptions_pool, BILLING_EFFECTS_RECORDED)
        assert [b.data.action for b in billed] == ["start"]  # no credit on cancel
        assert len(await events_of(subscriptions_pool, SUBSCRIPTION_UPDATED)) == 1


class TestListSubscriptions:
    async def test_pages_and_filters(self, subscriptions_pool: Pool, catalog: Catalog) -> None:
        created = [
            await subscribe(subscriptions_pool, catalog.alice, catalog.pro) for _ in range(3)
        ]
        other = await subscribe(subscriptions_pool, catalog.bruno, catalog.pro)
        async with transaction(subscriptions_pool) as conn:
            await service.cancel_subscription(
                conn, outbox_at(), TENANT, created[1].id, SubscriptionCancel(), now=APRIL_21
            )
            first = await service.list_subscriptions(conn, TENANT, SubscriptionListQuery(limit=2))
            assert [s.id for s in first.data] == [s.id for s in created[:2]]
            assert (first.has_more, first.next_cursor) == (True, created[1].id)
            rest = await service.list_subscriptions(
                conn, TENANT, SubscriptionListQuery(starting_after=first.next_cursor)
            )
            assert [s.id for s in rest.data] == [created[2].id, other.id]
            assert (rest.has_more, rest.next_cursor) == (False, None)
            alices = await service.list_subscriptions(
                conn, TENANT, SubscriptionListQuery(customer_id=catalog.alice, status=S.ACTIVE)
            )
            assert [s.id for s in alices.data] == [created[0].id, created[2].id]
            nobody = await service.list_subscriptions(conn, "ten_2", SubscriptionListQuery())
            assert nobody.data == []
