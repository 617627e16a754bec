"""Typed, prefixed identifiers on UUIDv7: `cus_01JD3Q...`.

The body is the UUIDv7 in Crockford base32 (26 characters), so ids sort by
creation time as strings and as UUIDs. Each kind of id is its own `str`
subclass: a function that wants a `CustomerId` does not accept an `InvoiceId`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, ClassVar, Self

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from billing_common.errors import InvalidId

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_CROCKFORD)}
_BODY_LEN = 26


class _UUIDv7Generator:
    """RFC 9562 UUIDv7 with a monotonic counter in `rand_a` within one millisecond.

    Ids made by one process are strictly increasing even when many are made in
    the same millisecond or the wall clock steps back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def new(self) -> uuid.UUID:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


_generator = _UUIDv7Generator()


def uuid7() -> uuid.UUID:
    """A new UUIDv7, greater than every one this process made before."""
    return _generator.new()


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix time in milliseconds embedded in a UUIDv7."""
    return value.int >> 80


def encode_base32(value: uuid.UUID) -> str:
    n = value.int
    chars = []
    for _ in range(_BODY_LEN):
        chars.append(_CROCKFORD[n & 0x1F])
        n >>= 5
    return "".join(reversed(chars))


def decode_base32(body: str) -> uuid.UUID:
    if len(body) != _BODY_LEN:
        raise ValueError(f"expected {_BODY_LEN} characters, got {len(body)}")
    n = 0
    for char in body.upper():
        digit = _DECODE.get(char)
        if digit is None:
            raise ValueError(f"{char!r} is not a Crockford base32 digit")
        n = (n << 5) | digit
    if n >> 128:
        raise ValueError("value does not fit in 128 bits")
    return uuid.UUID(int=n)


class PrefixedId(str):
    """Base of all typed ids. Subclasses set `prefix` (without the underscore)."""

    prefix: ClassVar[str] = ""
    __slots__ = ()

    @classmethod
    def new(cls) -> Self:
        return cls(f"{cls.prefix}_{encode_base32(uuid7())}")

    @classmethod
    def parse(cls, value: str) -> Self:
        """Validate `value` as an id of this kind; raise `InvalidId` otherwise."""
        expected = cls.prefix + "_"
        if not isinstance(value, str) or not value.startswith(expected):
            raise InvalidId(f"{value!r} is not a {cls.__name__}: it must start with {expected!r}")
        try:
            parsed = decode_base32(value[len(expected) :])
        except ValueError as exc:
            raise InvalidId(f"{value!r} is not a valid {cls.__name__}: {exc}") from exc
        if parsed.version != 7:
            raise InvalidId(f"{value!r} is not a valid {cls.__name__}: not a UUIDv7")
        return cls(expected + encode_base32(parsed))  # canonical: upper-case body

    @classmethod
    def from_uuid(cls, value: uuid.UUID) -> Self:
        return cls(f"{cls.prefix}_{encode_base32(value)}")

    @property
    def uuid(self) -> uuid.UUID:
        return decode_base32(self[len(self.prefix) + 1 :])

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: str) -> PrefixedId:
            try:
                return cls.parse(value)
            except InvalidId as exc:
                raise ValueError(exc.detail) from exc

        return core_schema.no_info_after_validator_function(
            validate,
            core_schema.str_schema(pattern=rf"^{cls.prefix}_[0-9A-Za-z]{{{_BODY_LEN}}}$"),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


class CustomerId(PrefixedId):
    prefix = "cus"


class SubscriptionId(PrefixedId):
    prefix = "sub"


class InvoiceId(PrefixedId):
    prefix = "inv"


class EventId(PrefixedId):
    prefix = "evt"


class MeterId(PrefixedId):
    prefix = "mtr"


class PlanId(PrefixedId):
    prefix = "plan"


class ProductId(PrefixedId):
    prefix = "prod"


class PriceId(PrefixedId):
    prefix = "price"


class CreditNoteId(PrefixedId):
    prefix = "cn"


class WalletId(PrefixedId):
    prefix = "wal"


class ContractId(PrefixedId):
    prefix = "ctr"


class PaymentId(PrefixedId):
    prefix = "pay"


class AlertId(PrefixedId):
    prefix = "alrt"


class WebhookEndpointId(PrefixedId):
    prefix = "we"


class AuditEventId(PrefixedId):
    prefix = "aud"


class TenantId(PrefixedId):
    prefix = "ten"


class ApiKeyId(PrefixedId):
    prefix = "key"


class TestClockId(PrefixedId):
    prefix = "clock"

    __test__ = False  # not a pytest test class
