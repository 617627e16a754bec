"""The OpenAPI 3.1 document of the public API, built from the route table (no I/O).

Every `RouteSpec` becomes one operation: path parameters from its path, query
parameters from its query model, the request body and success response from
its models (pydantic JSON Schema, which is what OpenAPI 3.1 speaks), and the
problem+json errors the gateway can answer with. The gateway's own operations
(`GATEWAY_OPERATIONS`), usage ingestion (`POST /v1/events`) and the upcoming invoice
with usage (`GET /v1/customers/{customer_id}/upcoming_invoice`), are described beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from billing_common.http import PROBLEM_JSON
from billing_gateway.events import MAX_EVENTS_PER_REQUEST
from billing_gateway.idempotency import IDEMPOTENCY_KEY_HEADER
from billing_gateway.routes import RouteSpec
from billing_gateway.upcoming_invoice import (
    PREVIEWED_STATUSES,
    UPCOMING_INVOICE_PATH,
    UpcomingInvoiceWithUsage,
)
from billing_gateway.usage_events import (
    CLOUDEVENT,
    CLOUDEVENT_BATCH,
    EVENTS_PATH,
    JSON,
    MAX_FUTURE,
    MAX_PAST,
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTIES_DEPTH,
    REJECT_CODES,
    CloudEventInput,
    EventReject,
    UsageEventInput,
    UsageEventsAccepted,
)

_SCHEMA_REF = "#/components/schemas/"
REF_TEMPLATE = _SCHEMA_REF + "{model}"
SECURITY_SCHEME = "bearerAuth"

_Mode = Literal["validation", "serialization"]
_Refs = dict[tuple[type[Any], str], dict[str, Any]]
"""(model, JSON Schema mode) → the `$ref` of its schema."""


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, `(body)` for the whole")
    message: str
    type: str = Field(description="A stable error type, e.g. `missing`, `extra_forbidden`")


class Problem(BaseModel):
    """An RFC 9457 problem: how every error of the API is returned."""

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="What went wrong with this request, for a human")
    code: str = Field(description="A stable machine code, e.g. `validation_failed`")
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldError] | None = Field(
        default=None, description="With `validation_failed`: one entry per invalid field"
    )


class UsageEventsRejectedProblem(Problem):
    """The 422 of `POST /v1/events` when no event was accepted (`events_rejected`)."""

    rejected: list[EventReject] | None = Field(
        default=None, description="With `events_rejected`: why each event was refused"
    )


GATEWAY_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("POST", EVENTS_PATH),
    ("GET", UPCOMING_INVOICE_PATH),
)
"""(method, path) of the operations the gateway serves itself, beside the route table."""

USAGE_TAG = "usage"

ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The body is not JSON, or a header is invalid (`malformed_body`, `invalid_request`)",
    ),
    401: ("Unauthenticated", "Credentials are missing or invalid (`unauthenticated`)"),
    404: ("NotFound", "No such resource (`not_found` or a more specific code)"),
    409: (
        "Conflict",
        "The Idempotency-Key was used for another request (`idempotency_key_reused`) or is "
        "still in progress (`idempotent_request_in_progress`), or the resource conflicts "
        "with an existing one",
    ),
    413: ("PayloadTooLarge", "The body is larger than the gateway accepts (`payload_too_large`)"),
    415: ("UnsupportedMediaType", "The body is not `application/json` (`unsupported_media_type`)"),
    422: (
        "ValidationFailed",
        "The input does not satisfy the schema; `errors` lists each field (`validation_failed`)",
    ),
    429: ("RateLimited", "Too many requests; retry after `Retry-After` seconds (`rate_limited`)"),
    503: ("ServiceUnavailable", "The owning service is unavailable (`service_unavailable`)"),
    504: ("UpstreamTimeout", "The owning service did not answer in time (`upstream_timeout`)"),
}
"""Status → (name under `components/responses`, description) of each problem the API returns."""

_RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: the scheme to authenticate with",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _error_responses(problem_ref: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": problem_ref}},
        }
        if status in _RESPONSE_HEADERS:
            response["headers"] = _RESPONSE_HEADERS[status]
        responses[name] = response
    return responses


def error_statuses(spec: RouteSpec) -> list[int]:
    """The error statuses `spec` can answer with."""
    statuses = {401, 404, 429, 503, 504}
    if spec.request_model is not None:
        statuses |= {400, 413, 415, 422}
    if spec.query_model is not None or spec.path_params:
        statuses.add(422)
    if spec.idempotent:
        statuses |= {400, 409}
    return sorted(statuses)


def _unique(
    items: Iterable[tuple[type[BaseModel], _Mode]],
) -> list[tuple[type[BaseModel], _Mode]]:
    return list(dict.fromkeys(items))


def _ref_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).removeprefix(_SCHEMA_REF)


def _query_parameters(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", []))
    parameters = []
    for name, schema in model_schema.get("properties", {}).items():
        schema = dict(schema)
        schema.pop("title", None)
        description = schema.pop("description", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(
    spec: RouteSpec,
    refs: _Refs,
    schemas: dict[str, Any],
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in spec.path_params
    ]
    if spec.query_model is not None:
        query_schema = schemas[_ref_name(refs[(spec.query_model, "validation")])]
        parameters.extend(_query_parameters(query_schema))
    if spec.idempotent:
        parameters.append(
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": False,
                "description": "A unique key for this request: a retry with the same key "
                "returns the first response (24 h) instead of acting twice",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    operation: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.service],
    }
    if spec.description:
        operation["description"] = spec.description
    if parameters:
        operation["parameters"] = parameters
    if spec.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(spec.request_model, "validation")]}},
        }
    if spec.response_media_type == "application/json":
        success = {
            "description": spec.response_model.__name__,
            "content": {
                "application/json": {"schema": refs[(spec.response_model, "serialization")]}
            },
        }
    else:  # a document (PDF, HTML) rendered from the response model
        success = {
            "description": f"{spec.response_model.__name__} as {spec.response_media_type}",
            "content": {spec.response_media_type: {"schema": {"type": "string"}}},
        }
    responses: dict[str, Any] = {str(spec.success_status): success}
    for status in error_statuses(spec):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
    operation["responses"] = responses
    return operation


_EVENTS_DESCRIPTION = (
    f"Send one usage event or a batch of up to {MAX_EVENTS_PER_REQUEST}: `{JSON}` (an event "
    f"object or an array of them), `{CLOUDEVENT}` (one CloudEvent 1.0) or `{CLOUDEVENT_BATCH}` "
    "(an array of CloudEvents: `subject` is the customer, `time` the timestamp, `data` the "
    "properties). Each event is checked on its own: the `202` counts those accepted and lists "
    "the others with their index and code; a bad event never spoils the rest. A timestamp "
    f"must lie from {MAX_PAST.days} days before the request to "
    f"{int(MAX_FUTURE.total_seconds() // 60)} minutes after it (default: the time received); "
    f"`properties` at most {MAX_PROPERTIES_BYTES // 1024} KiB as JSON and "
    f"{MAX_PROPERTIES_DEPTH} levels deep; numbers are kept exactly as sent. Rejection codes: "
    + ", ".join(f"`{code}`" for code in REJECT_CODES)
    + ". The `202` means Kafka has the events; on a `503` send the same request again: an "
    "event (`customer`, `id`) is counted once however often it is sent. An `Idempotency-Key` "
    "is honoured but not needed."
)


def _usage_events_operation(refs: _Refs) -> dict[str, Any]:
    """`POST /v1/events`, the gateway's own operation."""
    native = refs[(UsageEventInput, "validation")]
    cloud = refs[(CloudEventInput, "validation")]

    def batch_of(item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_EVENTS_PER_REQUEST}

    problem = {PROBLEM_JSON: {"schema": refs[(Problem, "serialization")]}}
    return {
        "operationId": "post_v1_events",
        "summary": "Send usage events",
        "description": _EVENTS_DESCRIPTION,
        "tags": [USAGE_TAG],
        "parameters": [
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": False,
                "description": "Optional: a retry with the same key returns the first response "
                "(24 h). Events are idempotent by (`customer`, `id`) without it.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"oneOf": [native, batch_of(native)]}},
                CLOUDEVENT: {"schema": cloud},
                CLOUDEVENT_BATCH: {"schema": batch_of(cloud)},
            },
        },
        "responses": {
            "202": {
                "description": "Accepted: Kafka has every accepted event; `rejected` lists "
                "the others",
                "content": {JSON: {"schema": refs[(UsageEventsAccepted, "serialization")]}},
            },
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthenticated"},
            "409": {"$ref": "#/components/responses/Conflict"},
            "413": {
                "description": "The body is too large (`payload_too_large`) or holds more than "
                f"{MAX_EVENTS_PER_REQUEST} events (`too_many_events`)",
                "content": problem,
            },
            "415": {
                "description": f"The body is not `{JSON}`, `{CLOUDEVENT}` or `{CLOUDEVENT_BATCH}` "
                "(`unsupported_media_type`)",
                "content": problem,
            },
            "422": {
                "description": "No event was accepted (`events_rejected`, with `rejected`), the "
                "batch is empty (`empty_batch`), or the body is not an event or an array "
                "(`invalid_batch`)",
                "content": {
                    PROBLEM_JSON: {"schema": refs[(UsageEventsRejectedProblem, "serialization")]}
                },
            },
            "429": {"$ref": "#/components/responses/RateLimited"},
            "503": {
                "description": "Kafka did not take the events (`service_unavailable`): send "
                "the same request again",
                "headers": _RESPONSE_HEADERS[503],
                "content": problem,
            },
        },
    }


_UPCOMING_INVOICE_DESCRIPTION = (
    "What the customer's next invoices bill so far: invoicing's pending base fees and "
    "prorations (`lines`, `total`, as invoicing previews them), and the usage of each "
    + ", ".join(f"`{status}`" for status in PREVIEWED_STATUSES)
    + " subscription's current period from its start up to now (`usage_through`), rated "
    "against its plan version with the customer's price overrides (`usage_lines`, exact "
    "amounts before rounding to the minor unit). `usage_total` adds up the `in_arrears` "
    "usage lines (an `in_advance` charge's events were billed as they came) and "
    "`total_with_usage` is `total` plus `usage_total`. Not previewed: the usage of the "
    "customer's children, tax on usage and the plan's minimum commitment. Every amount is "
    "an exact decimal string."
)


def _upcoming_invoice_operation(refs: _Refs) -> dict[str, Any]:
    """`GET /v1/customers/{customer_id}/upcoming_invoice`, composed by the gateway."""
    problem = {PROBLEM_JSON: {"schema": refs[(Problem, "serialization")]}}
    return {
        "operationId": "get_v1_customers_customer_id_upcoming_invoice",
        "summary": "Preview the customer's upcoming invoice, usage so far included",
        "description": _UPCOMING_INVOICE_DESCRIPTION,
        "tags": ["invoicing"],
        "parameters": [
            {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {
            "200": {
                "description": UpcomingInvoiceWithUsage.__name__,
                "content": {
                    "application/json": {
                        "schema": refs[(UpcomingInvoiceWithUsage, "serialization")]
                    }
                },
            },
            "401": {"$ref": "#/components/responses/Unauthenticated"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "422": {
                "description": "The customer id is not valid (`invalid_id`), a service "
                "refused the usage it was given (its code, e.g. `usage_inconsistent`), or a "
                "subscription's usage is in another currency than the invoice "
                "(`currency_mismatch`)",
                "content": problem,
            },
            "429": {"$ref": "#/components/responses/RateLimited"},
            "503": {
                "description": "A service the preview reads failed, could not be reached or "
                "did not answer in time (`service_unavailable`): retry",
                "headers": _RESPONSE_HEADERS[503],
                "content": problem,
            },
        },
    }


def _refs_in(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
                found.add(ref.removeprefix(_SCHEMA_REF))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _reachable(used_by: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas `used_by` refers to, directly or through other schemas, in name order."""
    todo = _refs_in(used_by)
    kept: set[str] = set()
    while todo:
        name = todo.pop()
        if name in kept or name not in schemas:
            continue
        kept.add(name)
        todo |= _refs_in(schemas[name])
    return {name: schemas[name] for name in sorted(kept)}


def build_openapi(
    routes: Sequence[RouteSpec],
    *,
    title: str = "bill.sh API",
    version: str = "1.0.0",
    server_url: str = "/",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (a plain JSON-able dict)."""
    inputs: list[tuple[type[BaseModel], _Mode]] = []
    for spec in routes:
        if spec.request_model is not None:
            inputs.append((spec.request_model, "validation"))
        if spec.query_model is not None:
            inputs.append((spec.query_model, "validation"))
        inputs.append((spec.response_model, "serialization"))
    inputs += [
        (UsageEventInput, "validation"),
        (CloudEventInput, "validation"),
        (UsageEventsAccepted, "serialization"),
        (UsageEventsRejectedProblem, "serialization"),
        (UpcomingInvoiceWithUsage, "serialization"),
        (Problem, "serialization"),
    ]
    ref_map, top = models_json_schema(_unique(inputs), ref_template=REF_TEMPLATE)
    refs: _Refs = {(model, mode): dict(schema) for (model, mode), schema in ref_map.items()}
    schemas: dict[str, Any] = top.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, refs, schemas)
    paths.setdefault(EVENTS_PATH, {})["post"] = _usage_events_operation(refs)
    paths.setdefault(UPCOMING_INVOICE_PATH, {})["get"] = _upcoming_invoice_operation(refs)

    responses = _error_responses(refs[(Problem, "serialization")])
    tags = sorted({spec.service for spec in routes} | {USAGE_TAG, "invoicing"})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Usage-based billing. Authenticate with `Authorization: Bearer "
            "<API key>` (`sk_test_…`, `sk_live_…`) or a dashboard token. Errors are "
            "`application/problem+json` with a stable `code`. Every POST accepts an "
            "`Idempotency-Key`.",
        },
        "servers": [{"url": server_url}],
        "security": [{SECURITY_SCHEME: []}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": _reachable([paths, responses], schemas),
            "responses": responses,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`sk_live_…`/`sk_test_…`) or a dashboard JWT",
                }
            },
        },
    }
