"""bill.sh invoicing service: fees, draft/finalize/void, numbering, credit notes, taxes.

The pure domain: `domain` (building, editing and the lifecycle of invoices), `numbering`
(gapless numbers), `credit_notes` and `render` (HTML and PDF). Around it: `projections`
(customers, subscription revisions, billing effects, period closes), `repository` (its
schema; invoices stored whole through `codec`), `service` (the use cases, "now" passed
in: the period's invoice, finalize, void, one-off lines, credit notes, the upcoming
invoice), `api` (`/v1/invoices`, `/v1/credit_notes`, the upcoming invoice) and `events`.
"""
