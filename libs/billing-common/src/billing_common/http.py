"""HTTP edges: problem+json errors and typed JSON bodies, shared by the gateway and services.

Every error leaves as RFC 9457 `application/problem+json` with a stable `code`;
an unexpected exception becomes a 500 problem without a stack trace (the trace
goes to the log).
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ExceptionHandler

from billing_common.errors import (
    BillingError,
    InvalidRequest,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TENANT_HEADER = "x-tenant-id"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

ModelT = TypeVar("ModelT", bound=BaseModel)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(error: BillingError, request: Request | None = None) -> Response:
    instance = request.url.path if request is not None else None
    headers = {"Retry-After": "1"} if error.retryable and error.status in (429, 503) else None
    return ProblemResponse(error.to_problem(instance), status_code=error.status, headers=headers)


def validation_problem(exc: ValidationError) -> ValidationFailed:
    errors = [
        {
            "field": ".".join(str(part) for part in error["loc"]) or "(body)",
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]
    count = len(errors)
    first = f"{errors[0]['field']}: {errors[0]['message']}" if errors else "invalid"
    summary = first if count == 1 else f"{first} (and {count - 1} more)"
    return ValidationFailed(summary, errors=errors)


async def read_json(request: Request, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The request body as JSON, with 413/415/400 problems for what is not."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type not in (
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    ) and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"expected application/json, got {content_type!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    if not body:
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also huge ints and deep nesting
        raise MalformedBody(f"request body is not valid JSON: {exc}") from exc
    reject_nul_characters(parsed)
    return parsed


def reject_nul_characters(value: Any, path: str = "") -> None:
    """Refuse text containing U+0000: it is valid JSON but no database stores it as text."""
    if isinstance(value, str):
        if "\x00" in value:
            field = path or "(body)"
            raise ValidationFailed(
                f"{field}: must not contain NUL characters",
                errors=[
                    {
                        "field": field,
                        "message": "must not contain NUL characters",
                        "type": "nul_character",
                    }
                ],
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul_characters(key, path)
            reject_nul_characters(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul_characters(item, f"{path}.{index}" if path else str(index))


async def parse_body(
    request: Request, model: type[ModelT], max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> ModelT:
    """Read and validate the body as `model`; 422 problem with each field's error otherwise."""
    raw = await read_json(request, max_bytes)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from exc


def parse_query(request: Request, model: type[ModelT]) -> ModelT:
    """Validate the query string with `model`; a list or tuple field takes every repeat of
    its parameter (`?group=a&group=b`), any other field the last one."""
    repeated = _sequence_parameters(model)
    query: dict[str, Any] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        query[name] = values if name in repeated else values[-1]
    reject_nul_characters(query)
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        raise validation_problem(exc) from exc


def _sequence_parameters(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        if get_origin(field.annotation) in (list, tuple, set, frozenset):
            names.add(field.alias or name)
    return names


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


async def _billing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BillingError)
    return problem_response(exc, request)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: BillingError
    if exc.status_code == 404:
        error = NotFound(f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        allowed = _allowed_methods(request)
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    else:
        error = InvalidRequest(str(exc.detail))
    response = problem_response(error, request)
    response.headers.update(exc.headers or {})  # e.g. `Allow` on a 405
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(BillingError("an unexpected error occurred"), request)


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """Starlette exception handlers that render every error as problem+json."""
    return {
        BillingError: _billing_error,
        HTTPException: _http_exception,
        Exception: _unexpected,
    }


def tenant_of(request: Request) -> str:
    """The tenant the gateway authenticated, passed to services in a header."""
    tenant = request.headers.get(TENANT_HEADER)
    if not tenant:
        raise Unauthenticated("missing tenant: requests reach services through the gateway")
    return tenant
