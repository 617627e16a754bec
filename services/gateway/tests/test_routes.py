from __future__ import annotations

import pytest
from pydantic import BaseModel

from billing_gateway.routes import ROUTES, RouteSpec
from billing_gateway.settings import GatewaySettings


class Thing(BaseModel):
    id: str


class TestRouteTable:
    def test_each_method_and_path_appears_once(self) -> None:
        keys = [(spec.method, spec.path) for spec in ROUTES]
        assert len(keys) == len(set(keys))

    def test_every_post_honours_idempotency_keys(self) -> None:
        for spec in ROUTES:
            assert spec.idempotent == (spec.method == "POST"), spec.path

    def test_every_service_has_a_url_setting(self) -> None:
        for spec in ROUTES:
            assert GatewaySettings.service_field(spec.service) in GatewaySettings.model_fields

    def test_the_route_table(self) -> None:
        assert [(spec.method, spec.path, spec.success_status) for spec in ROUTES] == [
            ("POST", "/v1/customers", 201),
            ("GET", "/v1/customers", 200),
            ("GET", "/v1/customers/{customer_id}", 200),
            ("PATCH", "/v1/customers/{customer_id}", 200),
            ("GET", "/v1/customers/{customer_id}/children", 200),
            ("POST", "/v1/meters", 201),
            ("GET", "/v1/meters", 200),
            ("GET", "/v1/meters/{key}", 200),
            ("PATCH", "/v1/meters/{key}", 200),
            ("DELETE", "/v1/meters/{key}", 200),
            ("GET", "/v1/meters/{key}/usage", 200),
            ("GET", "/v1/customers/{customer_id}/usage", 200),
            ("POST", "/v1/products", 201),
            ("GET", "/v1/products", 200),
            ("GET", "/v1/products/{product_id}", 200),
            ("POST", "/v1/plans", 201),
            ("GET", "/v1/plans", 200),
            ("GET", "/v1/plans/{plan_id}", 200),
            ("POST", "/v1/plans/{plan_id}/versions", 201),
            ("GET", "/v1/plans/{plan_id}/versions/{version}", 200),
            ("POST", "/v1/plans/{plan_id}/migrations", 201),
            ("GET", "/v1/plans/{plan_id}/migrations", 200),
            ("POST", "/v1/plans/{plan_id}/overrides", 201),
            ("GET", "/v1/plans/{plan_id}/overrides", 200),
            ("POST", "/v1/coupons", 201),
            ("GET", "/v1/coupons", 200),
            ("GET", "/v1/coupons/{coupon_id}", 200),
            ("POST", "/v1/rating/preview", 200),
            ("POST", "/v1/subscriptions", 201),
            ("GET", "/v1/subscriptions", 200),
            ("GET", "/v1/subscriptions/{subscription_id}", 200),
            ("POST", "/v1/subscriptions/{subscription_id}/cancel", 200),
            ("POST", "/v1/subscriptions/{subscription_id}/pause", 200),
            ("POST", "/v1/subscriptions/{subscription_id}/resume", 200),
            ("POST", "/v1/subscriptions/{subscription_id}/change_plan", 200),
            ("GET", "/v1/subscription_policy", 200),
            ("PUT", "/v1/subscription_policy", 200),
            ("POST", "/v1/test_clocks", 201),
            ("GET", "/v1/test_clocks", 200),
            ("GET", "/v1/test_clocks/{test_clock_id}", 200),
            ("POST", "/v1/test_clocks/{test_clock_id}/customers", 200),
            ("POST", "/v1/test_clocks/{test_clock_id}/advance", 200),
            ("GET", "/v1/billing_runs", 200),
            ("GET", "/v1/billing_runs/{saga_id}", 200),
            ("GET", "/v1/invoices", 200),
            ("GET", "/v1/invoices/{invoice_id}", 200),
            ("POST", "/v1/invoices/{invoice_id}/finalize", 200),
            ("POST", "/v1/invoices/{invoice_id}/void", 200),
            ("POST", "/v1/invoices/{invoice_id}/lines", 201),
            ("GET", "/v1/invoices/{invoice_id}/pdf", 200),
            ("GET", "/v1/invoices/{invoice_id}/html", 200),
            ("GET", "/v1/tax_rates", 200),
            ("PUT", "/v1/tax_rates", 200),
            ("POST", "/v1/credit_notes", 201),
            ("GET", "/v1/credit_notes", 200),
            ("GET", "/v1/ledger/accounts", 200),
            ("GET", "/v1/ledger/accounts/{account_id}", 200),
            ("GET", "/v1/ledger/accounts/{account_id}/balance", 200),
            ("GET", "/v1/ledger/trial_balance", 200),
            ("GET", "/v1/customers/{customer_id}/balance", 200),
            ("GET", "/v1/audit_events", 200),
        ]


class TestRouteSpec:
    def _spec(self, method: str = "GET", path: str = "/v1/things/{thing_id}") -> RouteSpec:
        return RouteSpec(
            method,  # type: ignore[arg-type]
            path,
            service="customers",
            summary="A thing",
            request_model=None,
            query_model=None,
            response_model=Thing,
        )

    def test_path_parameters_and_operation_id(self) -> None:
        spec = self._spec(path="/v1/things/{thing_id}/parts/{part_id}")
        assert spec.path_params == ["thing_id", "part_id"]
        assert spec.operation_id == "get_v1_things_thing_id_parts_part_id"

    @pytest.mark.parametrize(
        "path", ["/things", "/v1", "/v1/", "/v1/Things", "/v1/things/", "/v1/{Thing}", "v1/x"]
    )
    def test_paths_are_v1_snake_case(self, path: str) -> None:
        with pytest.raises(ValueError, match="/v1"):
            self._spec(path=path)

    def test_a_get_takes_no_body(self) -> None:
        with pytest.raises(ValueError, match="body"):
            RouteSpec(
                "GET",
                "/v1/things",
                service="customers",
                summary="x",
                request_model=Thing,
                query_model=None,
                response_model=Thing,
            )
