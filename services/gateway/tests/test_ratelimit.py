from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from billing_gateway.ratelimit import (
    RateLimitExceeded,
    RateLimitPolicy,
    TokenBucketLimiter,
    bucket_key,
    retry_after_seconds,
)


class TestPolicy:
    @pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0)])
    def test_needs_a_positive_rate_and_burst(self, rate: float, burst: int) -> None:
        with pytest.raises(ValueError, match="positive rate"):
            RateLimitPolicy(rate_per_second=rate, burst=burst)


class TestRetryAfter:
    @pytest.mark.parametrize(("ms", "seconds"), [(0, 1), (1, 1), (1000, 1), (1001, 2), (2500, 3)])
    def test_rounds_up_to_whole_seconds_and_never_says_zero(self, ms: int, seconds: int) -> None:
        assert retry_after_seconds(ms) == seconds


class TestTokenBucket:
    async def test_allows_the_burst_then_refuses(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=1, burst=3))
        decisions = [await limiter.take("key_a") for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
        assert 900 < decisions[3].retry_after_ms <= 1000

    async def test_refills_with_elapsed_time(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=50, burst=1))
        assert (await limiter.take("key_a")).allowed
        assert not (await limiter.take("key_a")).allowed
        await asyncio.sleep(0.05)  # 50/s: one token every 20 ms
        assert (await limiter.take("key_a")).allowed

    async def test_each_key_has_its_own_bucket(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=1, burst=1))
        assert (await limiter.take("key_a")).allowed
        assert (await limiter.take("key_b")).allowed
        assert not (await limiter.take("key_a")).allowed

    async def test_buckets_expire_once_they_would_be_full(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=10, burst=20))
        await limiter.take("key_a")
        ttl_ms = await redis.pttl(bucket_key("key_a"))
        assert 0 < ttl_ms <= 3000

    async def test_concurrent_requests_never_exceed_the_burst(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=0.001, burst=10))
        decisions = await asyncio.gather(*(limiter.take("key_a") for _ in range(50)))
        assert sum(d.allowed for d in decisions) == 10

    async def test_enforce_raises_with_retry_after(self, redis: Redis) -> None:
        limiter = TokenBucketLimiter(redis, RateLimitPolicy(rate_per_second=0.5, burst=1))
        assert await limiter.enforce("key_a") is not None
        with pytest.raises(RateLimitExceeded) as raised:
            await limiter.enforce("key_a")
        assert raised.value.status == 429
        assert raised.value.code == "rate_limited"
        assert raised.value.retry_after_seconds == 2

    async def test_enforce_fails_open_without_redis(
        self, unreachable_redis: Redis, caplog: pytest.LogCaptureFixture
    ) -> None:
        limiter = TokenBucketLimiter(unreachable_redis, RateLimitPolicy(rate_per_second=1, burst=1))
        for _ in range(3):
            assert await limiter.enforce("key_a") is None
        assert "rate limiting skipped" in caplog.text
