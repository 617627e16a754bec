"""The public contract of the gateway: OpenAPI, docs, problem+json errors, health, metrics."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing_common.ids import CustomerId
from billing_gateway.openapi import GATEWAY_OPERATIONS
from billing_gateway.routes import ROUTES
from billing_local.platform import GATEWAY, SERVICES, RunningPlatform
from tests.e2e.support import Api, assert_problem, new_customer_body

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def test_openapi_is_3_1_and_lists_every_route(gateway: httpx.Client) -> None:
    response = gateway.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"]), document["openapi"]
    assert document["info"]["title"]

    listed = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert listed == {(spec.method, spec.path) for spec in ROUTES} | set(GATEWAY_OPERATIONS)
    assert all(path.startswith("/v1/") for _, path in listed)

    schemes = document["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http"}
    for spec in ROUTES:
        operation = document["paths"][spec.path][spec.method.lower()]
        assert operation["operationId"] == spec.operation_id
        responses = operation["responses"]
        assert str(spec.success_status) in responses, spec
        assert "401" in responses, spec
        for name in spec.path_params:
            assert {"name": name, "in": "path"}.items() <= next(
                p for p in operation["parameters"] if p["name"] == name
            ).items()


def test_every_documented_operation_is_routed(gateway: httpx.Client, api: Api) -> None:
    """What /openapi.json lists, the gateway serves (no route miss, no 5xx)."""
    document = gateway.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method in item:
            url = re.sub(r"{[a-z_]+}", "x", path)
            payload: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
            response = api.client.request(method.upper(), url, json=payload)
            assert response.status_code < 500, (method, url, response.text)
            if response.status_code >= 400:
                problem = assert_problem(response, response.status_code, response.json()["code"])
                assert problem["code"] not in ("not_found", "method_not_allowed"), (method, url)


def test_docs_is_html_naming_every_route(gateway: httpx.Client) -> None:
    response = gateway.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.lstrip().lower().startswith("<!doctype html")
    for spec in ROUTES:
        assert html.escape(f"{spec.method} {spec.path}") in page, spec
        assert html.escape(spec.summary) in page, spec


# -- bad input: always a 4xx problem, never a 5xx ------------------------------------------
KEY = "the session's API key"


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    code: str
    content: bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    authorization: str | None = KEY
    """KEY, None (no header) or the literal header value."""
    error_field: str | None = None
    """With validation_failed: a field that `errors` must name."""


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def valid(**overrides: Any) -> bytes:
    return json.dumps(new_customer_body(**overrides)).encode()


def chunks() -> Iterator[bytes]:
    """A little over 1 MiB, streamed without a Content-Length."""
    for _ in range(17):
        yield b" " * 65536


BAD_INPUT = [
    pytest.param(
        Bad("POST", "/v1/customers", 400, "malformed_body", b'{"name": '), id="malformed-json"
    ),
    pytest.param(Bad("POST", "/v1/customers", 400, "malformed_body", b""), id="empty-body"),
    pytest.param(
        Bad("POST", "/v1/customers", 400, "malformed_body", b'{"name": "\xff"}'), id="invalid-utf8"
    ),
    pytest.param(
        Bad("POST", "/v1/customers", 400, "malformed_body", b"[" * 100_000 + b"]" * 100_000),
        id="deeply-nested-json",
    ),
    pytest.param(
        Bad("POST", "/v1/customers", 400, "malformed_body", b'{"name": ' + b"9" * 5000 + b"}"),
        id="integer-over-4300-digits",
    ),
    pytest.param(
        Bad("POST", "/v1/customers", 422, "validation_failed", b"[]", error_field="(body)"),
        id="json-array",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(external_id=5),
            error_field="external_id",
        ),
        id="wrong-type",
    ),
    pytest.param(
        Bad(
            "POST", "/v1/customers", 422, "validation_failed", valid(name=["a"]), error_field="name"
        ),
        id="wrong-type-list",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(plan="gold"),
            error_field="plan",
        ),
        id="unknown-field",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            body(name="n", currency="EUR"),
            error_field="external_id",
        ),
        id="missing-field",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(currency="EURO"),
            error_field="currency",
        ),
        id="bad-currency",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(timezone="Mars/Base"),
            error_field="timezone",
        ),
        id="bad-timezone",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(email="nobody"),
            error_field="email",
        ),
        id="bad-email",
    ),
    pytest.param(
        Bad("POST", "/v1/customers", 413, "payload_too_large", b" " * (MiB + 1) + valid()),
        id="oversized-body",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            415,
            "unsupported_media_type",
            valid(),
            content_type="text/plain",
        ),
        id="wrong-content-type",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            415,
            "unsupported_media_type",
            b"external_id=a&name=b",
            content_type="application/x-www-form-urlencoded",
        ),
        id="form-content-type",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            400,
            "invalid_idempotency_key",
            valid(),
            headers={"Idempotency-Key": "k" * 256},
        ),
        id="idempotency-key-too-long",
    ),
    pytest.param(Bad("GET", "/v1/nothing_here", 404, "not_found"), id="unknown-route"),
    pytest.param(Bad("GET", "/admin", 404, "not_found"), id="unknown-route-outside-v1"),
    pytest.param(Bad("DELETE", "/v1/customers", 405, "method_not_allowed"), id="wrong-method"),
    pytest.param(
        Bad("POST", "/v1/audit_events", 405, "method_not_allowed", valid()), id="wrong-method-post"
    ),
    pytest.param(
        Bad("DELETE", f"/v1/customers/{CustomerId.new()}", 405, "method_not_allowed"),
        id="wrong-method-delete",
    ),
    pytest.param(
        Bad("GET", "/v1/customers", 401, "unauthenticated", authorization=None),
        id="missing-api-key",
    ),
    pytest.param(
        Bad(
            "GET",
            "/v1/customers",
            401,
            "unauthenticated",
            authorization="Bearer sk_test_" + "x" * 43,
        ),
        id="invalid-api-key",
    ),
    pytest.param(
        Bad("POST", "/v1/customers", 401, "unauthenticated", valid(), authorization="Bearer nope"),
        id="garbage-api-key",
    ),
    pytest.param(
        Bad("GET", "/v1/audit_events", 401, "unauthenticated", authorization="Basic dTpw"),
        id="not-bearer",
    ),
    pytest.param(
        Bad("GET", "/v1/customers?limit=abc", 422, "validation_failed", error_field="limit"),
        id="query-wrong-type",
    ),
    pytest.param(
        Bad("GET", "/v1/customers?limit=1000", 422, "validation_failed", error_field="limit"),
        id="query-out-of-range",
    ),
    pytest.param(
        Bad("GET", "/v1/audit_events?colour=red", 422, "validation_failed", error_field="colour"),
        id="query-unknown-parameter",
    ),
    pytest.param(Bad("GET", "/v1/customers/cus_123", 422, "invalid_id"), id="invalid-id"),
    pytest.param(Bad("GET", "/v1/customers/inv_123", 422, "invalid_id"), id="id-of-another-kind"),
    pytest.param(
        Bad("GET", f"/v1/customers/{CustomerId.new()}", 404, "customer_not_found"),
        id="unknown-customer",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/customers",
            422,
            "validation_failed",
            valid(name="a\u0000b"),
            error_field="name",
        ),
        id="nul-in-name",
    ),
    pytest.param(
        Bad(
            "GET",
            "/v1/customers?external_id=%00",
            422,
            "validation_failed",
            error_field="external_id",
        ),
        id="nul-in-customers-query",
    ),
    pytest.param(
        Bad("GET", "/v1/audit_events?subject=%00", 422, "validation_failed", error_field="subject"),
        id="nul-in-audit-query",
    ),
]


@pytest.mark.parametrize("bad", BAD_INPUT)
def test_bad_input_is_a_4xx_problem_never_a_5xx(
    bad: Bad, running: RunningPlatform, gateway: httpx.Client
) -> None:
    headers = dict(bad.headers)
    if bad.authorization == KEY:
        headers["Authorization"] = f"Bearer {running.api_key}"
    elif bad.authorization is not None:
        headers["Authorization"] = bad.authorization
    if bad.content is not None and bad.content_type is not None:
        headers["Content-Type"] = bad.content_type
    response = gateway.request(bad.method, bad.path, content=bad.content, headers=headers)

    assert "Traceback" not in response.text
    problem = assert_problem(response, bad.status, bad.code)
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if bad.error_field is not None:
        assert bad.error_field in {e["field"] for e in problem["errors"]}, problem


def test_oversized_streamed_body_is_refused(
    running: RunningPlatform, gateway: httpx.Client
) -> None:
    """Without a Content-Length the gateway counts what arrives and stops at 1 MiB."""
    response = gateway.post(
        "/v1/customers",
        content=chunks(),
        headers={"Authorization": f"Bearer {running.api_key}", "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


def test_duplicate_external_id_is_a_conflict(api: Api) -> None:
    body = new_customer_body()
    assert api.create_customer(body).status_code == 201
    assert_problem(api.create_customer(body), 409, "customer_external_id_taken")


# -- every service: health and metrics ------------------------------------------------------
@pytest.mark.parametrize("name", [*SERVICES, GATEWAY])
def test_service_answers_health_and_prometheus_metrics(name: str, running: RunningPlatform) -> None:
    base = running.gateway_url if name == GATEWAY else running.service_urls[name]
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["service"] == name
        assert health.json()["status"] == "ok"

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in metrics.text
        families = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert "billing_outbox_pending" in families, sorted(families)  # the platform's own
        if name == GATEWAY:
            assert "gateway_requests" in families, sorted(families)
