from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from billing_common.ids import CustomerId, PlanId
from billing_subscriptions.schemas import SubscriptionCreate
from billing_subscriptions.service import start_instant

CUSTOMER, PLAN = CustomerId.new(), PlanId.new()
NOW = datetime(2026, 4, 11, 10, 0, tzinfo=UTC)


def start_of(value: Any) -> Any:
    return SubscriptionCreate.model_validate(
        {"customer_id": CUSTOMER, "plan_id": PLAN, "start": value}
    ).start


class TestStart:
    def test_now_is_the_default(self) -> None:
        assert SubscriptionCreate(customer_id=CUSTOMER, plan_id=PLAN).start == "now"

    def test_a_date_is_a_date_and_an_instant_an_instant(self) -> None:
        assert start_of("2026-05-15") == date(2026, 5, 15)
        assert start_of("2026-05-15T00:00:00Z") == datetime(2026, 5, 15, tzinfo=UTC)
        plus_two = timezone(timedelta(hours=2))
        assert start_of("2026-05-15T00:00:00+02:00") == datetime(2026, 5, 15, tzinfo=plus_two)

    @pytest.mark.parametrize("value", ["2026-05-15T10:00:00", "tomorrow", ""])
    def test_a_naive_instant_or_anything_else_is_refused(self, value: Any) -> None:
        with pytest.raises(ValidationError):
            start_of(value)

    def test_what_each_start_means(self) -> None:
        assert start_instant("now", "Europe/Paris", NOW) == NOW
        assert start_instant(date(2026, 1, 15), "Europe/Paris", NOW) == datetime(
            2026, 1, 14, 23, 0, tzinfo=UTC
        )
        instant = datetime(2026, 5, 1, 12, tzinfo=UTC)
        assert start_instant(instant, "Europe/Paris", NOW) == instant
