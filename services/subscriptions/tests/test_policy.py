from __future__ import annotations

import pytest
from pydantic import ValidationError

from billing_subscriptions.policy import (
    ChangeTiming,
    ProrationGranularity,
    SubscriptionPolicy,
    UpgradeRule,
)


def test_defaults() -> None:
    policy = SubscriptionPolicy()
    assert policy.prorate_first_calendar_period is True
    assert policy.proration_granularity is ProrationGranularity.DAYS
    assert policy.upgrade_rule is UpgradeRule.HIGHER_BASE_FEE
    assert policy.downgrade_timing is ChangeTiming.PERIOD_END
    assert policy.prorate_on_cancel is True


def test_round_trips_as_tenant_settings_json() -> None:
    policy = SubscriptionPolicy(
        proration_granularity=ProrationGranularity.SECONDS,
        upgrade_rule=UpgradeRule.ANY_PRICE_INCREASE,
        downgrade_timing=ChangeTiming.NOW,
    )
    stored = policy.model_dump_json()
    assert '"proration_granularity":"seconds"' in stored
    assert SubscriptionPolicy.model_validate_json(stored) == policy
    assert SubscriptionPolicy.model_validate({"downgrade_timing": "now"}).downgrade_timing is (
        ChangeTiming.NOW
    )


def test_unknown_settings_and_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        SubscriptionPolicy.model_validate({"prorate_everything": True})
    with pytest.raises(ValidationError):
        SubscriptionPolicy.model_validate({"proration_granularity": "hours"})


def test_is_immutable() -> None:
    policy = SubscriptionPolicy()
    with pytest.raises(ValidationError):
        policy.prorate_on_cancel = False  # type: ignore[misc]
