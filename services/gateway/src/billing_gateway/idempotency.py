"""`Idempotency-Key`: a retried POST returns the first response instead of acting twice.

Per tenant and key, Redis holds either an in-progress marker (set with NX, 60 s)
or, once the first request finished, its status, content type and body (24 h),
always with the request's fingerprint (method, path, SHA-256 of the body):

- same key, same fingerprint, finished: the stored response, with
  `Idempotent-Replayed: true`;
- same key, same fingerprint, still running: 409 `idempotent_request_in_progress`;
- same key, another fingerprint: 409 `idempotency_key_reused`.

A 5xx is not stored: the marker is released so that the client may retry.
Without Redis there is no guarantee to give, so a request carrying a key gets
503 (fail closed), unlike rate limiting.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billing_common.errors import (
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidRequest,
    ServiceUnavailable,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IN_PROGRESS_SECONDS = 60
RESULT_SECONDS = 24 * 60 * 60
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")

# Set the marker unless the key exists; return what exists (nil when we set it).
_BEGIN_LUA = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return false
"""

# Replace our own marker (ARGV[1]) by ARGV[2] for ARGV[3] seconds, or delete it when
# ARGV[2] is empty; a marker that is no longer ours is left alone.
_FINISH_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
"""


class InvalidIdempotencyKey(InvalidRequest):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"


def parse_idempotency_key(value: str | None) -> str | None:
    """The key of an `Idempotency-Key` header (None when absent): 1 to 255 printable ASCII."""
    if value is None:
        return None
    if not _KEY.match(value):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same" for a key: `POST /v1/customers <sha256 of body>`."""
    return f"{method.upper()} {path} {hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class Claim:
    """This request holds the key: finish it with `complete` or `release`."""

    redis_key: str
    marker: str
    fingerprint: str


def redis_key(tenant_id: str, key: str) -> str:
    return f"gateway:idempotency:{tenant_id}:{key}"


def in_progress_record(fingerprint: str) -> str:
    """A marker unique to one request, so only that request may finish it."""
    return json.dumps(
        {"state": "in_progress", "fingerprint": fingerprint, "token": secrets.token_hex(8)}
    )


def completed_record(fingerprint: str, response: StoredResponse) -> str:
    return json.dumps(
        {
            "state": "completed",
            "fingerprint": fingerprint,
            "status": response.status,
            "content_type": response.content_type,
            "body": base64.b64encode(response.body).decode("ascii"),
        }
    )


def replay_or_conflict(existing: str, fingerprint: str) -> StoredResponse:
    """What a request finds when its key is taken: the stored response, or a 409."""
    record: dict[str, Any] = json.loads(existing)
    if record.get("fingerprint") != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request "
            "(method, path or body); use a new key for a new request"
        )
    if record.get("state") != "completed":
        raise IdempotentRequestInProgress(
            "a request with this Idempotency-Key is still being processed; retry shortly"
        )
    return StoredResponse(
        status=int(record["status"]),
        content_type=record.get("content_type"),
        body=base64.b64decode(record["body"]),
    )


class IdempotencyStore:
    """The Redis side of idempotency: claim a key, then complete or release it."""

    def __init__(
        self,
        redis: Redis,
        *,
        in_progress_seconds: int = IN_PROGRESS_SECONDS,
        result_seconds: int = RESULT_SECONDS,
    ) -> None:
        self._begin = redis.register_script(_BEGIN_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._in_progress_seconds = in_progress_seconds
        self._result_seconds = result_seconds

    async def begin(self, tenant_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        """Claim `key` for this request, or return the response stored for it.

        Raises 409 problems for a reused or in-progress key, 503 when Redis fails.
        """
        claim = Claim(redis_key(tenant_id, key), in_progress_record(fingerprint), fingerprint)
        try:
            existing: Any = await self._begin(
                keys=[claim.redis_key], args=[claim.marker, self._in_progress_seconds]
            )
        except (RedisError, OSError) as exc:
            logger.warning("idempotency store unreachable: %s", exc)
            raise ServiceUnavailable(
                "requests with an Idempotency-Key cannot be served right now; retry shortly"
            ) from exc
        if existing is None:
            return claim
        text = existing.decode() if isinstance(existing, bytes) else str(existing)
        return replay_or_conflict(text, fingerprint)

    async def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Store the response of the claimed request (a 5xx releases the key instead)."""
        if response.status >= 500:
            await self.release(claim)
            return
        record = completed_record(claim.fingerprint, response)
        await self._run_finish(claim, record)

    async def release(self, claim: Claim) -> None:
        """Give the key up without a result, so that a retry runs the request again."""
        await self._run_finish(claim, "")

    async def _run_finish(self, claim: Claim, record: str) -> None:
        try:
            await self._finish(
                keys=[claim.redis_key], args=[claim.marker, record, self._result_seconds]
            )
        except (RedisError, OSError) as exc:
            # The response still goes out; the marker expires by itself.
            logger.error("could not finish idempotency key %s: %s", claim.redis_key, exc)
