from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from billing_common.db import Pool, transaction
from billing_common.ids import CustomerId, InvoiceId
from billing_common.tax import NoTax, RateTableTax
from billing_invoicing import service
from billing_invoicing.events import CREDIT_NOTE_ISSUED, INVOICE_VOIDED

from .conftest import APRIL, MAY, TENANT, Subscription, apply, customer_created, outbox_events

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    return problem


async def period_invoice(
    pool: Pool, invoicing: service.Invoicing, *, grace_days: int = 5, fee: str = "30"
) -> tuple[str, CustomerId]:
    customer = CustomerId.new()
    sub = Subscription(customer, fee=fee)
    await apply(
        pool,
        customer_created(customer, grace_days=grace_days),
        sub.created(),
        sub.effects(1, APRIL, ("period_fee", fee, APRIL, MAY)),
    )
    async with transaction(pool) as conn:
        stored = await service.bill_period(
            conn,
            invoicing.outbox,
            TENANT,
            sub.rated().data,
            now=invoicing.clock(),
            tax=NoTax(),
        )
    return stored.invoice.invoice_id, customer


class TestInvoices:
    async def test_list_filter_and_paginate(
        self, client: httpx.AsyncClient, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        made = [await period_invoice(invoicing_pool, invoicing) for _ in range(3)]
        page = await client.get("/v1/invoices", params={"limit": 2})
        assert page.status_code == 200
        body = page.json()
        assert [i["id"] for i in body["data"]] == [made[0][0], made[1][0]]
        assert body["has_more"] is True
        rest = await client.get(
            "/v1/invoices", params={"limit": 2, "starting_after": body["next_cursor"]}
        )
        assert [i["id"] for i in rest.json()["data"]] == [made[2][0]]
        assert rest.json()["has_more"] is False
        mine = await client.get("/v1/invoices", params={"customer": made[1][1], "status": "draft"})
        assert [i["id"] for i in mine.json()["data"]] == [made[1][0]]
        none = await client.get("/v1/invoices", params={"status": "paid"})
        assert none.json()["data"] == []
        assert_problem(
            await client.get("/v1/invoices", params={"status": "bogus"}), 422, "validation_failed"
        )

    async def test_draft_edit_finalize_render_void(
        self, client: httpx.AsyncClient, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        invoice_id, customer = await period_invoice(invoicing_pool, invoicing)
        draft = (await client.get(f"/v1/invoices/{invoice_id}")).json()
        assert draft["status"] == "draft"
        assert draft["customer_id"] == customer
        assert draft["number"] is None
        assert draft["total"] == {"amount": "33.5", "currency": "USD"}
        assert draft["editable_until"] is not None
        not_yet = assert_problem(
            await client.get(f"/v1/invoices/{invoice_id}/pdf"), 409, "invoice_not_finalized"
        )
        assert not_yet["invoice_status"] == "draft"

        added = await client.post(
            f"/v1/invoices/{invoice_id}/lines",
            json={
                "description": "Onboarding",
                "unit_amount": {"amount": "2.5", "currency": "USD"},
                "quantity": "2",
            },
        )
        assert added.status_code == 201, added.text
        assert added.json()["lines"][-1]["kind"] == "one_off"
        assert added.json()["total"] == {"amount": "38.5", "currency": "USD"}
        assert_problem(
            await client.post(
                f"/v1/invoices/{invoice_id}/lines",
                json={"description": "x", "unit_amount": {"amount": "1", "currency": "EUR"}},
            ),
            422,
            "currency_mismatch",
        )

        finalized = await client.post(f"/v1/invoices/{invoice_id}/finalize")
        assert finalized.status_code == 200, finalized.text
        assert finalized.json()["status"] == "finalized"
        assert finalized.json()["number"] == "INV-2026-000001"
        assert finalized.json()["editable_until"] is None
        assert_problem(
            await client.post(f"/v1/invoices/{invoice_id}/finalize"),
            409,
            "invalid_invoice_transition",
        )
        assert_problem(
            await client.post(
                f"/v1/invoices/{invoice_id}/lines",
                json={"description": "late", "unit_amount": {"amount": "1", "currency": "USD"}},
            ),
            409,
            "invoice_not_editable",
        )

        pdf = await client.get(f"/v1/invoices/{invoice_id}/pdf")
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-")
        html = await client.get(f"/v1/invoices/{invoice_id}/html")
        assert html.status_code == 200
        assert "INV-2026-000001" in html.text

        voided = await client.post(f"/v1/invoices/{invoice_id}/void")
        assert voided.json()["status"] == "void"
        [fact] = await outbox_events(invoicing_pool, INVOICE_VOIDED)
        assert fact["number"] == "INV-2026-000001"
        assert fact["total"] == {"amount": str(385 * 10**11), "currency": "USD"}
        assert_problem(
            await client.post(f"/v1/invoices/{invoice_id}/void"), 409, "invalid_invoice_transition"
        )

    async def test_unknown_and_invalid_ids(self, client: httpx.AsyncClient) -> None:
        assert_problem(
            await client.get(f"/v1/invoices/{InvoiceId.new()}"), 404, "invoice_not_found"
        )
        assert_problem(await client.get("/v1/invoices/cus_nope"), 422, "invalid_id")
        assert_problem(
            await client.get(f"/v1/customers/{CustomerId.new()}/upcoming_invoice"),
            404,
            "customer_not_found",
        )


class TestUpcoming:
    async def test_previews_pending_effects_only(
        self, client: httpx.AsyncClient, invoicing_pool: Pool
    ) -> None:
        customer = CustomerId.new()
        sub = Subscription(customer)
        await apply(
            invoicing_pool,
            customer_created(customer),
            sub.created(),
            sub.effects(1, APRIL, ("period_fee", "30", APRIL, MAY)),
        )
        preview = await client.get(f"/v1/customers/{customer}/upcoming_invoice")
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert body["object"] == "upcoming_invoice"
        assert [(line["kind"], line["amount"]["amount"]) for line in body["lines"]] == [
            ("base_fee", "30")
        ]
        assert body["total"] == {"amount": "30", "currency": "USD"}
        assert body["period_start"] == "2026-04-01T00:00:00Z"
        assert await invoicing_pool.fetchval("SELECT count(*) FROM invoices") == 0


class TestCreditNotes:
    async def test_issue_list_and_refusals(
        self, client: httpx.AsyncClient, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        invoice_id, customer = await period_invoice(invoicing_pool, invoicing, grace_days=0)
        refused = await client.post(
            "/v1/credit_notes",
            json={
                "invoice_id": invoice_id,
                "lines": [{"line_id": "line_1"}],
                "reason": "duplicate",
                "outcome": "refund",
            },
        )
        assert_problem(refused, 409, "credit_note_refund_unpaid")
        issued = await client.post(
            "/v1/credit_notes",
            json={
                "invoice_id": invoice_id,
                "lines": [{"line_id": "line_1", "amount": {"amount": "10", "currency": "USD"}}],
                "reason": "product_unsatisfactory",
                "outcome": "customer_balance",
            },
        )
        assert issued.status_code == 201, issued.text
        note = issued.json()
        assert note["total"] == {"amount": "10", "currency": "USD"}
        assert note["customer_id"] == customer
        too_much = await client.post(
            "/v1/credit_notes",
            json={
                "invoice_id": invoice_id,
                "lines": [{"line_id": "line_1", "amount": {"amount": "25", "currency": "USD"}}],
                "reason": "other",
                "outcome": "customer_balance",
            },
        )
        assert_problem(too_much, 409, "credit_note_exceeds_line")
        unknown_line = await client.post(
            "/v1/credit_notes",
            json={
                "invoice_id": invoice_id,
                "lines": [{"line_id": "line_9"}],
                "reason": "other",
                "outcome": "customer_balance",
            },
        )
        assert_problem(unknown_line, 422, "credit_note_line_unknown")
        listed = await client.get("/v1/credit_notes", params={"invoice": invoice_id})
        assert [n["id"] for n in listed.json()["data"]] == [note["id"]]
        [fact] = await outbox_events(invoicing_pool, CREDIT_NOTE_ISSUED)
        assert fact["credit_note_id"] == note["id"]
        assert fact["amount"] == {"amount": str(10 * 10**12), "currency": "USD"}
        assert fact["outcome"] == "customer_balance"

    async def test_a_draft_cannot_be_credited(
        self, client: httpx.AsyncClient, invoicing_pool: Pool, invoicing: service.Invoicing
    ) -> None:
        invoice_id, _ = await period_invoice(invoicing_pool, invoicing)
        response = await client.post(
            "/v1/credit_notes",
            json={
                "invoice_id": invoice_id,
                "lines": [{"line_id": "line_1"}],
                "reason": "other",
                "outcome": "customer_balance",
            },
        )
        assert_problem(response, 409, "invoice_not_creditable")
        assert_problem(
            await client.post(
                "/v1/credit_notes",
                json={
                    "invoice_id": str(InvoiceId.new()),
                    "lines": [],
                    "reason": "other",
                    "outcome": "customer_balance",
                },
            ),
            404,
            "invoice_not_found",
        )


class TestTaxRates:
    async def test_the_tenants_table_is_replaced_whole_and_used_for_its_invoices(
        self, client: httpx.AsyncClient, invoicing_pool: Pool
    ) -> None:
        assert (await client.get("/v1/tax_rates")).json()["rates"] == []
        async with invoicing_pool.acquire() as conn:
            assert isinstance(await service.tax_adapter(conn, TENANT), NoTax)
        table = {
            "rates": [
                {"country": "FR", "rate": "0.2"},
                {"country": "US", "region": "CA", "rate": "0.0725"},
            ]
        }
        stored = await client.put("/v1/tax_rates", json=table)
        assert stored.status_code == 200, stored.text
        assert stored.json()["rates"] == [
            {"country": "FR", "region": None, "rate": "0.2"},
            {"country": "US", "region": "CA", "rate": "0.0725"},
        ]
        async with invoicing_pool.acquire() as conn:
            taxes = await service.tax_adapter(conn, TENANT)
        assert isinstance(taxes, RateTableTax)
        assert taxes.rate_for("FR", "IDF") == ("FR", Decimal("0.2"))
        assert taxes.rate_for("US", "CA") == ("US-CA", Decimal("0.0725"))
        assert taxes.rate_for("DE")[1] == 0  # not in the table: not taxed
        await client.put("/v1/tax_rates", json={"rates": [{"country": "DE", "rate": "0.19"}]})
        assert [r["country"] for r in (await client.get("/v1/tax_rates")).json()["rates"]] == ["DE"]

    @pytest.mark.parametrize(
        ("rates", "code"),
        [
            (
                [{"country": "FR", "rate": "0.2"}, {"country": "FR", "rate": "0.1"}],
                "duplicate_tax_rate",
            ),
            ([{"country": "FR", "rate": "1.5"}], "invalid_tax_rate"),
            ([{"country": "FR", "rate": "-0.1"}], "invalid_tax_rate"),
            ([{"country": "fr", "rate": "0.2"}], "validation_failed"),
            ([{"country": "FR", "rate": 0.2}], "validation_failed"),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, rates: list[dict[str, Any]], code: str
    ) -> None:
        assert_problem(await client.put("/v1/tax_rates", json={"rates": rates}), 422, code)
        assert (await client.get("/v1/tax_rates")).json()["rates"] == []
