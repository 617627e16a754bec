"""Tracing across HTTP and Kafka, and JSON logs.

The W3C `traceparent` travels in HTTP headers and in each CloudEvent's
`traceparent` attribute, so a span started by the gateway continues in every
consumer the request causes. Spans are exported only when
`OTEL_EXPORTER_OTLP_ENDPOINT` names a collector and an OTLP exporter is
installed; otherwise they still propagate ids (and land in the logs).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

_propagator = TraceContextTextMapPropagator()


def configure_tracing(service: str) -> None:
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service})))


def tracer() -> trace.Tracer:
    return trace.get_tracer("billing")


def current_traceparent() -> str | None:
    """The traceparent of the active span, to put on an outgoing message or request."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continue_trace(name: str, traceparent: str | None, **attributes: Any) -> Iterator[trace.Span]:
    """A span named `name`, child of `traceparent` when there is one."""
    parent_ctx = (
        _propagator.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    )
    token = otel_context.attach(parent_ctx)
    try:
        with tracer().start_as_current_span(name, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


class TraceContextMiddleware:
    """Run each HTTP request in a span that continues the caller's `traceparent` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent = dict(scope["headers"]).get(b"traceparent")
        name = f"{scope['method']} {scope['path']}"
        with continue_trace(name, traceparent.decode("latin-1") if traceparent else None):
            await self.app(scope, receive, send)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the trace id when a span is active."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def route_library_logs_to_json() -> None:
    """FastStream gives its loggers coloured stdout handlers; send them through ours instead.

    Its per-message access lines ("Received", "Processed") are kept at WARNING: the
    consumer's metrics count messages, and a log line per event would drown the rest.
    """
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("faststream"):
            library_logger = logging.getLogger(name)
            library_logger.handlers.clear()
            library_logger.propagate = True
            library_logger.setLevel(logging.WARNING)
