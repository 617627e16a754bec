from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel

from billing_common.errors import (
    IdempotencyKeyReused,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from billing_common.http import PROBLEM_JSON
from billing_gateway.openapi import (
    ERROR_RESPONSES,
    GATEWAY_OPERATIONS,
    Problem,
    build_openapi,
    error_statuses,
)
from billing_gateway.routes import ROUTES, RouteSpec

DOCUMENT = build_openapi(ROUTES, server_url="https://api.bill.sh")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = DOCUMENT
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{pointer} does not resolve"
        assert part in node, f"{pointer} does not resolve"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _operation(spec: RouteSpec) -> dict[str, Any]:
    operation: dict[str, Any] = DOCUMENT["paths"][spec.path][spec.method.lower()]
    return operation


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


class TestDocumentShape:
    def test_is_openapi_3_1_with_info_servers_and_bearer_security(self) -> None:
        assert DOCUMENT["openapi"] == "3.1.0"
        assert DOCUMENT["info"]["title"]
        assert DOCUMENT["info"]["version"]
        assert DOCUMENT["servers"] == [{"url": "https://api.bill.sh"}]
        scheme = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
        assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
        assert DOCUMENT["security"] == [{"bearerAuth": []}]

    def test_every_ref_resolves(self) -> None:
        refs = _refs(DOCUMENT)
        assert refs
        for ref in refs:
            _resolve(ref)

    def test_every_schema_is_used(self) -> None:
        used = {ref.rsplit("/", 1)[1] for ref in _refs(DOCUMENT) if "/schemas/" in ref}
        assert set(DOCUMENT["components"]["schemas"]) == used

    def test_operations_are_well_formed(self) -> None:
        operation_ids = []
        for path, item in DOCUMENT["paths"].items():
            assert path.startswith("/")
            for method, operation in item.items():
                assert method in HTTP_METHODS
                assert operation["responses"]
                assert all(re.fullmatch(r"[1-5]\d\d|default", s) for s in operation["responses"])
                operation_ids.append(operation["operationId"])
                declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert declared == set(re.findall(r"{(\w+)}", path))
                for parameter in operation.get("parameters", []):
                    assert parameter["in"] in {"path", "query", "header", "cookie"}
                    assert "schema" in parameter
                    if parameter["in"] == "path":
                        assert parameter["required"] is True
        assert len(operation_ids) == len(set(operation_ids))


class TestRouteTableCoverage:
    def test_the_paths_are_exactly_the_route_table(self) -> None:
        documented = {
            (method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
        }
        routes = {(spec.method, spec.path) for spec in ROUTES}
        assert documented == routes | set(GATEWAY_OPERATIONS)
        assert not routes & set(GATEWAY_OPERATIONS)

    @pytest.mark.parametrize("spec", ROUTES, ids=lambda spec: f"{spec.method} {spec.path}")
    def test_each_route_has_its_schemas(self, spec: RouteSpec) -> None:
        operation = _operation(spec)
        assert operation["summary"] == spec.summary
        assert operation["tags"] == [spec.service]
        success = operation["responses"][str(spec.success_status)]
        if spec.response_media_type == "application/json":
            schema = _schema_ref(spec.response_model)
            assert success["content"]["application/json"]["schema"] == schema
        else:
            assert success["content"] == {spec.response_media_type: {"schema": {"type": "string"}}}
        if spec.request_model is None:
            assert "requestBody" not in operation
        else:
            body = operation["requestBody"]
            assert body["required"] is True
            assert body["content"]["application/json"]["schema"] == _schema_ref(spec.request_model)
        query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        fields = spec.query_model.model_fields.items() if spec.query_model else []
        expected = [field.alias or name for name, field in fields]
        assert query == expected
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert headers == (["Idempotency-Key"] if spec.idempotent else [])

    @pytest.mark.parametrize("spec", ROUTES, ids=lambda spec: f"{spec.method} {spec.path}")
    def test_each_route_documents_its_problems(self, spec: RouteSpec) -> None:
        responses = _operation(spec)["responses"]
        for status in error_statuses(spec):
            response = _resolve(responses[str(status)]["$ref"])
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema == _schema_ref(Problem)
        assert {"401", "429", "503"} <= set(responses)


class TestErrorStatuses:
    def test_the_problem_schema_has_the_rfc_9457_members_and_code(self) -> None:
        problem = DOCUMENT["components"]["schemas"]["Problem"]
        assert set(problem["properties"]) == {
            "type",
            "title",
            "status",
            "detail",
            "code",
            "instance",
            "errors",
        }

    def test_documented_statuses_cover_the_errors_raised(self) -> None:
        for error in (ValidationFailed, IdempotencyKeyReused, RateLimited, ServiceUnavailable):
            assert error.status in ERROR_RESPONSES

    def test_bodies_add_their_errors(self) -> None:
        create = next(spec for spec in ROUTES if spec.method == "POST")
        retrieve = next(spec for spec in ROUTES if spec.path_params)
        assert {400, 409, 413, 415, 422} <= set(error_statuses(create))
        assert 413 not in error_statuses(retrieve)
        assert 422 in error_statuses(retrieve)

    def test_retry_after_is_documented(self) -> None:
        headers = DOCUMENT["components"]["responses"]["RateLimited"]["headers"]
        assert "Retry-After" in headers
        unauthenticated = DOCUMENT["components"]["responses"]["Unauthenticated"]
        assert "WWW-Authenticate" in unauthenticated["headers"]


class TestNewRoutes:
    def test_a_route_added_to_the_table_appears_with_its_models(self) -> None:
        class WidgetCreate(BaseModel):
            size: int

        class Widget(BaseModel):
            id: str
            size: int

        spec = RouteSpec(
            "POST",
            "/v1/widgets/{widget_id}/resize",
            service="customers",
            summary="Resize a widget",
            request_model=WidgetCreate,
            query_model=None,
            response_model=Widget,
            idempotent=True,
        )
        document = build_openapi((*ROUTES, spec))
        operation = document["paths"]["/v1/widgets/{widget_id}/resize"]["post"]
        assert operation["operationId"] == "post_v1_widgets_widget_id_resize"
        assert {"WidgetCreate", "Widget"} <= set(document["components"]["schemas"])
