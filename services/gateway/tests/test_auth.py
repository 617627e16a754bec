from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from billing_common.errors import Unauthenticated
from billing_common.ids import ApiKeyId, TenantId
from billing_gateway.auth import (
    ApiKeyRecord,
    Authenticator,
    Principal,
    api_key_record,
    bearer_credential,
    display_prefix,
    encode_jwt,
    generate_api_key,
    hash_api_key,
    is_api_key,
    verify_jwt,
)

SECRET = b"dashboard-secret"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TENANT = TenantId.new()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header: dict[str, Any], claims: dict[str, Any], secret: bytes = SECRET) -> str:
    """A token built by hand, so tests can forge what `encode_jwt` never makes."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "tenant": str(TENANT),
        "sub": "user_1",
        "exp": (NOW + timedelta(minutes=5)).timestamp(),
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


class TestVerifyJwt:
    def test_a_valid_token_names_its_tenant_and_subject(self) -> None:
        verified = verify_jwt(encode_jwt(_claims(), SECRET), SECRET, now=NOW)
        assert verified.tenant_id == TENANT
        assert isinstance(verified.tenant_id, TenantId)
        assert verified.subject == "user_1"

    def test_an_expired_token_is_refused(self) -> None:
        token = encode_jwt(_claims(exp=NOW.timestamp()), SECRET)
        with pytest.raises(Unauthenticated, match="expired"):
            verify_jwt(token, SECRET, now=NOW)
        # One second earlier, the same token is fine: the clock is the parameter.
        verify_jwt(token, SECRET, now=NOW - timedelta(seconds=1))

    def test_a_token_without_exp_is_refused(self) -> None:
        with pytest.raises(Unauthenticated, match="exp"):
            verify_jwt(encode_jwt(_claims(exp=None), SECRET), SECRET, now=NOW)
        with pytest.raises(Unauthenticated, match="exp"):
            verify_jwt(encode_jwt(_claims(exp="tomorrow"), SECRET), SECRET, now=NOW)

    def test_a_token_not_valid_yet_is_refused(self) -> None:
        token = encode_jwt(_claims(nbf=(NOW + timedelta(minutes=1)).timestamp()), SECRET)
        with pytest.raises(Unauthenticated, match="not valid yet"):
            verify_jwt(token, SECRET, now=NOW)

    def test_a_bad_signature_is_refused(self) -> None:
        with pytest.raises(Unauthenticated, match="signature"):
            verify_jwt(encode_jwt(_claims(), b"another-secret"), SECRET, now=NOW)

    def test_tampered_claims_are_refused(self) -> None:
        header, _, signature = encode_jwt(_claims(), SECRET).split(".")
        forged = _b64(json.dumps(_claims(tenant=str(TenantId.new()))).encode())
        with pytest.raises(Unauthenticated, match="signature"):
            verify_jwt(f"{header}.{forged}.{signature}", SECRET, now=NOW)

    @pytest.mark.parametrize("alg", ["none", "HS512", "RS256", "hs256", None])
    def test_only_hs256_is_accepted(self, alg: str | None) -> None:
        token = _token({"alg": alg, "typ": "JWT"}, _claims())
        with pytest.raises(Unauthenticated, match="algorithm"):
            verify_jwt(token, SECRET, now=NOW)

    def test_an_unsigned_token_is_refused(self) -> None:
        header = _b64(json.dumps({"alg": "none"}).encode())
        payload = _b64(json.dumps(_claims()).encode())
        with pytest.raises(Unauthenticated):
            verify_jwt(f"{header}.{payload}.", SECRET, now=NOW)

    def test_a_token_without_tenant_is_refused(self) -> None:
        with pytest.raises(Unauthenticated, match="tenant"):
            verify_jwt(encode_jwt(_claims(tenant=None), SECRET), SECRET, now=NOW)

    def test_a_tenant_that_is_not_a_tenant_id_is_refused(self) -> None:
        with pytest.raises(Unauthenticated, match="tenant"):
            verify_jwt(encode_jwt(_claims(tenant="cus_123"), SECRET), SECRET, now=NOW)

    @pytest.mark.parametrize(
        "token", ["", "abc", "a.b", "a.b.c.d", "!!.e30.sig", "e30.e30.@@@", "WzFd.e30.c2ln"]
    )
    def test_malformed_tokens_are_refused(self, token: str) -> None:
        with pytest.raises(Unauthenticated):
            verify_jwt(token, SECRET, now=NOW)

    def test_claims_that_are_not_an_object_are_refused(self) -> None:
        header = _b64(json.dumps({"alg": "HS256"}).encode())
        payload = _b64(b"[1, 2]")
        signature = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        with pytest.raises(Unauthenticated, match="malformed"):
            verify_jwt(f"{header}.{payload}.{_b64(signature)}", SECRET, now=NOW)

    def test_critical_extensions_are_refused(self) -> None:
        token = _token({"alg": "HS256", "crit": ["b64"]}, _claims())
        with pytest.raises(Unauthenticated, match="critical"):
            verify_jwt(token, SECRET, now=NOW)


class TestApiKeys:
    def test_generated_keys_have_the_mode_prefix_and_32_random_bytes(self) -> None:
        test_key, live_key = generate_api_key(), generate_api_key(live=True)
        assert test_key.startswith("sk_test_")
        assert live_key.startswith("sk_live_")
        body = test_key.removeprefix("sk_test_")
        assert len(base64.urlsafe_b64decode(body + "=")) == 32
        assert is_api_key(test_key)
        assert is_api_key(live_key)
        assert generate_api_key() != generate_api_key()

    @pytest.mark.parametrize(
        "value",
        ["", "sk_test_", "sk_prod_" + "a" * 43, "sk_test_" + "a" * 42, "sk_test_" + "!" * 43],
    )
    def test_other_shapes_are_not_keys(self, value: str) -> None:
        assert not is_api_key(value)

    def test_a_key_is_stored_as_its_sha256(self) -> None:
        key = "sk_test_" + "A" * 43
        assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
        assert len(hash_api_key(key)) == 64
        assert display_prefix(key) == "sk_test_AAAA"

    def test_a_record_keeps_the_hash_and_prefix_but_not_the_key(self) -> None:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=TENANT, name="ci", created_at=NOW)
        assert ApiKeyId.parse(record.id) == record.id
        assert record.key_hash == hash_api_key(key)
        assert record.key_prefix == key[:12]
        assert key not in repr(record)


class TestBearerCredential:
    @pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "BEARER   abc  "])
    def test_reads_the_credential(self, header: str) -> None:
        assert bearer_credential(header) == "abc"

    @pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "abc"])
    def test_anything_else_is_unauthenticated(self, header: str | None) -> None:
        with pytest.raises(Unauthenticated):
            bearer_credential(header)


class CountingStore:
    def __init__(self, *records: ApiKeyRecord) -> None:
        self.records = {record.key_hash: record for record in records}
        self.lookups = 0

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        self.lookups += 1
        return self.records.get(key_hash)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestAuthenticator:
    def _authenticator(
        self, store: CountingStore, monotonic: FakeMonotonic | None = None
    ) -> Authenticator:
        return Authenticator(
            store,
            jwt_secret=SecretStr(SECRET.decode()),
            clock=lambda: NOW,
            monotonic=monotonic or FakeMonotonic(),
        )

    async def test_an_api_key_authenticates_its_tenant(self) -> None:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=TENANT, name="ci", created_at=NOW)
        principal = await self._authenticator(CountingStore(record)).authenticate(f"Bearer {key}")
        assert principal == Principal(tenant_id=TENANT, kind="api_key", subject=record.id)
        assert principal.rate_limit_key == f"api_key:{record.id}"

    async def test_found_keys_are_cached_for_30_seconds(self) -> None:
        key = generate_api_key()
        store = CountingStore(api_key_record(key, tenant_id=TENANT, name="ci", created_at=NOW))
        monotonic = FakeMonotonic()
        authenticator = self._authenticator(store, monotonic)
        await authenticator.authenticate(f"Bearer {key}")
        monotonic.now += 29
        await authenticator.authenticate(f"Bearer {key}")
        assert store.lookups == 1
        monotonic.now += 2
        await authenticator.authenticate(f"Bearer {key}")
        assert store.lookups == 2

    async def test_unknown_keys_are_not_cached(self) -> None:
        store = CountingStore()
        authenticator = self._authenticator(store)
        key = generate_api_key()
        for _ in range(2):
            with pytest.raises(Unauthenticated, match="unknown or revoked"):
                await authenticator.authenticate(f"Bearer {key}")
        assert store.lookups == 2

    async def test_a_revoked_key_is_refused(self) -> None:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=TENANT, name="ci", created_at=NOW)
        revoked = ApiKeyRecord(**{**record.__dict__, "revoked_at": NOW})
        with pytest.raises(Unauthenticated, match="revoked"):
            await self._authenticator(CountingStore(revoked)).authenticate(f"Bearer {key}")

    async def test_a_malformed_key_is_refused_without_a_lookup(self) -> None:
        store = CountingStore()
        with pytest.raises(Unauthenticated, match="invalid API key"):
            await self._authenticator(store).authenticate("Bearer sk_test_short")
        assert store.lookups == 0

    async def test_a_dashboard_token_authenticates_its_tenant(self) -> None:
        token = encode_jwt(_claims(), SECRET)
        principal = await self._authenticator(CountingStore()).authenticate(f"Bearer {token}")
        assert principal == Principal(tenant_id=TENANT, kind="jwt", subject="user_1")
        assert principal.rate_limit_key == f"jwt:{TENANT}:user_1"

    async def test_tokens_are_refused_when_no_secret_is_configured(self) -> None:
        authenticator = Authenticator(CountingStore(), jwt_secret=None, clock=lambda: NOW)
        with pytest.raises(Unauthenticated, match="not accepted"):
            await authenticator.authenticate(f"Bearer {encode_jwt(_claims(), SECRET)}")
        empty = Authenticator(CountingStore(), jwt_secret=SecretStr(""), clock=lambda: NOW)
        with pytest.raises(Unauthenticated, match="not accepted"):
            await empty.authenticate(f"Bearer {encode_jwt(_claims(), b'')}")
