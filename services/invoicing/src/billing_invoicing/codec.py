"""Invoices and credit notes as JSON documents, exactly: how the repository stores them.

An invoice is kept whole (its inputs, its computed lines, discounts and dates), so a
finalized invoice reads back exactly as it was finalized, whatever the tax settings
are by then. The encoding follows the dataclasses' type hints:

- `Money` is `{"amount": "<pico-units>", "currency": "USD"}` (never a float);
- `Decimal` is its exact string, `datetime` ISO 8601 with its offset;
- enums are their values, typed ids (`CustomerId`...) their strings;
- tuples are lists, dataclasses objects of their fields, `None` is `null`.

>>> from billing_invoicing.domain import OneOffCharge
>>> charge = OneOffCharge("Setup", Money.parse("12.5", "USD"), Decimal("2"))
>>> decode(OneOffCharge, encode(charge)) == charge
True
"""

from __future__ import annotations

import dataclasses
import types
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from billing_common.currency import Currency
from billing_common.money import Money

__all__ = ["decode", "encode"]

T = TypeVar("T")


def encode(value: Any) -> Any:
    """`value` as JSON-ready data (see the module for the rules)."""
    if value is None or (isinstance(value, bool | int | str) and not isinstance(value, Enum)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency.code}
    if isinstance(value, Currency):
        return value.code
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"cannot store a naive datetime: {value!r}")
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    raise TypeError(f"cannot encode a {type(value).__name__}")


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return get_type_hints(cls)


def decode(hint: type[T], data: Any) -> T:
    """The value of type `hint` that `encode` wrote as `data`."""
    result: T = _decode(hint, data)
    return result


def _decode(hint: Any, data: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if data is None:
            return None
        if len(options) != 1:
            raise TypeError(f"cannot decode the union {hint}")
        return _decode(options[0], data)
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in data)
        return tuple(_decode(arg, item) for arg, item in zip(args, data, strict=True))
    if hint is Any:
        return data
    if not isinstance(hint, type):
        raise TypeError(f"cannot decode {hint}")
    if hint is Money:
        return Money(int(data["amount"]), Currency.of(data["currency"]))
    if hint is Currency:
        return Currency.of(data)
    if hint is Decimal:
        return Decimal(data)
    if hint is datetime:
        return datetime.fromisoformat(data)
    if issubclass(hint, Enum):
        return hint(data)
    if issubclass(hint, bool | int | str):
        return hint(data)
    if dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        kwargs = {
            f.name: _decode(hints[f.name], data[f.name])
            for f in dataclasses.fields(hint)
            if f.init and f.name in data
        }
        return hint(**kwargs)
    raise TypeError(f"cannot decode a {hint.__name__}")
