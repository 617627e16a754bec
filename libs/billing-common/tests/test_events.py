from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing_common.errors import InvalidEvent
from billing_common.events import EventData, Topic, dead_letter_topic, new_event, topic_name
from billing_common.ids import uuid7


class Thing(EventData):
    thing_id: str
    count: int


THING_HAPPENED = Topic("widgets", "thing_happened", Thing, "test topic")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_payload(**overrides: object) -> bytes:
    event = new_event(
        THING_HAPPENED,
        Thing(thing_id="t1", count=3),
        event_id=uuid7(),
        source="widgets",
        subject="cus_1",
        tenant_id="ten_1",
        time=NOW,
    )
    raw = json.loads(event.to_bytes())
    raw.update(overrides)
    return json.dumps(raw).encode()


class TestTopicNames:
    def test_names(self) -> None:
        assert topic_name("metering", "usage_recorded") == "billing.metering.usage_recorded"
        assert topic_name("spend-alerts", "limit_reached") == "billing.spend_alerts.limit_reached"
        assert dead_letter_topic("billing.a.b") == "billing.a.b.dlq"
        assert THING_HAPPENED.dead_letter == "billing.widgets.thing_happened.dlq"

    def test_rejects_non_snake_case(self) -> None:
        with pytest.raises(ValueError, match="snake_case"):
            topic_name("metering", "UsageRecorded")

    def test_commands_end_in_requested(self) -> None:
        with pytest.raises(ValueError, match="_requested"):
            Topic("engine", "close_period", Thing, "x", kind="command")
        assert Topic("engine", "close_requested", Thing, "x", kind="command").kind == "command"


class TestEnvelope:
    def test_round_trip(self) -> None:
        event = THING_HAPPENED.parse(make_payload())
        assert event.data == Thing(thing_id="t1", count=3)
        assert event.type == "billing.widgets.thing_happened"
        assert event.specversion == "1.0"
        assert event.time == NOW

    def test_time_is_normalized_to_utc_and_must_be_aware(self) -> None:
        paris = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        event = new_event(
            THING_HAPPENED,
            Thing(thing_id="t", count=1),
            event_id=uuid7(),
            source="s",
            subject="c",
            tenant_id="t",
            time=paris,
        )
        assert event.time == NOW
        assert event.time.tzinfo == UTC
        with pytest.raises(ValueError, match="timezone-aware"):
            new_event(
                THING_HAPPENED,
                Thing(thing_id="t", count=1),
                event_id=uuid7(),
                source="s",
                subject="c",
                tenant_id="t",
                time=datetime(2026, 3, 1),
            )

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"{nope", "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (make_payload(id="not-a-uuid"), "not a CloudEvents 1.0 envelope"),
            (make_payload(specversion="0.3"), "not a CloudEvents 1.0 envelope"),
            (make_payload(type="billing.other.thing"), "does not belong on topic"),
            (make_payload(data={"thing_id": "t1", "count": "many"}), "data.count|count"),
            (make_payload(data={"thing_id": "t1", "count": 1, "extra": 1}), "extra"),
        ],
    )
    def test_invalid_messages_raise_with_a_reason(self, payload: bytes, reason: str) -> None:
        with pytest.raises(InvalidEvent, match=reason):
            THING_HAPPENED.parse(payload)
