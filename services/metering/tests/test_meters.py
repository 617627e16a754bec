"""Meter definitions, events, and how a meter reads an event: validation errors by code."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from billing_common.errors import BillingError, InvalidEvent
from billing_metering import meters
from billing_metering.meters import (
    MAX_GROUP_BY,
    Aggregation,
    CarryOverNotSupported,
    InvalidEventTimestamp,
    InvalidEventTypes,
    InvalidEventValue,
    InvalidGroupBy,
    InvalidMeter,
    InvalidMeterFilter,
    InvalidMeterKey,
    InvalidPropertyPath,
    InvalidSetOperation,
    MeterDefinition,
    MeteredEvent,
    MissingEventValue,
    OperationPropertyNotAllowed,
    SetOperation,
    UsageEvent,
    ValuePropertyNotAllowed,
    ValuePropertyRequired,
    canonical_text,
    extract_value,
    group_values,
    matches,
    measure,
    measure_all,
    meters_by_key,
    numeric_value,
)

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def meter(**overrides: Any) -> MeterDefinition:
    data: dict[str, Any] = {
        "key": "storage_gb",
        "name": "Storage",
        "event_types": ["storage.sampled"],
        "aggregation": "sum",
        "value_property": "gb",
    }
    data.update(overrides)
    return MeterDefinition.model_validate(data)


def event(properties: dict[str, Any] | None = None, **overrides: Any) -> UsageEvent:
    data: dict[str, Any] = {
        "id": "evt_1",
        "customer": "cus_1",
        "type": "storage.sampled",
        "timestamp": T0,
        "properties": properties if properties is not None else {"gb": 5},
    }
    data.update(overrides)
    return UsageEvent.model_validate(data)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(meters, raise_on_error=False).failed == 0


# -- MeterDefinition ------------------------------------------------------------------------


class TestMeterDefinition:
    @pytest.mark.parametrize(
        "overrides",
        [
            {"aggregation": "count", "value_property": None},
            {"aggregation": "sum"},
            {"aggregation": "max"},
            {"aggregation": "min"},
            {"aggregation": "unique_count", "value_property": "user.id"},
            {"aggregation": "unique_count", "operation_property": "op", "carry_over": True},
            {"aggregation": "latest", "carry_over": True},
            {"aggregation": "weighted_sum", "carry_over": True},
            {"aggregation": "weighted_sum"},
            {"group_by": [f"d{i}" for i in range(MAX_GROUP_BY)]},
            {
                "filters": [
                    {"property": "region", "operator": "equals", "value": "eu"},
                    {"property": "tier", "operator": "in", "values": ["pro", "team"]},
                    {"property": "a.b-c.$d", "operator": "not_in", "values": ["x"]},
                ]
            },
            {"key": "a" * 63},
            {"event_types": ["a", "b.c", "d:e/f-g_h"]},
        ],
    )
    def test_accepts_a_valid_definition(self, overrides: dict[str, Any]) -> None:
        assert meter(**overrides).key

    @pytest.mark.parametrize(
        ("overrides", "error", "code"),
        [
            ({"key": "Storage"}, InvalidMeterKey, "invalid_meter_key"),
            ({"key": "1gb"}, InvalidMeterKey, "invalid_meter_key"),
            ({"key": "a" * 64}, InvalidMeterKey, "invalid_meter_key"),
            ({"key": "gb-used"}, InvalidMeterKey, "invalid_meter_key"),
            ({"event_types": []}, InvalidEventTypes, "invalid_event_types"),
            ({"event_types": ["a", "a"]}, InvalidEventTypes, "invalid_event_types"),
            ({"event_types": ["has space"]}, InvalidEventTypes, "invalid_event_types"),
            (
                {"event_types": [f"t{i}" for i in range(21)]},
                InvalidEventTypes,
                "invalid_event_types",
            ),
            ({"value_property": None}, ValuePropertyRequired, "value_property_required"),
            (
                {"aggregation": "weighted_sum", "value_property": None},
                ValuePropertyRequired,
                "value_property_required",
            ),
            ({"aggregation": "count"}, ValuePropertyNotAllowed, "value_property_not_allowed"),
            ({"value_property": "a..b"}, InvalidPropertyPath, "invalid_property_path"),
            ({"value_property": ".a"}, InvalidPropertyPath, "invalid_property_path"),
            ({"value_property": "a b"}, InvalidPropertyPath, "invalid_property_path"),
            ({"value_property": ".".join("a" * 9)}, InvalidPropertyPath, "invalid_property_path"),
            (
                {"operation_property": "op"},
                OperationPropertyNotAllowed,
                "operation_property_not_allowed",
            ),
            (
                {"aggregation": "unique_count", "operation_property": "a..b"},
                InvalidPropertyPath,
                "invalid_property_path",
            ),
            ({"carry_over": True}, CarryOverNotSupported, "carry_over_not_supported"),
            (
                {"aggregation": "count", "value_property": None, "carry_over": True},
                CarryOverNotSupported,
                "carry_over_not_supported",
            ),
            (
                {"aggregation": "unique_count", "carry_over": True},
                CarryOverNotSupported,
                "carry_over_not_supported",
            ),
            ({"group_by": ["region", "region"]}, InvalidGroupBy, "invalid_group_by"),
            (
                {"group_by": [f"d{i}" for i in range(MAX_GROUP_BY + 1)]},
                InvalidGroupBy,
                "invalid_group_by",
            ),
            ({"group_by": ["bad path"]}, InvalidPropertyPath, "invalid_property_path"),
            (
                {"filters": [{"property": "r", "operator": "in", "values": []}]},
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
            (
                {"filters": [{"property": "r", "operator": "not_in", "value": "eu"}]},
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
            (
                {"filters": [{"property": "r", "operator": "equals", "values": ["eu"]}]},
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
            (
                {"filters": [{"property": "r", "operator": "in", "values": ["eu", "eu"]}]},
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
            (
                {
                    "filters": [
                        {"property": "r", "operator": "in", "values": [str(i) for i in range(101)]}
                    ]
                },
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
            (
                {"filters": [{"property": "r.", "operator": "equals", "value": "eu"}]},
                InvalidPropertyPath,
                "invalid_property_path",
            ),
            (
                {
                    "filters": [
                        {"property": f"p{i}", "operator": "equals", "value": "x"} for i in range(21)
                    ]
                },
                InvalidMeterFilter,
                "invalid_meter_filter",
            ),
        ],
    )
    def test_rejects_each_broken_rule_with_its_own_error(
        self, overrides: dict[str, Any], error: type[BillingError], code: str
    ) -> None:
        with pytest.raises(error) as raised:
            meter(**overrides)
        assert raised.value.code == code
        assert raised.value.status == 422
        assert isinstance(raised.value, InvalidMeter)

    def test_parse_reports_malformed_fields_as_invalid_meter(self) -> None:
        with pytest.raises(InvalidMeter) as raised:
            MeterDefinition.parse({"key": "m", "name": "m", "event_types": "x", "extra": 1})
        assert type(raised.value) is InvalidMeter
        assert raised.value.code == "invalid_meter"
        locations = {tuple(error["loc"]) for error in raised.value.extensions["errors"]}
        assert ("aggregation",) in locations
        assert ("extra",) in locations

    def test_parse_raises_the_specific_error_of_a_broken_rule(self) -> None:
        with pytest.raises(ValuePropertyRequired):
            MeterDefinition.parse(
                {"key": "m", "name": "m", "event_types": ["t"], "aggregation": "max"}
            )

    def test_name_must_not_be_blank(self) -> None:
        with pytest.raises(ValidationError):
            meter(name="   ")

    def test_is_frozen(self) -> None:
        definition = meter()
        with pytest.raises(ValidationError):
            definition.key = "other"  # type: ignore[misc]

    def test_recurring_kinds(self) -> None:
        assert meter(aggregation="latest").is_recurring_kind
        assert meter(aggregation="weighted_sum").is_recurring_kind
        assert meter(aggregation="unique_count", operation_property="op").tracks_set
        assert not meter(aggregation="unique_count").is_recurring_kind
        assert not meter(aggregation="sum").is_recurring_kind

    def test_meters_by_key_refuses_two_meters_with_one_key(self) -> None:
        with pytest.raises(InvalidMeterKey):
            meters_by_key([meter(), meter(name="again")])


# -- UsageEvent -----------------------------------------------------------------------------


class TestUsageEvent:
    def test_keeps_the_timestamp_in_utc_at_millisecond_precision(self) -> None:
        paris = timezone(timedelta(hours=2))
        sent = datetime(2024, 5, 1, 14, 0, 0, 123_999, tzinfo=paris)
        assert event(timestamp=sent).timestamp == datetime(
            2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC
        )

    def test_parses_an_iso_timestamp(self) -> None:
        assert event(timestamp="2024-05-01T12:00:00.5Z").timestamp == T0.replace(
            microsecond=500_000
        )

    def test_refuses_a_naive_timestamp(self) -> None:
        with pytest.raises(ValidationError):
            event(timestamp=datetime(2024, 5, 1))

    @pytest.mark.parametrize(
        "timestamp",
        [datetime(1969, 12, 31, 23, 59, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)],
    )
    def test_refuses_a_timestamp_the_store_cannot_hold(self, timestamp: datetime) -> None:
        with pytest.raises(InvalidEventTimestamp) as raised:
            event(timestamp=timestamp)
        assert raised.value.code == "invalid_event_timestamp"

    def test_refuses_unknown_fields_and_empty_ids(self) -> None:
        with pytest.raises(ValidationError):
            event(unexpected=True)
        with pytest.raises(ValidationError):
            event(id="")


# -- reading properties ---------------------------------------------------------------------


class TestExtractValue:
    @pytest.mark.parametrize(
        ("properties", "path", "expected"),
        [
            ({"a": 5}, "a", Decimal(5)),
            ({"a": {"b": {"c": "x"}}}, "a.b.c", "x"),
            ({"a": Decimal("1.25")}, "a", Decimal("1.25")),
            ({"a": True}, "a", "true"),
            ({"a": False}, "a", "false"),
            ({"a": None}, "a", None),
            ({}, "a", None),
            ({"a": "x"}, "a.b", None),
            ({"a": {"b": 1}}, "a.c", None),
            ({"a.b": 1}, "a.b", None),
        ],
    )
    def test_reads_a_scalar(
        self, properties: dict[str, Any], path: str, expected: Decimal | str | None
    ) -> None:
        assert extract_value(properties, path) == expected

    @pytest.mark.parametrize(
        "value", [1.5, {"nested": 1}, [1, 2], Decimal("NaN"), Decimal("Infinity")]
    )
    def test_refuses_what_is_not_an_exact_scalar(self, value: object) -> None:
        with pytest.raises(InvalidEventValue) as raised:
            extract_value({"a": value}, "a")
        assert raised.value.code == "invalid_event_value"
        assert isinstance(raised.value, InvalidEvent)

    def test_the_float_error_says_how_to_parse_json(self) -> None:
        with pytest.raises(InvalidEventValue, match="parse_float=Decimal"):
            extract_value({"a": 0.1}, "a")


class TestNumericValue:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (3, Decimal(3)),
            ("3", Decimal(3)),
            (" -2.5 ", Decimal("-2.5")),
            ("1e3", Decimal(1000)),
            (Decimal("0.000000000001"), Decimal("0.000000000001")),
            ("1.5000000000000000", Decimal("1.5")),
            (
                "99999999999999999999999999.999999999999",
                Decimal("99999999999999999999999999.999999999999"),
            ),
        ],
    )
    def test_reads_a_number(self, raw: object, expected: Decimal) -> None:
        assert numeric_value({"n": raw}, "n") == expected

    @pytest.mark.parametrize(
        "raw", ["abc", "", "true", "NaN", "-Infinity", "0.0000000000001", "1e26", True]
    )
    def test_refuses_what_is_not_a_storable_number(self, raw: object) -> None:
        with pytest.raises(InvalidEventValue):
            numeric_value({"n": raw}, "n")

    def test_missing_is_none(self) -> None:
        assert numeric_value({}, "n") is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("5"), "5"),
        (Decimal("5.000"), "5"),
        (Decimal("-0"), "0"),
        (Decimal("1E+30"), "1000000000000000000000000000000"),
        (Decimal("0.10"), "0.1"),
        (Decimal("1234567890123456789012345678.5"), "1234567890123456789012345678.5"),
        ("eu", "eu"),
        (None, None),
    ],
)
def test_canonical_text(value: Decimal | str | None, text: str | None) -> None:
    assert canonical_text(value) == text


# -- matching -------------------------------------------------------------------------------


class TestMatches:
    def test_the_event_type_must_be_one_of_the_meters(self) -> None:
        definition = meter(event_types=["a", "b"])
        assert matches(definition, event(type="b"))
        assert not matches(definition, event(type="c"))

    @pytest.mark.parametrize(
        ("condition", "properties", "expected"),
        [
            ({"operator": "equals", "value": "eu"}, {"region": "eu"}, True),
            ({"operator": "equals", "value": "eu"}, {"region": "us"}, False),
            ({"operator": "equals", "value": "eu"}, {}, False),
            ({"operator": "equals", "value": "200"}, {"region": 200}, True),
            ({"operator": "equals", "value": "200"}, {"region": Decimal("200.0")}, True),
            ({"operator": "equals", "value": "true"}, {"region": True}, True),
            ({"operator": "in", "values": ["eu", "us"]}, {"region": "us"}, True),
            ({"operator": "in", "values": ["eu", "us"]}, {"region": "ap"}, False),
            ({"operator": "in", "values": ["eu", "us"]}, {}, False),
            ({"operator": "not_in", "values": ["eu"]}, {"region": "us"}, True),
            ({"operator": "not_in", "values": ["eu"]}, {"region": "eu"}, False),
            ({"operator": "not_in", "values": ["eu"]}, {}, True),
            ({"operator": "not_in", "values": ["eu"]}, {"region": None}, True),
        ],
    )
    def test_filters(
        self, condition: dict[str, Any], properties: dict[str, Any], expected: bool
    ) -> None:
        definition = meter(filters=[{"property": "region", **condition}])
        assert matches(definition, event({"gb": 1, **properties})) is expected

    def test_every_filter_must_pass(self) -> None:
        definition = meter(
            filters=[
                {"property": "region", "operator": "equals", "value": "eu"},
                {"property": "tier", "operator": "not_in", "values": ["free"]},
            ]
        )
        assert matches(definition, event({"region": "eu", "tier": "pro"}))
        assert not matches(definition, event({"region": "eu", "tier": "free"}))

    def test_a_filter_on_a_float_property_refuses_the_event(self) -> None:
        definition = meter(filters=[{"property": "x", "operator": "equals", "value": "1"}])
        with pytest.raises(InvalidEventValue):
            matches(definition, event({"x": 1.0}))


def test_group_values_follow_the_group_by_order() -> None:
    definition = meter(group_by=["tier", "resource.region", "missing"])
    properties = {"resource": {"region": "eu"}, "tier": 2, "gb": 1}
    assert group_values(definition, event(properties)) == ("2", "eu", "")


# -- measure --------------------------------------------------------------------------------


class TestMeasure:
    def test_count_reads_one(self) -> None:
        reading = measure(meter(aggregation="count", value_property=None), event({}))
        assert reading == MeteredEvent("storage_gb", "cus_1", "evt_1", T0, (), Decimal(1))

    def test_a_numeric_meter_reads_the_value(self) -> None:
        reading = measure(meter(group_by=["r"]), event({"gb": "2.50", "r": "eu"}))
        assert reading is not None
        assert (reading.value, reading.group, reading.item) == (Decimal("2.50"), ("eu",), "")

    def test_an_event_the_meter_does_not_count_reads_nothing(self) -> None:
        assert measure(meter(), event(type="other")) is None

    @pytest.mark.parametrize("aggregation", ["sum", "max", "min", "latest", "weighted_sum"])
    def test_a_missing_value_is_an_error(self, aggregation: str) -> None:
        with pytest.raises(MissingEventValue) as raised:
            measure(meter(aggregation=aggregation), event({"other": 1}))
        assert raised.value.code == "missing_event_value"
        assert raised.value.extensions == {"event_id": "evt_1", "meter": "storage_gb"}

    def test_unique_count_reads_the_item_as_text(self) -> None:
        definition = meter(aggregation="unique_count", value_property="user")
        reading = measure(definition, event({"user": 42}))
        assert reading is not None
        assert (reading.item, reading.value, reading.operation) == ("42", Decimal(0), None)
        with pytest.raises(MissingEventValue):
            measure(definition, event({}))

    def test_a_set_meter_reads_the_operation(self) -> None:
        definition = meter(
            aggregation="unique_count", value_property="user", operation_property="op"
        )
        reading = measure(definition, event({"user": "ann", "op": "remove"}))
        assert reading is not None
        assert reading.operation is SetOperation.REMOVE

    @pytest.mark.parametrize("operation", [None, "delete", "ADD", 1])
    def test_a_set_event_needs_add_or_remove(self, operation: object) -> None:
        definition = meter(
            aggregation="unique_count", value_property="user", operation_property="op"
        )
        with pytest.raises(InvalidSetOperation) as raised:
            measure(definition, event({"user": "ann", "op": operation}))
        assert raised.value.code == "invalid_set_operation"

    def test_measure_all_reads_the_event_with_each_meter_that_counts_it(self) -> None:
        readings = measure_all(
            [
                meter(key="a"),
                meter(key="b", aggregation="count", value_property=None),
                meter(key="c", event_types=["other"]),
            ],
            event(),
        )
        assert [(reading.meter, reading.value) for reading in readings] == [
            ("a", Decimal(5)),
            ("b", Decimal(1)),
        ]

    def test_aggregation_is_an_enum(self) -> None:
        assert meter(aggregation="unique_count").aggregation is Aggregation.UNIQUE_COUNT
