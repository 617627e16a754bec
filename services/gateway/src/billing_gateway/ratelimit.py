"""Rate limits: one token bucket per API key, in Redis, refilled by elapsed time.

A bucket holds up to `burst` tokens and refills at `rate_per_second`; each
request takes one. The whole read-refill-take step is one Lua script, so
gateway replicas share buckets without races, and time comes from Redis
(`TIME`), so replicas with skewed clocks agree. When Redis is unreachable the
limiter lets requests through (and logs it): a rate limit protects the
platform, it must not take it down.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billing_common.errors import RateLimited

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket; ARGV: rate per second, burst, cost. Returns {allowed, tokens left
# (floored), milliseconds until `cost` tokens are available (0 when allowed)}.
BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now_ms
end
local elapsed = math.max(0, now_ms - at)
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, math.floor(tokens), wait_ms}
"""


@dataclass(frozen=True)
class RateLimitPolicy:
    rate_per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_ms: int


class RateLimitExceeded(RateLimited):
    """429 with the seconds to wait, which the gateway sends as `Retry-After`."""

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


def retry_after_seconds(retry_after_ms: int) -> int:
    """`Retry-After` is whole seconds: round up, and never say 0."""
    return max(1, math.ceil(retry_after_ms / 1000))


def bucket_key(principal_key: str) -> str:
    return f"gateway:ratelimit:{principal_key}"


class TokenBucketLimiter:
    """Takes tokens from the Redis bucket of a caller."""

    def __init__(self, redis: Redis, policy: RateLimitPolicy) -> None:
        self._policy = policy
        self._script = redis.register_script(BUCKET_LUA)

    async def take(self, principal_key: str, cost: int = 1) -> RateDecision:
        """One step of the bucket of `principal_key`; raises `RedisError` when Redis does."""
        policy = self._policy
        result: Any = await self._script(
            keys=[bucket_key(principal_key)],
            args=[repr(float(policy.rate_per_second)), policy.burst, cost],
        )
        allowed, remaining, wait_ms = (int(value) for value in result)
        return RateDecision(allowed=allowed == 1, remaining=remaining, retry_after_ms=wait_ms)

    async def enforce(self, principal_key: str) -> RateDecision | None:
        """Raise `RateLimitExceeded` when the caller is over its limit.

        Fails open: None when Redis could not be asked.
        """
        try:
            decision = await self.take(principal_key)
        except (RedisError, OSError) as exc:
            logger.warning("rate limiting skipped, Redis is unreachable: %s", exc)
            return None
        if not decision.allowed:
            raise RateLimitExceeded(
                f"rate limit of {self._policy.rate_per_second:g} requests per second "
                f"(burst {self._policy.burst}) exceeded",
                retry_after_seconds=retry_after_seconds(decision.retry_after_ms),
            )
        return decision
