"""The pure planning of a usage batch: who is known, what is parked, what is rejected, and
the compact usage summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_common.usage_events import UsageEvent
from billing_metering.ingestion import IncomingEvent, Source, plan_batch, usage_summaries
from billing_metering.meters import MeterDefinition, MeteredEvent

T0 = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
SOURCE = Source("billing.gateway.usage_events_received", 2, 41)
CALLS = MeterDefinition(key="calls", name="Calls", event_types=("api",), aggregation="count")
BYTES = MeterDefinition(
    key="bytes", name="Bytes", event_types=("api",), aggregation="sum", value_property="b"
)
PEAK = MeterDefinition(
    key="peak", name="Peak", event_types=("api",), aggregation="max", value_property="b"
)


def incoming(
    event_id: str, customer: str, tenant: str = "ten_1", **properties: Any
) -> IncomingEvent:
    return IncomingEvent(
        SOURCE,
        tenant,
        UsageEvent(id=event_id, customer=customer, type="api", timestamp=T0, properties=properties),
    )


class TestPlanBatch:
    def test_known_customers_are_metered_under_our_id(self) -> None:
        plan = plan_batch(
            [incoming("e1", "acme", b=2), incoming("e2", "cus_a", b=3)],
            {("ten_1", "acme"): "cus_a", ("ten_1", "cus_a"): "cus_a"},
            {"ten_1": [CALLS, BYTES]},
        )
        [first, second] = plan.measured["ten_1"]
        assert (first.customer, first.event_id, first.source) == (
            "cus_a",
            "e1",
            "billing.gateway.usage_events_received/2/41",
        )
        assert [(r.meter, r.customer, r.value) for r in first.readings] == [
            ("calls", "cus_a", Decimal(1)),
            ("bytes", "cus_a", Decimal(2)),
        ]
        assert second.readings[1].value == 3
        assert plan.parked == []
        assert plan.rejected == []

    def test_unknown_customers_and_other_tenants_customers_are_parked(self) -> None:
        plan = plan_batch(
            [incoming("e1", "acme", tenant="ten_2", b=1), incoming("e2", "newco", b=1)],
            {("ten_1", "acme"): "cus_a"},
            {"ten_1": [CALLS], "ten_2": [CALLS]},
        )
        assert [item.event.id for item in plan.parked] == ["e1", "e2"]
        assert plan.measured == {}

    def test_an_event_a_meter_cannot_read_is_rejected_alone(self) -> None:
        plan = plan_batch(
            [incoming("ok", "acme", b=1), incoming("bad", "acme", b="lots")],
            {("ten_1", "acme"): "cus_a"},
            {"ten_1": [BYTES]},
        )
        assert [event.event_id for event in plan.measured["ten_1"]] == ["ok"]
        [rejected] = plan.rejected
        assert rejected.incoming.event.id == "bad"
        assert rejected.reason == "invalid_event_value: property 'b' is 'lots', not a number"

    def test_a_tenant_without_meters_records_events_without_readings(self) -> None:
        plan = plan_batch([incoming("e1", "acme")], {("ten_1", "acme"): "cus_a"}, {})
        [event] = plan.measured["ten_1"]
        assert event.readings == ()


def reading(meter: str, minutes: int, value: str, customer: str = "cus_a") -> MeteredEvent:
    return MeteredEvent(
        meter=meter,
        customer=customer,
        event_id=f"{meter}{minutes}",
        timestamp=T0 + timedelta(minutes=minutes),
        value=Decimal(value),
    )


class TestUsageSummaries:
    def test_per_customer_meter_and_month_with_additive_deltas(self) -> None:
        meters = {("ten_1", m.key): m for m in (CALLS, BYTES, PEAK)}
        summaries = usage_summaries(
            [
                ("ten_1", reading("calls", 0, "1")),
                ("ten_1", reading("calls", 1, "1")),  # February
                ("ten_1", reading("bytes", 0, "0.5")),
                ("ten_1", reading("bytes", -5, "2.25")),
                ("ten_1", reading("peak", 0, "9")),
                ("ten_1", reading("peak", 0, "4", customer="cus_b")),
            ],
            meters,
        )
        january = datetime(2026, 1, 1, tzinfo=UTC)
        february = datetime(2026, 2, 1, tzinfo=UTC)
        assert sorted(
            (key[1], key[2], key[3], s.events, s.value_delta) for key, s in summaries.items()
        ) == [
            ("cus_a", "bytes", january, 2, Decimal("2.75")),
            ("cus_a", "calls", january, 1, Decimal(1)),
            ("cus_a", "calls", february, 1, Decimal(1)),
            ("cus_a", "peak", january, 1, None),
            ("cus_b", "peak", january, 1, None),
        ]
        bytes_summary = summaries[("ten_1", "cus_a", "bytes", january)]
        assert bytes_summary.first_event_at == T0 - timedelta(minutes=5)
        assert bytes_summary.last_event_at == T0
