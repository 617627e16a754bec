"""JSON that keeps numbers exact: a `Decimal` is written with its own digits, never a float's.

Read such JSON back with `json.loads(text, parse_float=Decimal)`: the value and its digits
come back as they were (`0.1`, `1E+2`, `123456789012345678.123456789012`).

>>> dumps({"calls": Decimal("0.1"), "at": datetime(2025, 3, 1, tzinfo=UTC)})
b'{"calls":0.1,"at":"2025-03-01T00:00:00+00:00"}'

Accepted: `str`, `int`, `bool`, `None`, `Decimal` (finite), `dict` with `str` keys,
`list`, `tuple`, `datetime` (ISO 8601) and `UUID` (its hex form). Anything else, a
`float` included, is a `TypeError`: a float has already lost the client's digits.
Non-ASCII text is escaped (`\\u00e9`), so the output is always valid UTF-8.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any
from uuid import UUID

__all__ = ["dumps"]


def dumps(obj: object) -> bytes:
    """`obj` as compact JSON (UTF-8), Decimals with their exact digits.

    Without a Decimal inside, the standard library's C encoder writes it; otherwise
    a small encoder of ours does. `ValueError` for a NaN or infinite Decimal,
    `TypeError` for a value of another type (floats included).
    """
    if not _holds_decimal(obj):
        return json.dumps(
            obj, default=_plain, ensure_ascii=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")
    parts: list[str] = []
    _write(obj, parts)
    return "".join(parts).encode("ascii")


def decimal_text(value: Decimal) -> str:
    """The JSON number text of `value`: its exact digits, read back as the same Decimal.

    `str(Decimal)` is already JSON number text (`0.1`, `1E+2`, `-0`); a Decimal that
    prints as a bare integer (`Decimal("10")`) gets `E0`, so that it is read back as a
    Decimal (with `parse_float=Decimal`) rather than as an int, sign of zero included.
    """
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    text = str(value)
    if "." in text or "E" in text:
        return text
    return text + "E0"


def _plain(value: object) -> str:
    """The `default` of the fast path: the two non-JSON types it may meet."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")  # pragma: no cover


def _holds_decimal(obj: object) -> bool:
    """Whether `obj` contains a Decimal; `TypeError` on anything `dumps` does not accept."""
    found = False
    stack: list[object] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bool, int, datetime, UUID)) or item is None:
            continue
        if isinstance(item, Decimal):
            found = True
        elif isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
                stack.append(value)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            raise TypeError(f"{type(item).__name__} is not JSON serializable (exactly)")
    return found


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(encode_basestring_ascii(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        parts.append(decimal_text(value))
    elif isinstance(value, dict):
        parts.append("{")
        for position, (key, item) in enumerate(value.items()):
            if position:
                parts.append(",")
            parts.append(encode_basestring_ascii(key))
            parts.append(":")
            _write(item, parts)
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for position, item in enumerate(value):
            if position:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:  # datetime, UUID: `_holds_decimal` let nothing else through
        parts.append(encode_basestring_ascii(_plain(value)))
