from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.exact_json import decimal_text, dumps


def loads(payload: bytes) -> Any:
    return json.loads(payload, parse_float=Decimal)


def same(left: Any, right: Any) -> bool:
    """Equal in value, in type and, for Decimals, in digits (`1.0` is not `1.00`)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, Decimal):
        return bool(left.as_tuple() == right.as_tuple())
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(left == right)


decimals = st.decimals(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | st.text() | decimals
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


class TestRoundTrip:
    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def test_any_json_value_comes_back_exactly(self, value: Any) -> None:
        assert same(loads(dumps(value)), value)

    @settings(max_examples=200, deadline=None)
    @given(decimals)
    def test_any_finite_decimal_keeps_its_digits(self, value: Decimal) -> None:
        back = loads(dumps([value]))[0]
        assert isinstance(back, Decimal)
        assert back.as_tuple() == value.as_tuple()

    @pytest.mark.parametrize(
        ("text", "written"),
        [
            ("0.1", b"0.1"),
            ("1E+2", b"1E+2"),
            ("1e2", b"1E+2"),
            ("123456789012345678.123456789012", b"123456789012345678.123456789012"),
            ("-0.000000001", b"-1E-9"),
            ("1.50", b"1.50"),
            ("10", b"10E0"),
            ("-0", b"-0E0"),
            ("1E-400", b"1E-400"),
        ],
    )
    def test_known_numbers(self, text: str, written: bytes) -> None:
        value = Decimal(text)
        payload = dumps({"v": value})
        assert payload == b'{"v":' + written + b"}"
        assert loads(payload)["v"].as_tuple() == value.as_tuple()

    def test_nested_decimals_and_other_values_together(self) -> None:
        value = {"a": [Decimal("0.1"), 1, True, None, 'é\n"', {"b": (Decimal("2.50"),)}]}
        assert dumps(value) == b'{"a":[0.1,1,true,null,"\\u00e9\\n\\"",{"b":[2.50]}]}'

    @pytest.mark.parametrize("with_decimal", [False, True])
    def test_a_lone_surrogate_is_escaped_not_an_encoding_error(self, with_decimal: bool) -> None:
        value: list[Any] = ["\ud800x"] + ([Decimal("1.0")] if with_decimal else [])
        payload = dumps(value)
        assert payload.startswith(b'["\\ud800x"')
        assert same(loads(payload), value)


class TestTypes:
    def test_without_decimals_the_output_matches_the_standard_library(self) -> None:
        value = {"n": 1, "s": "x", "l": [True, None], "t": ("a",)}
        assert dumps(value) == json.dumps(value, separators=(",", ":")).encode()

    @pytest.mark.parametrize("with_decimal", [False, True])
    def test_datetimes_and_uuids_are_strings(self, with_decimal: bool) -> None:
        at = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
        local = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        uid = UUID("0193e7e2-8c1a-7d2b-9a4e-0123456789ab")
        value: dict[str, Any] = {"at": at, "local": local, "id": uid}
        if with_decimal:
            value["d"] = Decimal("1.5")
        back = loads(dumps(value))
        assert back["at"] == "2025-03-01T12:00:00.123000+00:00"
        assert back["local"] == "2025-03-01T13:00:00+01:00"
        assert back["id"] == "0193e7e2-8c1a-7d2b-9a4e-0123456789ab"

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Inf")])
    def test_nan_and_infinity_are_refused(self, value: Decimal) -> None:
        with pytest.raises(ValueError, match="not a JSON number"):
            dumps({"v": [value]})
        with pytest.raises(ValueError, match="not a JSON number"):
            decimal_text(value)

    @pytest.mark.parametrize("value", [1.5, {"v": [0.1]}, {1: "a"}, {"s": {1, 2}}, b"x"])
    def test_floats_and_other_types_are_refused(self, value: object) -> None:
        with pytest.raises(TypeError):
            dumps(value)
        with pytest.raises(TypeError):
            dumps([Decimal("1.0"), value])
