"""HTTP routes the gateway forwards to: thin, one transaction per request.

A command on an invoice happens at the time its customer lives on: the real time, or its
test clock's frozen time when the customer is attached to one (`service.invoice_now`).

The gateway's route table allows only `[a-z0-9_]` or `{param}` path parts, so the
documents are `GET /v1/invoices/{invoice_id}/pdf` and `/html` (not `{id}.pdf`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from billing_common.db import Connection
from billing_common.http import json_response, parse_body, parse_query, tenant_of
from billing_common.ids import CustomerId, InvoiceId
from billing_common.runtime import ServiceContext
from billing_common.tax import TaxAdapter
from billing_invoicing import service
from billing_invoicing.schemas import (
    CreditNoteCreate,
    CreditNoteListQuery,
    InvoiceListQuery,
    OneOffLineCreate,
    TaxRates,
)


def _invoice_id(request: Request) -> InvoiceId:
    return InvoiceId.parse(request.path_params["invoice_id"])


def routes(runtime: ServiceContext, tax: TaxAdapter | None = None) -> Sequence[BaseRoute]:
    """`tax` replaces every tenant's rate table (tests); without it each tenant's own."""

    async def taxes_of(conn: Connection, tenant: str) -> TaxAdapter:
        return tax if tax is not None else await service.tax_adapter(conn, tenant)

    async def list_all(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, InvoiceListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_invoices(conn, tenant, query))

    async def retrieve(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        async with runtime.pool.acquire() as conn:
            stored = await service.get_invoice(conn, tenant, invoice_id)
        return json_response(service.to_public(stored))

    async def finalize(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        async with runtime.unit_of_work() as conn:
            now = await service.invoice_now(conn, tenant, invoice_id, now=runtime.clock())
            stored = await service.finalize_invoice(
                conn, runtime.outbox, tenant, invoice_id, now=now
            )
        return json_response(service.to_public(stored))

    async def void(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        async with runtime.unit_of_work() as conn:
            now = await service.invoice_now(conn, tenant, invoice_id, now=runtime.clock())
            stored = await service.void_invoice(conn, runtime.outbox, tenant, invoice_id, now=now)
        return json_response(service.to_public(stored))

    async def add_line(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        body = await parse_body(request, OneOffLineCreate)
        async with runtime.unit_of_work() as conn:
            now = await service.invoice_now(conn, tenant, invoice_id, now=runtime.clock())
            stored = await service.add_one_off_line(
                conn, tenant, invoice_id, body, now=now, tax=await taxes_of(conn, tenant)
            )
        return json_response(service.to_public(stored), status_code=201)

    async def pdf(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        async with runtime.pool.acquire() as conn:
            document = await service.invoice_document(conn, tenant, invoice_id, "pdf")
        assert isinstance(document, bytes)
        return Response(
            document,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{invoice_id}.pdf"'},
        )

    async def html(request: Request) -> Response:
        tenant = tenant_of(request)
        invoice_id = _invoice_id(request)
        async with runtime.pool.acquire() as conn:
            document = await service.invoice_document(conn, tenant, invoice_id, "html")
        assert isinstance(document, str)
        return HTMLResponse(document)

    async def upcoming(request: Request) -> Response:
        tenant = tenant_of(request)
        customer_id = CustomerId.parse(request.path_params["customer_id"])
        async with runtime.pool.acquire() as conn:
            preview = await service.upcoming_invoice(
                conn, tenant, customer_id, tax=await taxes_of(conn, tenant)
            )
        return json_response(preview)

    async def get_tax_rates(request: Request) -> Response:
        tenant = tenant_of(request)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.get_tax_rates(conn, tenant))

    async def put_tax_rates(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, TaxRates)
        async with runtime.unit_of_work() as conn:
            return json_response(await service.set_tax_rates(conn, tenant, body))

    async def create_credit_note(request: Request) -> Response:
        tenant = tenant_of(request)
        body = await parse_body(request, CreditNoteCreate)
        async with runtime.unit_of_work() as conn:
            now = await service.invoice_now(conn, tenant, body.invoice_id, now=runtime.clock())
            note = await service.create_credit_note(conn, runtime.outbox, tenant, body, now=now)
        return json_response(note, status_code=201)

    async def list_credit_notes(request: Request) -> Response:
        tenant = tenant_of(request)
        query = parse_query(request, CreditNoteListQuery)
        async with runtime.pool.acquire() as conn:
            return json_response(await service.list_credit_notes(conn, tenant, query))

    return [
        Route("/v1/invoices", list_all, methods=["GET"]),
        Route("/v1/invoices/{invoice_id}", retrieve, methods=["GET"]),
        Route("/v1/invoices/{invoice_id}/finalize", finalize, methods=["POST"]),
        Route("/v1/invoices/{invoice_id}/void", void, methods=["POST"]),
        Route("/v1/invoices/{invoice_id}/lines", add_line, methods=["POST"]),
        Route("/v1/invoices/{invoice_id}/pdf", pdf, methods=["GET"]),
        Route("/v1/invoices/{invoice_id}/html", html, methods=["GET"]),
        Route("/v1/customers/{customer_id}/upcoming_invoice", upcoming, methods=["GET"]),
        Route("/v1/tax_rates", get_tax_rates, methods=["GET"]),
        Route("/v1/tax_rates", put_tax_rates, methods=["PUT"]),
        Route("/v1/credit_notes", create_credit_note, methods=["POST"]),
        Route("/v1/credit_notes", list_credit_notes, methods=["GET"]),
    ]
