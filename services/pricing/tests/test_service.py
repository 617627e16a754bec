from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from billing_common.db import Pool, transaction
from billing_common.errors import CurrencyMismatch
from billing_common.events import CloudEvent, Topic, new_event
from billing_common.ids import CustomerId, PlanId, ProductId
from billing_metering.events import METER_ARCHIVED, METER_CREATED, METER_UPDATED, MeterChanged
from billing_metering.meters import MeterDefinition
from billing_pricing import domain, repository, service
from billing_pricing.events import (
    COUPON_CREATED,
    PLAN_MIGRATION_SCHEDULED,
    PLAN_PUBLISHED,
    PRICE_OVERRIDE_SET,
    PRODUCT_CREATED,
)
from billing_pricing.schemas import (
    CouponCreate,
    CouponListQuery,
    PlanCreate,
    PlanListQuery,
    PlanMigrationCreate,
    PlanVersionCreate,
    PriceOverrideCreate,
    PriceOverrideListQuery,
    ProductCreate,
    ProductListQuery,
    PublicPrice,
)

from .conftest import NOW, OUTBOX, TENANT

pytestmark = pytest.mark.service

PUBLIC: TypeAdapter[Any] = TypeAdapter(PublicPrice)


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


CALLS = {
    "key": "calls",
    "meter_key": "api_calls",
    "price": {"model": "per_unit", "unit_price": usd("0.0035")},
}
GMV = {
    "key": "gmv",
    "meter_key": "revenue",
    "price": {"model": "percentage", "rate": "2.9", "fixed_fee": usd("0.30")},
    "billing": "in_advance",
}


def plan_body(code: str = "pro", **changes: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd("49"),
        "trial_days": 14,
        "charges": [CALLS],
        **changes,
    }


async def outbox_events(pool: Pool, topic: Topic[Any]) -> list[CloudEvent[Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic.name)
    return [topic.parse(bytes(row["payload"])) for row in rows]


async def create_plan(pool: Pool, **changes: Any) -> Any:
    async with transaction(pool) as conn:
        return await service.create_plan(
            conn, OUTBOX, TENANT, PlanCreate.model_validate(plan_body(**changes)), now=NOW
        )


def version_body(**changes: Any) -> PlanVersionCreate:
    body = {k: v for k, v in plan_body(**changes).items() if k != "code"}
    return PlanVersionCreate.model_validate(body)


class TestProducts:
    async def test_create_get_and_list(self, pricing_pool: Pool) -> None:
        async with transaction(pricing_pool) as conn:
            first = await service.create_product(
                conn, OUTBOX, TENANT, ProductCreate(name="API"), now=NOW
            )
            second = await service.create_product(
                conn, OUTBOX, TENANT, ProductCreate(name="Storage"), now=NOW
            )
            assert await service.get_product(conn, TENANT, first.id) == first
            with pytest.raises(service.ProductNotFound):
                await service.get_product(conn, "ten_2", first.id)
            page = await service.list_products(conn, TENANT, ProductListQuery(limit=1))
        assert [p.id for p in page.data] == [first.id]
        assert page.next_cursor == first.id
        events = await outbox_events(pricing_pool, PRODUCT_CREATED)
        assert [(e.subject, e.data.name) for e in events] == [
            (first.id, "API"),
            (second.id, "Storage"),
        ]


class TestCreatePlan:
    async def test_stores_version_1_and_publishes_it_whole(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool, charges=[CALLS, GMV])
        assert plan.id.startswith("plan_")
        assert (plan.version, plan.latest_version, plan.meter_keys) == (
            1,
            1,
            ["api_calls", "revenue"],
        )
        assert plan.base_fee is not None
        assert plan.base_fee.amount == "49"
        [event] = await outbox_events(pricing_pool, PLAN_PUBLISHED)
        assert event.subject == plan.id
        assert event.tenantid == TENANT
        data = event.data
        assert (data.plan_id, data.code, data.version) == (plan.id, "pro", 1)
        assert data.meter_keys == ["api_calls", "revenue"]
        assert data.trial_days == 14
        wire = data.model_dump(mode="json")
        assert wire["base_fee"] == {"amount": "49000000000000", "currency": "USD"}
        assert wire["charges"][0]["price"] == {
            "model": "per_unit",
            "unit_price": {"amount": "3500000000", "currency": "USD"},
        }
        assert wire["charges"][1]["billing"] == "in_advance"
        assert wire["charges"][1]["price"]["rate"] == "2.9"

    async def test_a_taken_code_is_a_conflict_and_changes_nothing(self, pricing_pool: Pool) -> None:
        await create_plan(pricing_pool)
        with pytest.raises(service.PlanCodeTaken, match="'pro' is already used"):
            await create_plan(pricing_pool)
        assert await pricing_pool.fetchval("SELECT count(*) FROM plans") == 1
        assert await pricing_pool.fetchval("SELECT count(*) FROM plan_versions") == 1
        assert await pricing_pool.fetchval("SELECT count(*) FROM outbox") == 1

    async def test_codes_are_unique_per_tenant_only(self, pricing_pool: Pool) -> None:
        await create_plan(pricing_pool)
        async with transaction(pricing_pool) as conn:
            other = await service.create_plan(
                conn, OUTBOX, "ten_2", PlanCreate.model_validate(plan_body(charges=[])), now=NOW
            )
        assert other.code == "pro"

    async def test_a_product_must_exist(self, pricing_pool: Pool) -> None:
        with pytest.raises(service.UnknownProduct):
            await create_plan(pricing_pool, product_id=ProductId.new())
        async with transaction(pricing_pool) as conn:
            product = await service.create_product(
                conn, OUTBOX, TENANT, ProductCreate(name="API"), now=NOW
            )
        plan = await create_plan(pricing_pool, product_id=product.id)
        assert plan.product_id == product.id

    async def test_list_shows_latest_versions_filtered_by_code(self, pricing_pool: Pool) -> None:
        pro = await create_plan(pricing_pool)
        basic = await create_plan(pricing_pool, code="basic")
        async with transaction(pricing_pool) as conn:
            await service.publish_version(
                conn,
                OUTBOX,
                TENANT,
                pro.id,
                version_body(name="Pro 2"),
                now=NOW,
            )
            everything = await service.list_plans(conn, TENANT, PlanListQuery())
            only_basic = await service.list_plans(conn, TENANT, PlanListQuery(code="basic"))
        assert [(p.id, p.version, p.name) for p in everything.data] == [
            (pro.id, 2, "Pro 2"),
            (basic.id, 1, "Pro"),
        ]
        assert [p.id for p in only_basic.data] == [basic.id]


class TestPublishVersion:
    async def test_a_new_version_is_published_and_the_old_one_kept(
        self, pricing_pool: Pool
    ) -> None:
        plan = await create_plan(pricing_pool)
        async with transaction(pricing_pool) as conn:
            second = await service.publish_version(
                conn, OUTBOX, TENANT, plan.id, version_body(charges=[CALLS, GMV]), now=NOW
            )
            first = await service.get_plan(conn, TENANT, plan.id, 1)
            latest = await service.get_plan(conn, TENANT, plan.id)
        assert (second.version, second.latest_version) == (2, 2)
        assert latest == second
        assert (first.version, first.latest_version, first.meter_keys) == (1, 2, ["api_calls"])
        events = await outbox_events(pricing_pool, PLAN_PUBLISHED)
        assert [(e.data.version, e.data.meter_keys) for e in events] == [
            (1, ["api_calls"]),
            (2, ["api_calls", "revenue"]),
        ]
        assert events[1].data.code == "pro"
        assert [c.key for c in events[1].data.charges] == ["calls", "gmv"]

    async def test_the_currency_cannot_change(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool, charges=[])
        with pytest.raises(domain.PlanCurrencyChanged):
            async with transaction(pricing_pool) as conn:
                await service.publish_version(
                    conn,
                    OUTBOX,
                    TENANT,
                    plan.id,
                    version_body(currency="EUR", base_fee=None, charges=[]),
                    now=NOW,
                )
        assert await pricing_pool.fetchval("SELECT latest_version FROM plans") == 1

    async def test_an_invalid_version_changes_nothing(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        bad = {**CALLS, "meter_key": "nope"}
        with pytest.raises(domain.UnknownMeter):
            async with transaction(pricing_pool) as conn:
                await service.publish_version(
                    conn, OUTBOX, TENANT, plan.id, version_body(charges=[bad]), now=NOW
                )
        assert await pricing_pool.fetchval("SELECT latest_version FROM plans") == 1
        assert await pricing_pool.fetchval("SELECT count(*) FROM outbox") == 1

    async def test_unknown_plans_and_versions(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        async with transaction(pricing_pool) as conn:
            with pytest.raises(service.PlanVersionNotFound):
                await service.get_plan(conn, TENANT, plan.id, 2)
            with pytest.raises(service.PlanNotFound):
                await service.get_plan(conn, "ten_2", plan.id, 1)
            with pytest.raises(service.PlanNotFound):
                await service.publish_version(
                    conn, OUTBOX, "ten_2", plan.id, version_body(), now=NOW
                )


class TestMigrations:
    async def test_recorded_and_announced(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        later = NOW + timedelta(days=30)
        async with transaction(pricing_pool) as conn:
            await service.publish_version(conn, OUTBOX, TENANT, plan.id, version_body(), now=NOW)
            migration = await service.schedule_migration(
                conn,
                OUTBOX,
                TENANT,
                plan.id,
                PlanMigrationCreate(from_version=1, to_version=2, effective_at=later),
                now=NOW,
            )
            listed = await service.list_migrations(conn, TENANT, plan.id)
        assert listed.data == [migration]
        assert (migration.from_version, migration.to_version, migration.effective_at) == (
            1,
            2,
            later,
        )
        [event] = await outbox_events(pricing_pool, PLAN_MIGRATION_SCHEDULED)
        assert event.subject == plan.id
        assert event.data.migration_id == migration.id
        assert (event.data.plan_code, event.data.from_version, event.data.to_version) == (
            "pro",
            1,
            2,
        )
        assert event.data.effective_at == later
        assert event.data.scheduled_at == NOW

    async def test_to_a_version_that_does_not_exist_is_refused(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        with pytest.raises(domain.UnknownPlanVersion):
            async with transaction(pricing_pool) as conn:
                await service.schedule_migration(
                    conn,
                    OUTBOX,
                    TENANT,
                    plan.id,
                    PlanMigrationCreate(from_version=1, to_version=2),
                    now=NOW,
                )
        assert await pricing_pool.fetchval("SELECT count(*) FROM plan_migrations") == 0


CUSTOMER = CustomerId.new()


def override(price: dict[str, Any], charge_key: str = "calls") -> PriceOverrideCreate:
    return PriceOverrideCreate.model_validate(
        {"customer_id": CUSTOMER, "charge_key": charge_key, "price": price}
    )


class TestOverrides:
    async def test_set_then_replaced_each_announced(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        async with transaction(pricing_pool) as conn:
            first = await service.set_price_override(
                conn,
                OUTBOX,
                TENANT,
                plan.id,
                override({"model": "per_unit", "unit_price": usd("0.002")}),
                now=NOW,
            )
            later = NOW + timedelta(hours=1)
            second = await service.set_price_override(
                conn,
                OUTBOX,
                TENANT,
                plan.id,
                override({"model": "per_unit", "unit_price": usd("0.001")}),
                now=later,
            )
            listed = await service.list_overrides(
                conn, TENANT, plan.id, PriceOverrideListQuery(customer_id=CUSTOMER)
            )
        assert second.id == first.id
        assert (second.created_at, second.updated_at) == (NOW, later)
        assert listed.data == [second]
        assert PUBLIC.dump_python(second.price, mode="json") == {
            "model": "per_unit",
            "unit_price": {"amount": "0.001", "currency": "USD"},
        }
        events = await outbox_events(pricing_pool, PRICE_OVERRIDE_SET)
        assert [e.subject for e in events] == [CUSTOMER, CUSTOMER]
        assert events[1].data.meter_key == "api_calls"
        assert events[1].data.model_dump(mode="json")["price"]["unit_price"] == {
            "amount": "1000000000",
            "currency": "USD",
        }

    async def test_an_override_in_another_currency_is_refused(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        eur = {"model": "per_unit", "unit_price": {"amount": "1", "currency": "EUR"}}
        with pytest.raises(CurrencyMismatch):
            async with transaction(pricing_pool) as conn:
                await service.set_price_override(
                    conn, OUTBOX, TENANT, plan.id, override(eur), now=NOW
                )
        assert await pricing_pool.fetchval("SELECT count(*) FROM price_overrides") == 0


class TestCoupons:
    async def test_created_announced_and_listed(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        request = CouponCreate.model_validate(
            {
                "code": "WELCOME",
                "name": "Welcome",
                "amount_off": usd("10"),
                "duration": "repeating",
                "duration_periods": 3,
                "plan_ids": [plan.id],
            }
        )
        async with transaction(pricing_pool) as conn:
            coupon = await service.create_coupon(conn, OUTBOX, TENANT, request, now=NOW)
            assert await service.get_coupon(conn, TENANT, coupon.id) == coupon
            listed = await service.list_coupons(conn, TENANT, CouponListQuery())
        assert listed.data == [coupon]
        assert coupon.amount_off is not None
        assert coupon.amount_off.amount == "10"
        [event] = await outbox_events(pricing_pool, COUPON_CREATED)
        assert event.data.model_dump(mode="json")["amount_off"] == {
            "amount": "10000000000000",
            "currency": "USD",
        }
        with pytest.raises(service.CouponCodeTaken):
            async with transaction(pricing_pool) as conn:
                await service.create_coupon(conn, OUTBOX, TENANT, request, now=NOW)

    async def test_a_fixed_amount_must_match_its_plans_currency(self, pricing_pool: Pool) -> None:
        plan = await create_plan(pricing_pool)
        request = CouponCreate.model_validate(
            {
                "code": "EUR5",
                "name": "5 EUR off",
                "amount_off": {"amount": "5", "currency": "EUR"},
                "duration": "once",
                "plan_ids": [plan.id],
            }
        )
        with pytest.raises(CurrencyMismatch):
            async with transaction(pricing_pool) as conn:
                await service.create_coupon(conn, OUTBOX, TENANT, request, now=NOW)
        unknown = request.model_copy(update={"plan_ids": [PlanId.new()]})
        with pytest.raises(service.UnknownPlan):
            async with transaction(pricing_pool) as conn:
                await service.create_coupon(conn, OUTBOX, TENANT, unknown, now=NOW)
        assert await pricing_pool.fetchval("SELECT count(*) FROM coupons") == 0


def meter_event(
    topic: Topic[MeterChanged], meter: MeterDefinition, version: int, archived: bool = False
) -> CloudEvent[MeterChanged]:
    """A metering event as the consumer hands it over: serialized, then parsed."""
    event = new_event(
        topic,
        MeterChanged(meter=meter, version=version, archived=archived, changed_at=NOW),
        event_id=uuid.uuid4(),
        source="metering",
        subject=meter.key,
        tenant_id=TENANT,
        time=NOW,
    )
    return topic.parse(event.to_bytes())


STORAGE = MeterDefinition(
    key="storage", name="Storage", event_types=("disk",), aggregation="sum", value_property="gb"
)
STORAGE_CHARGE = {
    "key": "storage",
    "meter_key": "storage",
    "price": {"model": "per_unit", "unit_price": usd("0.1")},
}


class TestMeterProjection:
    async def test_a_created_meter_can_be_priced_an_archived_one_not(
        self, pricing_pool: Pool
    ) -> None:
        with pytest.raises(domain.UnknownMeter):
            await create_plan(pricing_pool, code="a", charges=[STORAGE_CHARGE])
        async with transaction(pricing_pool) as conn:
            await service.project_meter(conn, meter_event(METER_CREATED, STORAGE, 1))
        plan = await create_plan(pricing_pool, code="b", charges=[STORAGE_CHARGE])
        assert plan.meter_keys == ["storage"]
        async with transaction(pricing_pool) as conn:
            await service.project_meter(
                conn, meter_event(METER_ARCHIVED, STORAGE, 2, archived=True)
            )
        with pytest.raises(domain.MeterArchived):
            await create_plan(pricing_pool, code="c", charges=[STORAGE_CHARGE])

    async def test_an_older_version_arriving_late_changes_nothing(self, pricing_pool: Pool) -> None:
        grouped = STORAGE.model_copy(update={"group_by": ("region",)})
        async with transaction(pricing_pool) as conn:
            await service.project_meter(conn, meter_event(METER_UPDATED, grouped, 2))
            await service.project_meter(conn, meter_event(METER_CREATED, STORAGE, 1))
            meters = await repository.meters_by_key(conn, TENANT, ["storage", "nope"])
        assert list(meters) == ["storage"]
        assert meters["storage"].definition.group_by == ("region",)
        assert not meters["storage"].archived

    async def test_meters_are_per_tenant(self, pricing_pool: Pool) -> None:
        async with transaction(pricing_pool) as conn:
            await service.project_meter(conn, meter_event(METER_CREATED, STORAGE, 1))
            assert await repository.meters_by_key(conn, "ten_2", ["storage"]) == {}
