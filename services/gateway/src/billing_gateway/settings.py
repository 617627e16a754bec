"""What the gateway reads from the environment, beside the `ServiceSettings` of every service.

Each upstream service is reached at `<NAME>_SERVICE_URL` (`CUSTOMERS_SERVICE_URL=
http://127.0.0.1:8101`); a route whose service has no URL answers 503.
`JWT_SECRET` unset means dashboard tokens are refused (API keys still work).
Usage ingestion (`POST /v1/events`) publishes to the `KAFKA_BOOTSTRAP` of the
service settings, within `GATEWAY_PUBLISH_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing_common.http import DEFAULT_MAX_BODY_BYTES


def _service_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return url


class GatewaySettings(BaseSettings):
    """The gateway's own settings; field names are the environment variables, lower case."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 key of dashboard tokens; unset refuses every JWT"
    )
    gateway_rate_limit_per_second: float = Field(default=100, gt=0)
    gateway_rate_limit_burst: int = Field(default=200, ge=1)
    gateway_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    gateway_upstream_timeout_seconds: float = Field(default=10, gt=0)
    gateway_max_events_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        description="Largest `POST /v1/events` body: room for 1,000 events of ~2 KiB each",
    )
    gateway_publish_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="How long `POST /v1/events` waits for Kafka to acknowledge before a 503",
    )
    gateway_public_url: str | None = Field(
        default=None, description="The `servers` URL of the OpenAPI document; '/' when unset"
    )

    # One per service that owns routes (`RouteSpec.service`); see `service_url`.
    customers_service_url: str | None = None
    metering_service_url: str | None = None
    pricing_service_url: str | None = None
    rating_service_url: str | None = None
    subscriptions_service_url: str | None = None
    engine_service_url: str | None = None
    invoicing_service_url: str | None = None
    contracts_service_url: str | None = None
    ledger_service_url: str | None = None
    wallet_service_url: str | None = None
    payments_service_url: str | None = None
    dunning_service_url: str | None = None
    spend_alerts_service_url: str | None = None
    notifications_service_url: str | None = None
    audit_service_url: str | None = None
    reporting_service_url: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _normalise_urls(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name is not None and info.field_name.endswith("_service_url"):
            return _service_url(value if isinstance(value, str) else None)
        return value

    @staticmethod
    def service_field(service: str) -> str:
        """The settings field of `service`: "spend-alerts" reads `spend_alerts_service_url`."""
        return f"{service.replace('-', '_')}_service_url"

    def service_url(self, service: str) -> str | None:
        """The base URL of `service` (no trailing slash), or None when not configured."""
        value = getattr(self, self.service_field(service), None)
        return value if isinstance(value, str) else None
