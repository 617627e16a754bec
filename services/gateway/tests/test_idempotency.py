from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from billing_common.errors import (
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidRequest,
    ServiceUnavailable,
)
from billing_gateway.idempotency import (
    Claim,
    IdempotencyStore,
    StoredResponse,
    completed_record,
    in_progress_record,
    parse_idempotency_key,
    redis_key,
    replay_or_conflict,
    request_fingerprint,
)

TENANT = "ten_01M8ARBC0TE1AAMP4XN1DBV6A6"
FINGERPRINT = request_fingerprint("POST", "/v1/customers", b'{"name": "a"}')
CREATED = StoredResponse(status=201, content_type="application/json", body=b'{"id": "cus_1"}')


class TestParseKey:
    @pytest.mark.parametrize("key", ["a", "k" * 255, "order 17/retry:2", "~!@#$%^&*()"])
    def test_accepts_1_to_255_printable_characters(self, key: str) -> None:
        assert parse_idempotency_key(key) == key

    def test_absent_is_none(self) -> None:
        assert parse_idempotency_key(None) is None

    @pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "é", "new\nline"])
    def test_refuses_anything_else_with_400(self, key: str) -> None:
        with pytest.raises(InvalidRequest) as raised:
            parse_idempotency_key(key)
        assert raised.value.status == 400
        assert raised.value.code == "invalid_idempotency_key"


class TestFingerprint:
    def test_is_method_path_and_body_hash(self) -> None:
        fingerprint = request_fingerprint("post", "/v1/customers", b"{}")
        assert fingerprint == (
            "POST /v1/customers 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        )

    def test_differs_when_any_part_differs(self) -> None:
        base = request_fingerprint("POST", "/v1/customers", b"{}")
        assert request_fingerprint("PUT", "/v1/customers", b"{}") != base
        assert request_fingerprint("POST", "/v1/meters", b"{}") != base
        assert request_fingerprint("POST", "/v1/customers", b"{ }") != base


class TestReplayOrConflict:
    def test_a_completed_request_is_replayed(self) -> None:
        stored = completed_record(FINGERPRINT, CREATED)
        assert replay_or_conflict(stored, FINGERPRINT) == CREATED

    def test_another_fingerprint_is_a_reused_key(self) -> None:
        stored = completed_record(FINGERPRINT, CREATED)
        other = request_fingerprint("POST", "/v1/customers", b"{}")
        with pytest.raises(IdempotencyKeyReused):
            replay_or_conflict(stored, other)
        with pytest.raises(IdempotencyKeyReused):
            replay_or_conflict(in_progress_record(FINGERPRINT), other)

    def test_a_running_request_is_in_progress(self) -> None:
        with pytest.raises(IdempotentRequestInProgress):
            replay_or_conflict(in_progress_record(FINGERPRINT), FINGERPRINT)

    def test_markers_are_unique_per_request(self) -> None:
        assert in_progress_record(FINGERPRINT) != in_progress_record(FINGERPRINT)
        assert json.loads(in_progress_record(FINGERPRINT))["fingerprint"] == FINGERPRINT


class TestStore:
    async def test_claims_then_replays_what_was_stored(self, redis: Redis) -> None:
        store = IdempotencyStore(redis)
        claim = await store.begin(TENANT, "k1", FINGERPRINT)
        assert isinstance(claim, Claim)
        assert 0 < await redis.ttl(redis_key(TENANT, "k1")) <= 60
        with pytest.raises(IdempotentRequestInProgress):
            await store.begin(TENANT, "k1", FINGERPRINT)
        await store.complete(claim, CREATED)
        assert await store.begin(TENANT, "k1", FINGERPRINT) == CREATED
        assert 60 < await redis.ttl(redis_key(TENANT, "k1")) <= 24 * 3600

    async def test_a_key_is_scoped_to_its_tenant(self, redis: Redis) -> None:
        store = IdempotencyStore(redis)
        assert isinstance(await store.begin(TENANT, "k1", FINGERPRINT), Claim)
        other_tenant = "ten_01M8ARBC0TE1AAMP4XN1DBV6A7"
        assert isinstance(await store.begin(other_tenant, "k1", FINGERPRINT), Claim)

    async def test_a_reused_key_conflicts(self, redis: Redis) -> None:
        store = IdempotencyStore(redis)
        claim = await store.begin(TENANT, "k1", FINGERPRINT)
        assert isinstance(claim, Claim)
        await store.complete(claim, CREATED)
        with pytest.raises(IdempotencyKeyReused):
            await store.begin(TENANT, "k1", request_fingerprint("POST", "/v1/customers", b"{}"))

    async def test_a_server_error_releases_the_key(self, redis: Redis) -> None:
        store = IdempotencyStore(redis)
        claim = await store.begin(TENANT, "k1", FINGERPRINT)
        assert isinstance(claim, Claim)
        await store.complete(claim, StoredResponse(503, "application/problem+json", b"{}"))
        assert await redis.exists(redis_key(TENANT, "k1")) == 0
        assert isinstance(await store.begin(TENANT, "k1", FINGERPRINT), Claim)

    async def test_only_the_claimant_finishes_its_marker(self, redis: Redis) -> None:
        store = IdempotencyStore(redis)
        claim = await store.begin(TENANT, "k1", FINGERPRINT)
        assert isinstance(claim, Claim)
        stranger = Claim(claim.redis_key, in_progress_record(FINGERPRINT), FINGERPRINT)
        await store.release(stranger)
        await store.complete(stranger, CREATED)
        with pytest.raises(IdempotentRequestInProgress):
            await store.begin(TENANT, "k1", FINGERPRINT)

    async def test_fails_closed_without_redis(self, unreachable_redis: Redis) -> None:
        store = IdempotencyStore(unreachable_redis)
        with pytest.raises(ServiceUnavailable):
            await store.begin(TENANT, "k1", FINGERPRINT)
        # Finishing is best effort: the response has already been produced.
        await store.release(Claim(redis_key(TENANT, "k1"), "marker", FINGERPRINT))
