"""`POST /v1/events` in the OpenAPI document and on `/docs` (the gateway's own operation)."""

from __future__ import annotations

from typing import Any

from billing_common.http import PROBLEM_JSON
from billing_gateway.docs import render_docs
from billing_gateway.openapi import GATEWAY_OPERATIONS, Problem, build_openapi
from billing_gateway.routes import ROUTES
from billing_gateway.usage_events import (
    CLOUDEVENT,
    CLOUDEVENT_BATCH,
    EVENTS_PATH,
    JSON,
    REJECT_CODES,
)

DOCUMENT = build_openapi(ROUTES)
OPERATION: dict[str, Any] = DOCUMENT["paths"][EVENTS_PATH]["post"]
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class TestOperation:
    def test_is_the_gateway_operation(self) -> None:
        assert ("POST", EVENTS_PATH) in GATEWAY_OPERATIONS
        assert OPERATION["operationId"] == "post_v1_events"
        assert OPERATION["tags"] == ["usage"]
        assert {"name": "usage"} in DOCUMENT["tags"]
        assert "35 days" in OPERATION["description"]

    def test_takes_the_three_content_types(self) -> None:
        content = OPERATION["requestBody"]["content"]
        assert list(content) == [JSON, CLOUDEVENT, CLOUDEVENT_BATCH]
        native, batch = content[JSON]["schema"]["oneOf"]
        assert native == ref("UsageEventInput")
        assert batch == {
            "type": "array",
            "items": ref("UsageEventInput"),
            "minItems": 1,
            "maxItems": 1000,
        }
        assert content[CLOUDEVENT]["schema"] == ref("CloudEventInput")
        assert content[CLOUDEVENT_BATCH]["schema"]["items"] == ref("CloudEventInput")
        assert content[CLOUDEVENT_BATCH]["schema"]["maxItems"] == 1000

    def test_the_event_schemas_forbid_other_fields(self) -> None:
        native = SCHEMAS["UsageEventInput"]
        assert native["additionalProperties"] is False
        assert native["required"] == ["id", "customer", "type"]
        assert native["properties"]["type"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
        cloud = SCHEMAS["CloudEventInput"]
        assert cloud["additionalProperties"] is False
        assert set(cloud["required"]) == {"specversion", "id", "source", "type", "subject"}

    def test_answers_202_with_the_counts_and_rejects(self) -> None:
        responses = OPERATION["responses"]
        assert responses["202"]["content"][JSON]["schema"] == ref("UsageEventsAccepted")
        assert set(SCHEMAS["UsageEventsAccepted"]["properties"]) == {"accepted", "rejected"}
        reject = SCHEMAS["EventReject"]
        assert set(reject["properties"]) == {"index", "code", "message"}
        assert tuple(reject["properties"]["code"]["enum"]) == REJECT_CODES

    def test_documents_its_problems(self) -> None:
        responses = OPERATION["responses"]
        assert set(responses) == {"202", "400", "401", "409", "413", "415", "422", "429", "503"}
        rejected = responses["422"]["content"][PROBLEM_JSON]["schema"]
        assert rejected == ref("UsageEventsRejectedProblem")
        problem = SCHEMAS["UsageEventsRejectedProblem"]
        assert set(problem["properties"]) == set(Problem.model_fields) | {"rejected"}
        for status in ("413", "415", "503"):
            assert responses[status]["content"][PROBLEM_JSON]["schema"] == ref("Problem")
        assert "too_many_events" in responses["413"]["description"]
        assert "Retry-After" in responses["503"]["headers"]
        assert "events_rejected" in responses["422"]["description"]

    def test_the_idempotency_key_is_optional(self) -> None:
        (parameter,) = OPERATION["parameters"]
        assert (parameter["name"], parameter["in"], parameter["required"]) == (
            "Idempotency-Key",
            "header",
            False,
        )


class TestDocsPage:
    def test_shows_the_operation_with_each_body(self) -> None:
        page = render_docs(DOCUMENT)
        section = page[page.index('id="post_v1_events"') :]
        section = section[: section.index("</section>")]
        for media_type in (JSON, CLOUDEVENT, CLOUDEVENT_BATCH):
            assert f'<h4>Request body <span class="muted">{media_type}: ' in section
        assert "<code>subject</code>" in section  # the CloudEvent's fields are listed
        assert "<code>properties</code>" in section
        assert section.count("<code>customer</code> <span") == 1  # one table per schema
        assert "Response 202" in section
