"""Meter use cases on a real PostgreSQL schema: state, events and the errors a client sees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing_common.db import Pool, transaction
from billing_common.errors import BillingError
from billing_common.runtime import ServiceContext
from billing_metering import repository, service
from billing_metering.events import METER_ARCHIVED, METER_CREATED, METER_UPDATED
from billing_metering.meters import InvalidMeterFilter, MeterDefinition
from billing_metering.schemas import MeterCreate, MeterFieldImmutable, MeterUpdate

pytestmark = pytest.mark.service

TENANT = "ten_1"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def create_request(key: str = "api_calls", **overrides: Any) -> MeterCreate:
    data: dict[str, Any] = {
        "key": key,
        "name": "API calls",
        "event_types": ["api.request"],
        "aggregation": "sum",
        "value_property": "calls",
        "group_by": ["region"],
    }
    data.update(overrides)
    return MeterCreate.model_validate(data)


async def outbox_topics(pool: Pool) -> list[str]:
    return [row["topic"] for row in await pool.fetch("SELECT topic FROM outbox ORDER BY seq")]


class TestCreateMeter:
    async def test_stores_the_meter_and_announces_it(self, context: ServiceContext) -> None:
        async with context.unit_of_work() as conn:
            meter = await service.create_meter(
                conn, context.outbox, TENANT, create_request(), now=NOW
            )
        assert (meter.key, meter.version, meter.archived) == ("api_calls", 1, False)
        [row] = await context.pool.fetch("SELECT payload FROM outbox")
        event = METER_CREATED.parse(bytes(row["payload"]))
        assert event.data.meter == meter.definition()
        assert (event.subject, event.tenantid, event.data.version) == ("api_calls", TENANT, 1)

    async def test_a_taken_key_is_a_conflict(self, context: ServiceContext) -> None:
        async with context.unit_of_work() as conn:
            await service.create_meter(conn, context.outbox, TENANT, create_request(), now=NOW)
        with pytest.raises(service.MeterKeyTaken) as caught:
            async with context.unit_of_work() as conn:
                await service.create_meter(conn, context.outbox, TENANT, create_request(), now=NOW)
        assert (caught.value.status, caught.value.code) == (409, "meter_key_taken")
        async with context.unit_of_work() as conn:  # another tenant may use it
            await service.create_meter(conn, context.outbox, "ten_2", create_request(), now=NOW)
        assert await outbox_topics(context.pool) == [METER_CREATED.name] * 2


class TestUpdateMeter:
    async def test_name_event_types_and_filters_change_and_the_version_rises(
        self, context: ServiceContext
    ) -> None:
        async with context.unit_of_work() as conn:
            await service.create_meter(conn, context.outbox, TENANT, create_request(), now=NOW)
            updated = await service.update_meter(
                conn,
                context.outbox,
                TENANT,
                "api_calls",
                MeterUpdate.model_validate(
                    {
                        "name": "Calls",
                        "filters": [{"property": "status", "operator": "equals", "value": "ok"}],
                    }
                ),
                now=NOW,
            )
        assert (updated.name, updated.version, updated.aggregation) == ("Calls", 2, "sum")
        assert updated.filters[0].property == "status"
        assert await outbox_topics(context.pool) == [METER_CREATED.name, METER_UPDATED.name]

    @pytest.mark.parametrize("field", ["aggregation", "value_property", "group_by", "key"])
    def test_what_stored_usage_means_cannot_change(self, field: str) -> None:
        with pytest.raises(MeterFieldImmutable) as caught:
            MeterUpdate.model_validate({field: "x"})
        assert caught.value.code == "meter_field_immutable"
        assert caught.value.status == 422

    def test_an_empty_update_is_refused(self) -> None:
        with pytest.raises(BillingError, match="at least one of"):
            MeterUpdate.model_validate({})

    async def test_an_invalid_new_filter_is_refused_with_its_code(
        self, context: ServiceContext
    ) -> None:
        with pytest.raises(InvalidMeterFilter):
            MeterUpdate.model_validate(
                {"filters": [{"property": "status", "operator": "in", "values": []}]}
            )

    async def test_an_unknown_meter_is_not_found(self, context: ServiceContext) -> None:
        with pytest.raises(service.MeterNotFound) as caught:
            async with context.unit_of_work() as conn:
                await service.update_meter(
                    conn, context.outbox, TENANT, "nope", MeterUpdate(name="x"), now=NOW
                )
        assert (caught.value.status, caught.value.code) == (404, "meter_not_found")


class TestArchiveMeter:
    async def test_archiving_keeps_the_meter_and_stops_it_counting(
        self, context: ServiceContext
    ) -> None:
        async with context.unit_of_work() as conn:
            await service.create_meter(conn, context.outbox, TENANT, create_request(), now=NOW)
            archived = await service.archive_meter(
                conn, context.outbox, TENANT, "api_calls", now=NOW
            )
            again = await service.archive_meter(conn, context.outbox, TENANT, "api_calls", now=NOW)
            listed = await service.list_meters(conn, TENANT, include_archived=False)
            everything = await service.list_meters(conn, TENANT, include_archived=True)
            active = await repository.active_meters(conn)
        assert archived.archived
        assert archived.version == 2
        assert again == archived  # archiving twice changes nothing
        assert listed.data == []
        assert [m.key for m in everything.data] == ["api_calls"]
        assert active == {}
        assert await outbox_topics(context.pool) == [METER_CREATED.name, METER_ARCHIVED.name]
        with pytest.raises(service.MeterArchived):
            async with context.unit_of_work() as conn:
                await service.update_meter(
                    conn, context.outbox, TENANT, "api_calls", MeterUpdate(name="x"), now=NOW
                )

    async def test_a_meter_a_plan_charges_on_cannot_be_archived(
        self, context: ServiceContext
    ) -> None:
        async with context.unit_of_work() as conn:
            await service.create_meter(conn, context.outbox, TENANT, create_request(), now=NOW)
            await repository.add_plan_references(conn, TENANT, "plan_1", ["api_calls"])
        with pytest.raises(service.MeterInUse) as caught:
            async with context.unit_of_work() as conn:
                await service.archive_meter(conn, context.outbox, TENANT, "api_calls", now=NOW)
        assert (caught.value.status, caught.value.code) == (409, "meter_in_use")
        assert "plan_1" in caught.value.detail
        async with context.unit_of_work() as conn:  # a later version without it: still in use
            await repository.add_plan_references(conn, TENANT, "plan_1", [])
            await repository.add_plan_references(conn, TENANT, "plan_2", ["api_calls"])
            assert await repository.plans_using(conn, TENANT, "api_calls") == ["plan_1", "plan_2"]
            meter = await service.get_meter(conn, TENANT, "api_calls")
            listed = await service.list_meters(conn, TENANT, include_archived=False)
        assert meter.plans == ["plan_1", "plan_2"]
        assert listed.data[0].plans == ["plan_1", "plan_2"]


class TestMeterCache:
    async def test_the_revision_moves_on_every_change(self, metering_pool: Pool) -> None:
        async with transaction(metering_pool) as conn:
            assert await repository.meters_revision(conn) == 0
            definition = MeterDefinition.model_validate(create_request().model_dump())
            await repository.insert_meter(conn, TENANT, definition, NOW)
            first = await repository.meters_revision(conn)
            await repository.update_meter(
                conn, TENANT, definition, version=2, archived_at=None, now=NOW
            )
            assert await repository.meters_revision(conn) > first > 0


class TestResolveCustomers:
    async def test_by_our_id_or_the_external_id_per_tenant(self, metering_pool: Pool) -> None:
        async with transaction(metering_pool) as conn:
            await repository.upsert_customer(conn, TENANT, "cus_a", "acme")
            await repository.upsert_customer(conn, "ten_2", "cus_b", "bolt")
            resolved = await repository.resolve_customers(
                conn, TENANT, ["cus_a", "acme", "bolt", "cus_b", "nobody"]
            )
            assert resolved == {"cus_a": "cus_a", "acme": "cus_a"}
            assert await service.resolve_customer(conn, TENANT, "acme") == "cus_a"
            with pytest.raises(service.UnknownCustomer):
                await service.resolve_customer(conn, TENANT, "bolt")
