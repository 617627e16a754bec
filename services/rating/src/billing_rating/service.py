"""Rating use cases: the catalog projection's handlers, `rate_period` (what the billing cycle
calls) and the preview. Each runs on the connection its caller opened.

Rating learns the catalog from pricing's events only (never by calling pricing), so a
plan is known here once its `plan_published` event has been consumed: until then it is
`plan_not_found`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from billing_common.db import Connection
from billing_common.errors import NotFound
from billing_common.events import CloudEvent
from billing_common.money import Money
from billing_pricing.events import PlanPublished, PriceOverrideSet
from billing_rating import repository
from billing_rating.domain import (
    BillingTiming,
    Period,
    PriceSheet,
    RatedLineItem,
    Usage,
    UsageRecord,
    rate_all,
    total_of,
)
from billing_rating.price_sheets import check_usage_meters, price_sheet_of
from billing_rating.pricing_models import ChargeBreakdown
from billing_rating.schemas import (
    RatedLine,
    RatedTier,
    RatedTransactions,
    RatingPreview,
    RatingPreviewRequest,
)


class PlanNotFound(NotFound):
    code = "plan_not_found"
    title = "Plan not found"


class PlanVersionNotFound(NotFound):
    code = "plan_version_not_found"
    title = "Plan version not found"


# -- the catalog projection --------------------------------------------------------------------


async def project_plan_published(conn: Connection, event: CloudEvent[PlanPublished]) -> None:
    """Handler of `billing.pricing.plan_published`: keep every version, whole. Versions are
    rows of their own, so one arriving late never replaces a newer one."""
    await repository.insert_plan_version(conn, event.tenantid, event.data)


async def project_price_override(conn: Connection, event: CloudEvent[PriceOverrideSet]) -> None:
    """Handler of `billing.pricing.price_override_set`: the customer's latest price for the
    charge (by `set_at`); an earlier one arriving late changes nothing."""
    await repository.upsert_override(conn, event.tenantid, event.data)


# -- price sheets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingPlan:
    """A plan version as rating rates it: its price sheet, with the customer's overrides."""

    plan: PlanPublished
    sheet: PriceSheet
    overridden: frozenset[str]
    """The keys of the charges priced by an override."""


async def plan_version(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None
) -> PlanPublished:
    """The plan at `version` (its latest known when None), or `PlanNotFound` /
    `PlanVersionNotFound`."""
    plan = await repository.get_plan_version(conn, tenant_id, plan_id, version)
    if plan is None:
        if version is None or not await repository.plan_exists(conn, tenant_id, plan_id):
            raise PlanNotFound(f"no plan {plan_id}", plan_id=plan_id)
        raise PlanVersionNotFound(
            f"plan {plan_id} has no version {version}", plan_id=plan_id, version=version
        )
    return plan


async def rating_plan(
    conn: Connection,
    tenant_id: str,
    plan_id: str,
    version: int | None,
    customer_id: str | None,
) -> RatingPlan:
    """The price sheet of a plan version, each charge priced by the customer's override of it
    where there is one for that charge on the same meter (a later version may have moved
    the charge to another meter: a price set for the old one does not carry over)."""
    plan = await plan_version(conn, tenant_id, plan_id, version)
    prices: dict[str, Any] = {}
    if customer_id is not None:
        stored = await repository.overrides_of(conn, tenant_id, plan.plan_id, customer_id)
        for spec in plan.charges:
            override = stored.get(spec.key)
            if override is not None and override.meter_key == spec.meter_key:
                prices[spec.key] = override.price
    return RatingPlan(plan, price_sheet_of(plan, prices), frozenset(prices))


async def rate_period(
    conn: Connection,
    tenant_id: str,
    plan_id: str,
    version: int | None,
    customer_id: str | None,
    usage: Usage,
    period: Period,
) -> list[RatedLineItem]:
    """Rate a period's usage against a plan version (the latest known when `version` is None)
    with the customer's overrides: what the billing cycle calls at period close.

    Usage of meters the plan does not charge is left aside (metering reports every meter
    of the customer). The lines are exact (pico-units); invoicing rounds each once.
    """
    plan = await rating_plan(conn, tenant_id, plan_id, version, customer_id)
    return rate_all(plan.sheet, usage, period)


# -- preview -----------------------------------------------------------------------------------


async def preview(conn: Connection, tenant_id: str, request: RatingPreviewRequest) -> RatingPreview:
    """Rate the usage a client describes, as `rate_period` would, and explain every line.

    Unlike `rate_period` it refuses usage of a meter the plan does not charge
    (`unknown_meter_usage`): a client naming a meter expects it to be rated.
    """
    plan = await rating_plan(conn, tenant_id, request.plan_id, request.version, request.customer_id)
    check_usage_meters(plan.plan, (record.meter_key for record in request.usage))
    period = Period(request.period_start, request.period_end)
    usage = Usage(
        [
            UsageRecord(
                meter_key=record.meter_key,
                group=record.group,
                quantity=record.quantity,
                transactions=record.transactions,
            )
            for record in request.usage
        ]
    )
    lines = rate_all(plan.sheet, usage, period)
    return RatingPreview(
        plan_id=plan.plan.plan_id,
        version=plan.plan.version,
        customer_id=request.customer_id,
        currency=plan.sheet.currency,
        period_start=period.start,
        period_end=period.end,
        lines=[public_line(line, line.charge_id in plan.overridden) for line in lines],
        total=total_of(lines, plan.sheet.currency).to_public(),
    )


def _public(money: Money | None) -> object:
    return None if money is None else money.to_public()


def public_line(line: RatedLineItem, overridden: bool) -> RatedLine:
    breakdown = line.breakdown
    return RatedLine.model_validate(
        {
            "charge_key": line.charge_id,
            "meter_key": line.meter_key,
            "group": line.group,
            "kind": line.kind.value,
            "billing": "in_advance" if line.timing is BillingTiming.IN_ADVANCE else "in_arrears",
            "overridden": overridden,
            "period_start": line.period.start,
            "period_end": line.period.end,
            "quantity": breakdown.quantity,
            "amount": breakdown.amount.to_public(),
            "unit_price": _public(breakdown.unit_price),
            "tiers": _tiers(breakdown),
            "packages": breakdown.packages,
            "percentage": _transactions(breakdown),
            "matrix_cell": None if breakdown.matrix_cell is None else list(breakdown.matrix_cell),
            "explanation": breakdown.explanation,
        }
    )


def _tiers(breakdown: ChargeBreakdown) -> Sequence[RatedTier]:
    return [
        RatedTier(
            tier=tier.tier_index + 1,
            from_units=tier.from_units,
            up_to=tier.up_to,
            units=tier.units,
            unit_price=None if tier.unit_price is None else tier.unit_price.to_public(),
            rate=tier.rate,
            flat_fee=None if tier.flat_fee is None else tier.flat_fee.to_public(),
            amount=tier.amount.to_public(),
        )
        for tier in breakdown.tiers
    ]


def _transactions(breakdown: ChargeBreakdown) -> RatedTransactions | None:
    detail = breakdown.percentage
    if detail is None:
        return None
    return RatedTransactions(
        transactions=detail.transactions,
        free_transactions=detail.free_transactions,
        raised_to_minimum=detail.raised_to_minimum,
        capped_at_maximum=detail.capped_at_maximum,
        total_amount=detail.total_amount.to_public(),
        paid_amount=detail.paid_amount.to_public(),
        percentage_fees=detail.percentage_fees.to_public(),
        fixed_fees=detail.fixed_fees.to_public(),
    )
