"""The pure part of usage ingestion: parsing, validation, grouping and the Kafka messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from billing_common import exact_json
from billing_common.errors import MalformedBody, UnsupportedMediaType
from billing_common.usage_events import UsageEvent
from billing_gateway.events import MAX_EVENTS_PER_REQUEST, USAGE_EVENTS_RECEIVED
from billing_gateway.usage_events import (
    CLOUDEVENT,
    CLOUDEVENT_BATCH,
    CLOUDEVENT_FIELDS,
    JSON,
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTIES_DEPTH,
    NATIVE_FIELDS,
    REJECT_CODES,
    CloudEventInput,
    EmptyBatch,
    EventReject,
    EventsRejected,
    InvalidBatch,
    ParsedBatch,
    TooManyEvents,
    UsageEventInput,
    encode_message,
    event_format,
    group_by_customer,
    messages_for,
    parse_usage_events,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
EVENT_ID = UUID("0195523c-2a40-7000-8000-000000000001")
EXACT_NUMBERS = ("0.1", "1E+2", "123456789012345678.123456789012")


def body(value: Any) -> bytes:
    return exact_json.dumps(value)


def parse(value: Any, content_type: str = JSON) -> ParsedBatch:
    return parse_usage_events(body(value), content_type, NOW)


def native(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"id": "evt-1", "customer": "cus_1", "type": "api.call"}
    event.update(fields)
    return {name: value for name, value in event.items() if value is not ...}


def cloudevent(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/billing/tests",
        "type": "api.call",
        "subject": "cus_1",
    }
    event.update(fields)
    return {name: value for name, value in event.items() if value is not ...}


def rejected_one(value: Any, content_type: str = JSON) -> EventReject:
    """The single reject of a one-event body that must be refused."""
    batch = parse([value], CLOUDEVENT_BATCH if content_type != JSON else JSON)
    assert batch.accepted == []
    (reject,) = batch.rejected
    assert reject.index == 0
    return reject


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class TestContentTypes:
    @pytest.mark.parametrize(
        ("content_type", "form"),
        [
            (None, "native"),
            ("application/json", "native"),
            ("Application/JSON; charset=utf-8", "native"),
            ("application/cloudevents+json", "cloudevent"),
            ("application/cloudevents-batch+json; charset=UTF-8", "cloudevent_batch"),
        ],
    )
    def test_the_three_formats(self, content_type: str | None, form: str) -> None:
        assert event_format(content_type) == form

    @pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
    def test_anything_else_is_415(self, content_type: str) -> None:
        with pytest.raises(UnsupportedMediaType) as caught:
            parse_usage_events(body(native()), content_type, NOW)
        assert caught.value.status == 415
        assert CLOUDEVENT_BATCH in caught.value.detail


class TestWholeRequest:
    @pytest.mark.parametrize("raw", [b"", b"  ", b'{"id": ', b"[NaN]", b"\xff\xfe{", b"[1e]"])
    def test_a_body_that_is_not_json_is_400(self, raw: bytes) -> None:
        with pytest.raises(MalformedBody) as caught:
            parse_usage_events(raw, JSON, NOW)
        assert caught.value.status == 400

    @pytest.mark.parametrize(
        ("value", "content_type"),
        [
            ("an event", JSON),
            (42, JSON),
            ([cloudevent()], CLOUDEVENT),
            (cloudevent(), CLOUDEVENT_BATCH),
        ],
    )
    def test_a_body_of_the_wrong_shape_is_422(self, value: Any, content_type: str) -> None:
        with pytest.raises(InvalidBatch) as caught:
            parse(value, content_type)
        assert (caught.value.status, caught.value.code) == (422, "invalid_batch")

    @pytest.mark.parametrize("content_type", [JSON, CLOUDEVENT_BATCH])
    def test_an_empty_batch_is_422(self, content_type: str) -> None:
        with pytest.raises(EmptyBatch) as caught:
            parse([], content_type)
        assert (caught.value.status, caught.value.code) == (422, "empty_batch")

    def test_a_batch_of_1000_is_taken(self) -> None:
        events = [native(id=f"evt-{i}") for i in range(MAX_EVENTS_PER_REQUEST)]
        batch = parse(events)
        assert len(batch.accepted) == 1000
        assert batch.rejected == []

    @pytest.mark.parametrize("content_type", [JSON, CLOUDEVENT_BATCH])
    def test_a_batch_of_1001_is_413(self, content_type: str) -> None:
        make = native if content_type == JSON else cloudevent
        events = [make(id=f"evt-{i}") for i in range(MAX_EVENTS_PER_REQUEST + 1)]
        with pytest.raises(TooManyEvents) as caught:
            parse(events, content_type)
        error = caught.value
        assert (error.status, error.code) == (413, "too_many_events")
        assert "1001" in error.detail
        assert error.to_problem()["max_events"] == 1000

    def test_all_rejected_is_a_422_listing_each(self) -> None:
        batch = parse([native(id=""), 5])
        problem = EventsRejected(batch.rejected).to_problem("/v1/events")
        assert (problem["status"], problem["code"]) == (422, "events_rejected")
        assert [r["index"] for r in problem["rejected"]] == [0, 1]
        assert problem["rejected"][1]["code"] == "invalid_event"
        assert "and 1 more" in problem["detail"]

    def test_now_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            parse_usage_events(body(native()), JSON, NOW.replace(tzinfo=None))


class TestNativeEvents:
    def test_one_event_is_read_with_its_fields(self) -> None:
        batch = parse(native(timestamp="2025-03-01T13:00:00.250+01:00", properties={"tokens": 12}))
        assert batch.rejected == []
        (event,) = batch.accepted
        assert event == UsageEvent(
            id="evt-1",
            customer="cus_1",
            type="api.call",
            timestamp=datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
            properties={"tokens": 12},
        )

    def test_timestamp_and_properties_are_optional(self) -> None:
        for event in (native(), native(timestamp=None, properties=None)):
            (parsed,) = parse(event).accepted
            assert parsed.timestamp == datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
            assert parsed.properties == {}

    def test_a_mixed_batch_keeps_the_good_events(self) -> None:
        events: list[Any] = [
            native(id="a"),
            "not an event",
            native(id="b", colour="red"),
            native(id="c", customer="ext-42"),
            native(id="d", timestamp="yesterday"),
            native(id="e", properties={"n": Decimal("0.5")}),
        ]
        batch = parse(events)
        assert [event.id for event in batch.accepted] == ["a", "c", "e"]
        assert batch.accepted[2].properties == {"n": Decimal("0.5")}
        assert [(r.index, r.code) for r in batch.rejected] == [
            (1, "invalid_event"),
            (2, "unknown_field"),
            (4, "invalid_timestamp"),
        ]

    def test_lowercase_and_space_separated_rfc_3339_is_read(self) -> None:
        for text in ("2025-03-01t12:00:00z", "2025-03-01 12:00:00Z", "2025-03-01T12:00:00.1-00:00"):
            (event,) = parse(native(timestamp=text)).accepted
            assert event.timestamp.replace(microsecond=0) == datetime(2025, 3, 1, 12, tzinfo=UTC)


class TestRejectCodes:
    @pytest.mark.parametrize(
        ("event", "code", "words"),
        [
            (5, "invalid_event", "got a number"),
            ([native()], "invalid_event", "got an array"),
            (None, "invalid_event", "got null"),
            (native(id=...), "missing_field", "missing required field id"),
            (native(id=..., type=...), "missing_field", "fields id, type"),
            (native(colour="red"), "unknown_field", "'colour'"),
            (native(id=7), "invalid_field", "id must be a string, got a number"),
            (native(id=""), "invalid_field", "id must not be empty"),
            (native(id="x" * 256), "invalid_field", "at most 255"),
            (native(customer=None), "invalid_field", "customer must be a string"),
            (native(customer="cus\x001"), "invalid_field", "NUL"),
            (native(customer="cus\ud8001"), "invalid_field", "lone surrogate"),
            (native(type="api call"), "invalid_field", "letters, digits"),
            (native(type="-api"), "invalid_field", "starting with a letter or digit"),
            (native(type="a" * 129), "invalid_field", "type"),
            (native(type="api\n"), "invalid_field", "type"),
            (native(properties=[1]), "invalid_field", "properties must be a JSON object"),
            (native(properties="{}"), "invalid_field", "got a string"),
            (native(properties={"a": ["ok", "b\x00"]}), "invalid_field", "properties.a[1]"),
            (native(timestamp=1740830400), "invalid_timestamp", "got a number"),
            (native(timestamp="2025-03-01T12:00:00"), "invalid_timestamp", "with an offset"),
            (native(timestamp="2025-03-01"), "invalid_timestamp", "RFC 3339"),
            (native(timestamp="2025-02-30T12:00:00Z"), "invalid_timestamp", "not a valid time"),
            (native(timestamp="2025-03-01T12:00:00Z\n"), "invalid_timestamp", "RFC 3339"),
            (native(timestamp="2024-01-01T00:00:00Z"), "timestamp_too_old", "35 days"),
            (native(timestamp="2025-03-02T00:00:00Z"), "timestamp_in_future", "5 minutes"),
        ],
    )
    def test_native(self, event: Any, code: str, words: str) -> None:
        reject = rejected_one(event)
        assert reject.code == code
        assert words in reject.message

    @pytest.mark.parametrize(
        ("event", "code", "words"),
        [
            (cloudevent(specversion="0.3"), "invalid_specversion", "'0.3'"),
            (cloudevent(specversion=1), "invalid_specversion", "got a number"),
            (cloudevent(specversion=...), "missing_field", "specversion"),
            (cloudevent(source=...), "missing_field", "source"),
            (cloudevent(subject=...), "missing_field", "subject"),
            (cloudevent(source=""), "invalid_field", "source must not be empty"),
            (cloudevent(subject=3), "invalid_field", "subject must be a string"),
            (cloudevent(customer="cus_1"), "unknown_field", "'customer'"),
            (cloudevent(myextension="x"), "unknown_field", "'myextension'"),
            (cloudevent(data_base64="AAAA"), "unknown_field", "'data_base64'"),
            (cloudevent(datacontenttype="text/xml"), "invalid_field", "datacontenttype"),
            (cloudevent(data=[1, 2]), "invalid_field", "data must be a JSON object"),
            (cloudevent(time="now"), "invalid_timestamp", "time 'now'"),
            (cloudevent(time="2020-01-01T00:00:00Z"), "timestamp_too_old", "time 2020"),
        ],
    )
    def test_cloudevents(self, event: Any, code: str, words: str) -> None:
        reject = rejected_one(event, CLOUDEVENT_BATCH)
        assert reject.code == code
        assert words in reject.message

    def test_properties_up_to_32_kib_are_taken_and_no_more(self) -> None:
        filler = MAX_PROPERTIES_BYTES - len('{"s":""}')
        (event,) = parse(native(properties={"s": "x" * filler})).accepted
        assert len(event.properties["s"]) == filler
        reject = rejected_one(native(properties={"s": "x" * (filler + 1)}))
        assert reject.code == "properties_too_large"
        assert f"{MAX_PROPERTIES_BYTES + 1} bytes" in reject.message
        assert "32768" in reject.message

    def test_properties_up_to_16_levels_deep_are_taken_and_no_more(self) -> None:
        assert _depth(nest(MAX_PROPERTIES_DEPTH)) == MAX_PROPERTIES_DEPTH
        assert parse(native(properties=nest(MAX_PROPERTIES_DEPTH))).accepted
        reject = rejected_one(native(properties=nest(MAX_PROPERTIES_DEPTH + 1)))
        assert reject.code == "properties_too_deep"
        assert "16 levels" in reject.message

    def test_every_code_is_exercised_above(self) -> None:
        tested = {
            "invalid_event",
            "missing_field",
            "unknown_field",
            "invalid_field",
            "invalid_specversion",
            "invalid_timestamp",
            "timestamp_too_old",
            "timestamp_in_future",
            "properties_too_large",
            "properties_too_deep",
        }
        assert set(REJECT_CODES) == tested


def nest(levels: int) -> dict[str, Any]:
    """A properties object `levels` deep (itself level 1), objects and arrays in turn."""
    value: Any = 1
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"top": value}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class TestTimestampWindow:
    def test_exactly_35_days_back_is_taken_one_ms_more_is_not(self) -> None:
        earliest = NOW - timedelta(days=35)
        (event,) = parse(native(timestamp=iso(earliest))).accepted
        assert event.timestamp == earliest.replace(microsecond=123000)
        reject = rejected_one(native(timestamp=iso(earliest - timedelta(milliseconds=1))))
        assert reject.code == "timestamp_too_old"
        assert "2025-01-25T12:00:00.123Z" in reject.message  # the bound, named

    def test_exactly_5_minutes_ahead_is_taken_one_ms_more_is_not(self) -> None:
        latest = NOW + timedelta(minutes=5)
        assert parse(native(timestamp=iso(latest))).accepted
        reject = rejected_one(native(timestamp=iso(latest + timedelta(milliseconds=1))))
        assert reject.code == "timestamp_in_future"
        assert "2025-03-01T12:05:00.123Z" in reject.message

    def test_offsets_count_in_the_window(self) -> None:
        paris = timezone(timedelta(hours=1))
        latest = (NOW + timedelta(minutes=5)).astimezone(paris)
        assert latest.isoformat() == "2025-03-01T13:05:00.123456+01:00"
        assert parse(native(timestamp=latest.isoformat())).accepted
        beyond = (latest + timedelta(milliseconds=1)).isoformat()
        assert rejected_one(native(timestamp=beyond)).code == "timestamp_in_future"


class TestCloudEvents:
    def test_one_cloudevent_maps_onto_a_usage_event(self) -> None:
        event = cloudevent(
            time="2025-03-01T11:00:00Z",
            data={"tokens": 3},
            datacontenttype="application/json",
            dataschema="https://example.com/schema",
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        batch = parse(event, CLOUDEVENT)
        assert batch.rejected == []
        assert batch.accepted == [
            UsageEvent(
                id="evt-1",
                customer="cus_1",
                type="api.call",
                timestamp=datetime(2025, 3, 1, 11, tzinfo=UTC),
                properties={"tokens": 3},
            )
        ]

    def test_a_cloudevents_batch_with_a_bad_element(self) -> None:
        events = [cloudevent(id="a"), cloudevent(id="b", specversion="2.0"), cloudevent(id="c")]
        batch = parse(events, CLOUDEVENT_BATCH)
        assert [event.id for event in batch.accepted] == ["a", "c"]
        assert [(r.index, r.code) for r in batch.rejected] == [(1, "invalid_specversion")]
        (first, _) = batch.accepted
        assert first.properties == {}
        assert first.timestamp == NOW.replace(microsecond=123000)


class TestExactNumbers:
    def test_numbers_keep_their_digits_from_body_to_message(self) -> None:
        raw = (
            b'{"id": "e", "customer": "cus_1", "type": "t", "properties": '
            b'{"a": 0.1, "b": 1E+2, "c": 123456789012345678.123456789012, "d": [1e-7, 7]}}'
        )
        (event,) = parse_usage_events(raw, JSON, NOW).accepted
        values = event.properties
        assert [values[k].as_tuple() for k in "abc"] == [
            Decimal(text).as_tuple() for text in EXACT_NUMBERS
        ]
        assert values["d"][1] == 7
        assert isinstance(values["d"][1], int)

        payload = encode_message(
            "cus_1",
            [event],
            tenant_id="ten_1",
            received_at=NOW,
            traceparent=None,
            event_id=EVENT_ID,
        )
        assert b'"a":0.1,"b":1E+2,"c":123456789012345678.123456789012,"d":[1E-7,7]' in payload
        back = USAGE_EVENTS_RECEIVED.parse(payload).data.events[0].properties
        assert [back[k].as_tuple() for k in "abc"] == [values[k].as_tuple() for k in "abc"]
        assert back["d"] == [Decimal("1E-7"), 7]


class TestMessages:
    def events(self) -> list[UsageEvent]:
        raw = [
            native(id="1", customer="cus_a", properties={"n": 1}),
            native(id="2", customer="ext-b"),
            native(id="3", customer="cus_a", timestamp="2025-03-01T11:59:00Z"),
        ]
        return parse(raw).accepted

    def test_groups_follow_the_customer_string_as_sent(self) -> None:
        groups = group_by_customer(self.events())
        assert list(groups) == ["cus_a", "ext-b"]
        assert [[e.id for e in group] for group in groups.values()] == [["1", "3"], ["2"]]

    def test_the_envelope_round_trips_through_the_topic(self) -> None:
        events = self.events()
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        payload = encode_message(
            "cus_a",
            [events[0], events[2]],
            tenant_id="ten_1",
            received_at=NOW,
            traceparent=traceparent,
            event_id=EVENT_ID,
        )
        envelope = USAGE_EVENTS_RECEIVED.parse(payload)
        assert envelope.id == EVENT_ID
        assert envelope.type == "billing.gateway.usage_events_received"
        assert (envelope.source, envelope.subject, envelope.tenantid) == (
            "gateway",
            "cus_a",
            "ten_1",
        )
        assert envelope.time == NOW
        assert envelope.traceparent == traceparent
        assert envelope.datacontenttype == "application/json"
        assert envelope.data.received_at == NOW
        assert list(envelope.data.events) == [events[0], events[2]]
        # The defaulted timestamp is written out, at the store's millisecond precision.
        raw = json.loads(payload, parse_float=Decimal)
        assert raw["data"]["events"][0]["timestamp"] == "2025-03-01T12:00:00.123000+00:00"

    def test_encode_message_refuses_mixed_customers_and_naive_times(self) -> None:
        events = self.events()
        common: dict[str, Any] = {"tenant_id": "t", "traceparent": None, "event_id": EVENT_ID}
        with pytest.raises(ValueError, match="customer"):
            encode_message("cus_a", events, received_at=NOW, **common)
        with pytest.raises(ValueError, match="aware"):
            encode_message("cus_a", events[:1], received_at=NOW.replace(tzinfo=None), **common)
        with pytest.raises(ValueError, match="at least one"):
            encode_message("cus_a", [], received_at=NOW, **common)

    def test_one_message_per_customer_keyed_by_it(self) -> None:
        messages = messages_for(
            self.events(), tenant_id="ten_1", received_at=NOW, traceparent="00-aa-bb-01"
        )
        assert [m.key for m in messages] == [b"cus_a", b"ext-b"]
        assert {m.topic for m in messages} == {USAGE_EVENTS_RECEIVED.name}
        ids = [USAGE_EVENTS_RECEIVED.parse(m.value).id for m in messages]
        assert len(set(ids)) == 2
        assert all(UUID(str(i)).version == 7 for i in ids)
        assert dict(messages[0].headers) == {
            "ce_type": USAGE_EVENTS_RECEIVED.name.encode(),
            "content-type": CLOUDEVENT.encode(),
            "traceparent": b"00-aa-bb-01",
        }

    def test_a_group_too_large_for_one_message_is_split_in_order(self) -> None:
        events = parse(
            [native(id=str(i), properties={"pad": "x" * 400}) for i in range(10)]
        ).accepted
        messages = messages_for(
            events, tenant_id="ten_1", received_at=NOW, traceparent=None, max_bytes=2000
        )
        assert len(messages) > 1
        assert all(len(m.value) <= 2000 for m in messages)
        assert {m.key for m in messages} == {b"cus_1"}
        sent = [e.id for m in messages for e in USAGE_EVENTS_RECEIVED.parse(m.value).data.events]
        assert sent == [str(i) for i in range(10)]


class TestWireModels:
    def test_the_documented_fields_are_the_parsed_fields(self) -> None:
        assert tuple(UsageEventInput.model_fields) == NATIVE_FIELDS
        assert set(CloudEventInput.model_fields) == set(CLOUDEVENT_FIELDS)

    def test_an_accepted_native_event_satisfies_the_documented_schema(self) -> None:
        event = native(timestamp="2025-03-01T12:00:00Z", properties={"a": 1})
        assert parse(event).accepted
        UsageEventInput.model_validate(event)
        ce = cloudevent(time="2025-03-01T12:00:00Z", data={"a": 1})
        assert parse(ce, CLOUDEVENT).accepted
        CloudEventInput.model_validate(ce)
