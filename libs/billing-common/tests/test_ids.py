from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from billing_common.errors import InvalidId
from billing_common.ids import (
    CustomerId,
    InvoiceId,
    decode_base32,
    encode_base32,
    uuid7,
    uuid7_time_ms,
)


class TestUuid7:
    def test_version_and_variant(self) -> None:
        value = uuid7()
        assert value.version == 7
        assert value.variant == uuid.RFC_4122

    def test_strictly_increasing_within_a_process(self) -> None:
        values = [uuid7() for _ in range(10_000)]
        assert values == sorted(values)
        assert len(set(values)) == len(values)

    def test_embeds_the_time(self) -> None:
        import time

        before = time.time_ns() // 1_000_000
        value = uuid7()
        after = time.time_ns() // 1_000_000
        assert before <= uuid7_time_ms(value) <= after + 1


class TestBase32:
    @given(st.integers(min_value=0, max_value=2**128 - 1))
    def test_round_trip(self, n: int) -> None:
        value = uuid.UUID(int=n)
        assert decode_base32(encode_base32(value)) == value

    @given(
        st.integers(min_value=0, max_value=2**128 - 1),
        st.integers(min_value=0, max_value=2**128 - 1),
    )
    def test_order_preserving(self, a: int, b: int) -> None:
        assert (encode_base32(uuid.UUID(int=a)) < encode_base32(uuid.UUID(int=b))) == (a < b)

    def test_rejects_bad_digits_and_lengths(self) -> None:
        with pytest.raises(ValueError, match="Crockford"):
            decode_base32("U" * 26)
        with pytest.raises(ValueError, match="26 characters"):
            decode_base32("0" * 25)
        with pytest.raises(ValueError, match="128 bits"):
            decode_base32("Z" * 26)


class TestPrefixedId:
    def test_new_ids_carry_their_prefix_and_sort_by_creation(self) -> None:
        ids = [CustomerId.new() for _ in range(100)]
        assert all(i.startswith("cus_") and len(i) == 30 for i in ids)
        assert ids == sorted(ids)

    def test_parse_round_trip_and_canonical_case(self) -> None:
        original = CustomerId.new()
        assert CustomerId.parse(original) == original
        assert CustomerId.parse("cus_" + original[4:].lower()) == original
        assert CustomerId.parse(original).uuid.version == 7

    def test_parse_rejects_other_kinds_and_garbage(self) -> None:
        with pytest.raises(InvalidId, match="must start with 'cus_'"):
            CustomerId.parse(InvoiceId.new())
        with pytest.raises(InvalidId, match="not a valid CustomerId"):
            CustomerId.parse("cus_nope")
        v4 = "cus_" + encode_base32(uuid.uuid4())
        with pytest.raises(InvalidId, match="not a UUIDv7"):
            CustomerId.parse(v4)

    def test_pydantic_validates_and_serializes(self) -> None:
        class Model(BaseModel):
            customer: CustomerId

        cid = CustomerId.new()
        model = Model.model_validate({"customer": cid})
        assert isinstance(model.customer, CustomerId)
        assert model.model_dump(mode="json") == {"customer": cid}
        with pytest.raises(ValidationError):
            Model.model_validate({"customer": InvoiceId.new()})
