"""The upcoming invoice through the gateway: the pending base fee from invoicing and the
usage of the current period so far, rated by rating, with exact amounts."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_common.ids import CustomerId
from tests.e2e.billing import World, usd
from tests.e2e.support import Api, assert_problem, eventually

pytestmark = pytest.mark.e2e


def test_the_preview_holds_the_fee_and_the_usage_so_far(api: Api) -> None:
    world = World(api)
    world.setup()
    plan = world.plan("preview", "49", unit_price="0.0035")
    customer = world.customer("previewed")
    subscription = world.subscribe(customer, plan)
    world.send_calls(customer, 301, world.start + timedelta(seconds=1))

    def previewed() -> dict[str, Any]:
        response = api.client.get(f"/v1/customers/{customer['id']}/upcoming_invoice")
        assert response.status_code == 200, response.text
        preview: dict[str, Any] = json.loads(response.text, parse_float=Decimal)
        assert preview["total"] == usd("49"), preview  # the first period's fee, in advance
        # The period has begun for the gateway too, and metering answers with every call
        # (its store is read while its consumer may still be writing).
        assert [line["quantity"] for line in preview["usage_lines"]] == ["301"], preview
        return preview

    preview = eventually(previewed)
    assert preview["object"] == "upcoming_invoice"
    assert preview["customer_id"] == customer["id"]
    assert [line["kind"] for line in preview["lines"]] == ["base_fee"], preview["lines"]
    [line] = preview["usage_lines"]
    assert line["subscription_id"] == subscription["id"]
    assert (line["plan_id"], line["plan_version"]) == (plan, subscription["plan_version"])
    assert line["meter_key"] == world.calls_meter
    assert line["billing"] == "in_arrears"
    assert line["quantity"] == "301"
    assert line["unit_price"] == usd("0.0035")
    # 301 x 0.0035 = 1.0535, exact (the invoice rounds it to 1.05 when the period closes)
    assert line["amount"] == usd("1.0535")
    assert line["period_start"] == subscription["current_period_start"]
    assert line["period_end"] == subscription["current_period_end"]
    assert preview["usage_total"] == usd("1.0535")
    assert preview["total_with_usage"] == usd("50.0535")


def test_an_unknown_customer_is_invoicings_404(api: Api) -> None:
    response = api.client.get(f"/v1/customers/{CustomerId.new()}/upcoming_invoice")
    assert_problem(response, 404, "customer_not_found")
