from __future__ import annotations

import io
import json
import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from billing_common.telemetry import (
    JsonLogFormatter,
    TraceContextMiddleware,
    configure_tracing,
    continue_trace,
    current_traceparent,
)

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def trace_id_of(traceparent: str | None) -> str:
    assert traceparent is not None
    return traceparent.split("-")[1]


def test_a_span_continues_the_callers_trace() -> None:
    configure_tracing("test")
    assert current_traceparent() is None
    with continue_trace("work", CALLER):
        inner = current_traceparent()
    assert trace_id_of(inner) == CALLER_TRACE_ID
    assert inner != CALLER  # a new span id, same trace


def test_without_a_caller_a_new_trace_starts() -> None:
    configure_tracing("test")
    with continue_trace("work", None):
        first = current_traceparent()
    with continue_trace("work", None):
        second = current_traceparent()
    assert trace_id_of(first) != trace_id_of(second)


async def test_http_requests_continue_the_traceparent_header() -> None:
    configure_tracing("test")

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"traceparent": current_traceparent()})

    app = Starlette(routes=[Route("/", endpoint)])
    transport = httpx.ASGITransport(app=TraceContextMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        seen = (await client.get("/", headers={"traceparent": CALLER})).json()["traceparent"]
    assert trace_id_of(seen) == CALLER_TRACE_ID


def test_json_logs_carry_the_trace_id() -> None:
    configure_tracing("test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter("svc"))
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with continue_trace("work", CALLER):
        logger.info("hello %s", "world", extra={"fields": {"customer": "cus_1"}})
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "hello world"
    assert entry["service"] == "svc"
    assert entry["trace_id"] == CALLER_TRACE_ID
    assert entry["customer"] == "cus_1"
