from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from billing_gateway.settings import GatewaySettings


class TestGatewaySettings:
    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("JWT_SECRET", raising=False)
        monkeypatch.delenv("CUSTOMERS_SERVICE_URL", raising=False)
        settings = GatewaySettings()
        assert settings.jwt_secret is None
        assert settings.gateway_rate_limit_per_second == 100
        assert settings.gateway_rate_limit_burst == 200
        assert settings.gateway_max_body_bytes == 1024 * 1024
        assert settings.gateway_upstream_timeout_seconds == 10
        assert settings.service_url("customers") is None

    def test_reads_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JWT_SECRET", "s3cret")
        monkeypatch.setenv("GATEWAY_RATE_LIMIT_PER_SECOND", "5")
        monkeypatch.setenv("CUSTOMERS_SERVICE_URL", "http://127.0.0.1:8101/")
        monkeypatch.setenv("SPEND_ALERTS_SERVICE_URL", "http://127.0.0.1:8113")
        settings = GatewaySettings()
        assert settings.jwt_secret == SecretStr("s3cret")
        assert "s3cret" not in repr(settings)
        assert settings.gateway_rate_limit_per_second == 5
        assert settings.service_url("customers") == "http://127.0.0.1:8101"
        assert settings.service_url("spend-alerts") == "http://127.0.0.1:8113"

    def test_an_empty_url_is_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AUDIT_SERVICE_URL", "")
        assert GatewaySettings().service_url("audit") is None

    def test_a_url_must_be_http(self) -> None:
        with pytest.raises(ValidationError, match="http"):
            GatewaySettings(customers_service_url="127.0.0.1:8101")

    def test_an_unknown_service_has_no_url(self) -> None:
        assert GatewaySettings().service_url("nothing") is None

    @pytest.mark.parametrize(
        "field",
        [
            "gateway_rate_limit_per_second",
            "gateway_rate_limit_burst",
            "gateway_max_body_bytes",
            "gateway_upstream_timeout_seconds",
        ],
    )
    def test_limits_must_be_positive(self, field: str) -> None:
        with pytest.raises(ValidationError):
            GatewaySettings.model_validate({field: 0})
