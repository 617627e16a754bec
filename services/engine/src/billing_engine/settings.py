"""The engine's own settings, from the environment (`ENGINE_*`), beside `ServiceSettings`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing_engine.domain import RetryPolicy


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGINE_", extra="ignore", frozen=True)

    scan_interval_ms: int = Field(
        default=500, ge=10, description="How often the billing clock looks for due work"
    )
    scan_batch_size: int = Field(default=500, ge=1, description="Work started per scan, at most")
    saga_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A period close not finished by then is re-emitted"
    )
    saga_max_attempts: int = Field(
        default=5, ge=1, description="Emissions of a period close before it is marked failed"
    )
    attach_customer_wait_ms: int = Field(
        default=2000,
        ge=0,
        description="How long attaching a customer the engine has not heard of yet waits "
        "for its customer_created event (a customer created a moment ago)",
    )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(timedelta(seconds=self.saga_timeout_seconds), self.saga_max_attempts)
