from __future__ import annotations

import html
import re

from pydantic import BaseModel, ConfigDict, Field

from billing_gateway.docs import constraints, render_docs, type_label
from billing_gateway.openapi import build_openapi
from billing_gateway.routes import ROUTES, RouteSpec

PAGE = render_docs(build_openapi(ROUTES))


class TestPage:
    def test_shows_every_operation_with_its_summary(self) -> None:
        for spec in ROUTES:
            assert f"<code>{spec.path}</code>" in PAGE
            assert f'<span class="method {spec.method.lower()}">{spec.method}</span>' in PAGE
            assert html.escape(spec.summary) in PAGE

    def test_shows_parameters_bodies_and_schemas(self) -> None:
        assert "<h4>Parameters</h4>" in PAGE
        assert "<code>starting_after</code>" in PAGE
        assert "Idempotency-Key" in PAGE
        assert "<h4>Request body" in PAGE
        for name in ("CustomerCreate", "Customer", "CustomerList", "AuditEventList", "Problem"):
            assert f'id="schema-{name}"' in PAGE

    def test_is_self_contained(self) -> None:
        assert "<script" not in PAGE
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", PAGE)
        assert "@import" not in PAGE

    def test_internal_links_have_targets(self) -> None:
        anchors = set(re.findall(r'id="([^"]+)"', PAGE))
        for target in re.findall(r'href="#([^"]+)"', PAGE):
            assert target in anchors


class TestEscaping:
    def test_text_from_the_document_is_escaped(self) -> None:
        class Evil(BaseModel):
            model_config = ConfigDict(extra="forbid")
            name: str = Field(description="<script>alert(1)</script>")

        spec = RouteSpec(
            "POST",
            "/v1/evil",
            service="customers",
            summary="<img src=x onerror=alert(1)>",
            request_model=Evil,
            query_model=None,
            response_model=Evil,
        )
        page = render_docs(build_openapi([spec]))
        assert "<script>" not in page
        assert "<img" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "Other fields are rejected." in page


class TestLabels:
    def test_type_labels(self) -> None:
        assert type_label({"type": "string", "format": "date-time"}) == "string (date-time)"
        assert type_label({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string | null"
        assert type_label({"type": "array", "items": {"$ref": "#/components/schemas/X"}}) == (
            'array of <a href="#schema-X">X</a>'
        )
        assert type_label({"type": "object", "additionalProperties": {"type": "string"}}) == (
            "map of string"
        )
        assert type_label({}) == "any"

    def test_constraints(self) -> None:
        schema = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
        assert constraints(schema) == ["≥ 1", "≤ 100", "default `20`"]
        assert constraints({"anyOf": [{"type": "string", "pattern": "^a$"}], "default": None}) == [
            "pattern `^a$`"
        ]
