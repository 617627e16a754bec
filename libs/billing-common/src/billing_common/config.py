"""Settings read from the environment (ARCHITECTURE.md §5): every backend is a URL.

Secrets are `SecretStr` so they never print in logs or reprs.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service process reads at start."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/billing")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    clickhouse_url: str | None = None
    tigerbeetle_addresses: str | None = None
    stripe_api_base: str | None = None
    stripe_api_key: SecretStr = SecretStr("sk_test_local")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"

    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=5, ge=1)

    # Consumers: how many dead letters in a row stop a consumer (ARCHITECTURE.md §2).
    consumer_max_consecutive_dead_letters: int = Field(default=20, ge=1)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_retry_backoff_ms: int = Field(default=200, ge=0)

    # The outbox relay: off only in crash tests that need an unpublished, committed event.
    outbox_relay_enabled: bool = True
    outbox_poll_interval_ms: int = Field(default=100, ge=1)
    outbox_batch_size: int = Field(default=500, ge=1)

    # Retention of the plumbing tables, pruned every `prune_interval_seconds`.
    outbox_retention_hours: int = Field(default=24, ge=1)
    inbox_retention_days: int = Field(default=35, ge=1)
    prune_interval_seconds: int = Field(default=3600, ge=1)

    # Topic partitions created at start when a topic is missing.
    kafka_default_partitions: int = Field(default=3, ge=1)
