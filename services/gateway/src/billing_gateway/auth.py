"""Who is calling: API keys (`sk_live_…`, `sk_test_…`) and dashboard JWTs (HS256).

Both arrive as `Authorization: Bearer <credential>`. An API key is stored only
as its SHA-256, looked up by that hash and compared in constant time; found keys
are cached in-process for `cache_seconds` (a revoked key stops working within
that time). A JWT is verified here with the standard library: `alg` must be
HS256, the signature must match, `exp` is required and checked against the
clock, and the `tenant` claim names the tenant.

The pure functions (`generate_api_key`, `hash_api_key`, `encode_jwt`,
`verify_jwt`) do no I/O and take the time as a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from billing_common.errors import InvalidId, Unauthenticated
from billing_common.ids import ApiKeyId, TenantId

LIVE_PREFIX = "sk_live_"
TEST_PREFIX = "sk_test_"
_API_KEY = re.compile(r"^sk_(live|test)_[A-Za-z0-9_-]{43}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
DISPLAY_PREFIX_LENGTH = 12
"""How much of a key `key_prefix` keeps: "sk_test_" and 4 random characters."""

CredentialKind = Literal["api_key", "jwt"]


# -- API keys --------------------------------------------------------------------------------
def generate_api_key(*, live: bool = False) -> str:
    """A new key: the mode prefix and 32 random bytes, base64url (43 characters)."""
    return (LIVE_PREFIX if live else TEST_PREFIX) + secrets.token_urlsafe(32)


def is_api_key(value: str) -> bool:
    """Whether `value` has the shape of a key this gateway issues."""
    return _API_KEY.match(value) is not None


def hash_api_key(key: str) -> str:
    """The SHA-256 of `key` in hex: what the `api_keys` table stores instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The start of `key` that may be shown to identify it: `sk_test_AbCd`."""
    return key[:DISPLAY_PREFIX_LENGTH]


@dataclass(frozen=True)
class ApiKeyRecord:
    """A row of `api_keys`: never the key itself."""

    id: str
    tenant_id: str
    name: str
    key_hash: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


def api_key_record(key: str, *, tenant_id: str, name: str, created_at: datetime) -> ApiKeyRecord:
    """The row to store for a new `key` (a fresh `key_…` id; the key itself is not kept)."""
    return ApiKeyRecord(
        id=ApiKeyId.new(),
        tenant_id=tenant_id,
        name=name,
        key_hash=hash_api_key(key),
        key_prefix=display_prefix(key),
        created_at=created_at,
    )


class ApiKeyStore(Protocol):
    """Where API keys are found by hash (PostgreSQL in `repository.PostgresApiKeyStore`)."""

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        """The key whose SHA-256 is `key_hash`, revoked or not; None when there is none."""
        ...


# -- JWT -------------------------------------------------------------------------------------
def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _json_object(segment: str) -> dict[str, Any]:
    value = json.loads(_b64url_decode(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def encode_jwt(claims: Mapping[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT of `claims` (how the dashboard's tokens are made)."""
    header = _b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url_encode(signature)}"


@dataclass(frozen=True)
class DashboardToken:
    """What a verified dashboard JWT says."""

    tenant_id: TenantId
    subject: str | None
    expires_at: float


def verify_jwt(token: str, secret: bytes, *, now: datetime) -> DashboardToken:
    """Verify an HS256 `token` at instant `now`; raise `Unauthenticated` saying why not.

    Only HS256 is accepted (never `none`, never another algorithm); `exp` is
    required, `nbf` is honoured when present, `tenant` must be a `TenantId`.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthenticated("malformed token: expected three dot-separated parts")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header = _json_object(header_b64)
        signature = _b64url_decode(signature_b64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthenticated("malformed token") from exc
    if header.get("alg") != "HS256":
        raise Unauthenticated("unsupported token algorithm: only HS256 is accepted")
    if "crit" in header:
        raise Unauthenticated("unsupported token: critical header extensions")
    expected = hmac.new(
        secret, f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, signature):
        raise Unauthenticated("invalid token signature")
    try:
        claims = _json_object(payload_b64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthenticated("malformed token claims") from exc
    instant = now.timestamp()
    expires_at = claims.get("exp")
    if not _numeric(expires_at):
        raise Unauthenticated("token has no numeric exp claim")
    assert isinstance(expires_at, int | float)
    if instant >= expires_at:
        raise Unauthenticated("token has expired")
    not_before = claims.get("nbf")
    if not_before is not None and (not _numeric(not_before) or instant < not_before):
        raise Unauthenticated("token is not valid yet")
    tenant = claims.get("tenant")
    if not isinstance(tenant, str):
        raise Unauthenticated("token has no tenant claim")
    try:
        tenant_id = TenantId.parse(tenant)
    except InvalidId as exc:
        raise Unauthenticated(f"token tenant claim is invalid: {exc.detail}") from exc
    subject = claims.get("sub")
    return DashboardToken(
        tenant_id=tenant_id,
        subject=subject if isinstance(subject, str) else None,
        expires_at=float(expires_at),
    )


# -- the request's principal -----------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its tenant and the credential it used."""

    tenant_id: TenantId
    kind: CredentialKind
    subject: str
    """The API key id (`key_…`), or the JWT `sub` (`dashboard` when it has none)."""

    @property
    def rate_limit_key(self) -> str:
        """One token bucket per API key; per tenant and user for the dashboard."""
        if self.kind == "api_key":
            return f"api_key:{self.subject}"
        return f"jwt:{self.tenant_id}:{self.subject}"


def bearer_credential(authorization: str | None) -> str:
    """The credential of an `Authorization: Bearer …` header; `Unauthenticated` if absent."""
    if not authorization:
        raise Unauthenticated(
            "missing credentials: send `Authorization: Bearer <API key or dashboard token>`"
        )
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("the Authorization header must be `Bearer <credential>`")
    return credential


class Authenticator:
    """Turns an `Authorization` header into a `Principal`, or raises `Unauthenticated`."""

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        jwt_secret: SecretStr | None,
        clock: Callable[[], datetime],
        cache_seconds: float = 30.0,
        max_cached: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        secret = jwt_secret.get_secret_value().encode() if jwt_secret is not None else b""
        self._jwt_secret = secret or None
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._max_cached = max_cached
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKeyRecord, float]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        credential = bearer_credential(authorization)
        if credential.startswith("sk_"):
            return await self._api_key(credential)
        return self._jwt(credential)

    async def _api_key(self, key: str) -> Principal:
        if not is_api_key(key):
            raise Unauthenticated("invalid API key")
        key_hash = hash_api_key(key)
        record = self._cached(key_hash)
        if record is None:
            record = await self._store.find(key_hash)
            if record is None or record.revoked_at is not None:
                raise Unauthenticated("invalid API key: unknown or revoked")
            self._remember(record)
        if not hmac.compare_digest(record.key_hash, key_hash):
            raise Unauthenticated("invalid API key")
        return Principal(tenant_id=TenantId(record.tenant_id), kind="api_key", subject=record.id)

    def _jwt(self, token: str) -> Principal:
        if self._jwt_secret is None:
            raise Unauthenticated("dashboard tokens are not accepted here: use an API key")
        verified = verify_jwt(token, self._jwt_secret, now=self._clock())
        return Principal(
            tenant_id=verified.tenant_id, kind="jwt", subject=verified.subject or "dashboard"
        )

    def _cached(self, key_hash: str) -> ApiKeyRecord | None:
        entry = self._cache.get(key_hash)
        if entry is None:
            return None
        record, expires = entry
        if self._monotonic() >= expires:
            del self._cache[key_hash]
            return None
        return record

    def _remember(self, record: ApiKeyRecord) -> None:
        if len(self._cache) >= self._max_cached:
            self._cache.clear()  # crude but bounded; a miss costs one indexed lookup
        self._cache[record.key_hash] = (record, self._monotonic() + self._cache_seconds)
