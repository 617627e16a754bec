"""Catalog use cases: each runs in the transaction its caller opened, and writes the
events it causes to the outbox in that same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from billing_common.db import Connection
from billing_common.errors import Conflict, CurrencyMismatch, NotFound, ValidationFailed
from billing_common.events import CloudEvent
from billing_common.ids import PlanId, ProductId
from billing_common.money import Money, MoneyWire
from billing_common.outbox import OutboxWriter
from billing_metering.events import METER_ARCHIVED, MeterChanged
from billing_pricing import domain, repository
from billing_pricing.events import (
    COUPON_CREATED,
    PLAN_MIGRATION_SCHEDULED,
    PLAN_PUBLISHED,
    PRICE_OVERRIDE_SET,
    PRODUCT_CREATED,
    CouponCreated,
    PlanMigrationScheduled,
    PlanPublished,
    PriceOverrideSet,
    ProductCreated,
)
from billing_pricing.schemas import (
    Coupon,
    CouponCreate,
    CouponId,
    CouponList,
    CouponListQuery,
    Plan,
    PlanBody,
    PlanCreate,
    PlanList,
    PlanListQuery,
    PlanMigration,
    PlanMigrationCreate,
    PlanMigrationId,
    PlanMigrationList,
    PlanVersionCreate,
    PriceOverride,
    PriceOverrideCreate,
    PriceOverrideId,
    PriceOverrideList,
    PriceOverrideListQuery,
    Product,
    ProductCreate,
    ProductList,
    ProductListQuery,
    PublicPrice,
    WirePrice,
)

_PUBLIC_PRICE: TypeAdapter[Any] = TypeAdapter(PublicPrice)
_WIRE_PRICE: TypeAdapter[Any] = TypeAdapter(WirePrice)


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


class PlanNotFound(NotFound):
    code = "plan_not_found"
    title = "Plan not found"


class PlanVersionNotFound(NotFound):
    code = "plan_version_not_found"
    title = "Plan version not found"


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    title = "Coupon not found"


class PlanCodeTaken(Conflict):
    code = "plan_code_taken"
    title = "A plan with this code exists"


class CouponCodeTaken(Conflict):
    code = "coupon_code_taken"
    title = "A coupon with this code exists"


class UnknownProduct(ValidationFailed):
    code = "unknown_product"
    title = "No product has this id"


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    title = "No plan has this id"


# -- products ----------------------------------------------------------------------------------


async def create_product(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, request: ProductCreate, *, now: datetime
) -> Product:
    product = Product(
        id=ProductId.new(),
        name=request.name,
        description=request.description,
        metadata=request.metadata,
        created_at=now,
    )
    await repository.insert_product(conn, tenant_id, product)
    await outbox.add(
        conn,
        PRODUCT_CREATED,
        ProductCreated(
            product_id=product.id,
            name=product.name,
            description=product.description,
            metadata=product.metadata,
            created_at=now,
        ),
        subject=product.id,
        tenant_id=tenant_id,
    )
    return product


async def get_product(conn: Connection, tenant_id: str, product_id: str) -> Product:
    product = await repository.get_product(conn, tenant_id, product_id)
    if product is None:
        raise ProductNotFound(f"no product {product_id}")
    return product


async def list_products(conn: Connection, tenant_id: str, query: ProductListQuery) -> ProductList:
    products, has_more = await repository.list_products(
        conn, tenant_id, limit=query.limit, starting_after=query.starting_after
    )
    return ProductList(
        data=products, has_more=has_more, next_cursor=products[-1].id if has_more else None
    )


# -- plans -------------------------------------------------------------------------------------


async def _checked_wire_body(
    conn: Connection, tenant_id: str, body: PlanBody[Any]
) -> dict[str, Any]:
    """Check a plan version against the catalog and the meters; its fields in wire form."""
    if body.product_id is not None and (
        await repository.get_product(conn, tenant_id, body.product_id) is None
    ):
        raise UnknownProduct(f"no product {body.product_id}", product_id=body.product_id)
    meters = await repository.meters_by_key(conn, tenant_id, domain.meter_keys_of(body))
    domain.plan_price_sheet(body, meters)
    return domain.describe_plan(body, Money.to_wire)


async def _publish(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    *,
    plan_id: PlanId,
    code: str,
    version: int,
    wire: dict[str, Any],
    now: datetime,
) -> None:
    body = PlanBody[MoneyWire].model_validate(wire)
    await repository.insert_plan_version(conn, tenant_id, plan_id, version, body, now)
    await outbox.add(
        conn,
        PLAN_PUBLISHED,
        PlanPublished.model_validate(
            {
                **wire,
                "plan_id": plan_id,
                "code": code,
                "version": version,
                "meter_keys": domain.meter_keys_of(body),
                "published_at": now,
            }
        ),
        subject=plan_id,
        tenant_id=tenant_id,
    )


def _public_plan(stored: repository.StoredPlanVersion) -> Plan:
    return Plan.model_validate(
        {
            **domain.describe_plan(stored.body, Money.to_public),
            "id": stored.plan_id,
            "code": stored.code,
            "version": stored.version,
            "latest_version": stored.latest_version,
            "meter_keys": domain.meter_keys_of(stored.body),
            "created_at": stored.created_at,
            "published_at": stored.published_at,
        }
    )


async def create_plan(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, request: PlanCreate, *, now: datetime
) -> Plan:
    """A new plan at version 1, published."""
    wire = await _checked_wire_body(conn, tenant_id, request)
    plan_id = PlanId.new()
    try:
        await repository.insert_plan(conn, tenant_id, plan_id, request.code, now)
    except repository.DuplicateCode as exc:
        raise PlanCodeTaken(f"code {request.code!r} is already used by another plan") from exc
    await _publish(
        conn, outbox, tenant_id, plan_id=plan_id, code=request.code, version=1, wire=wire, now=now
    )
    return await get_plan(conn, tenant_id, plan_id)


async def publish_version(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    plan_id: str,
    request: PlanVersionCreate,
    *,
    now: datetime,
) -> Plan:
    """The next version of a plan, published; subscriptions keep theirs until migrated."""
    version = await repository.claim_next_version(conn, tenant_id, plan_id)
    if version is None:
        raise PlanNotFound(f"no plan {plan_id}")
    previous = await repository.get_plan_version(conn, tenant_id, plan_id, version - 1)
    assert previous is not None  # versions are 1..latest, none is ever deleted
    domain.check_new_version(previous.body, request)
    wire = await _checked_wire_body(conn, tenant_id, request)
    await _publish(
        conn,
        outbox,
        tenant_id,
        plan_id=previous.plan_id,
        code=previous.code,
        version=version,
        wire=wire,
        now=now,
    )
    return await get_plan(conn, tenant_id, plan_id, version)


async def get_plan(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None = None
) -> Plan:
    """A plan at `version`, or at its latest version."""
    stored = await repository.get_plan_version(conn, tenant_id, plan_id, version)
    if stored is None:
        if version is None or await repository.get_plan_version(conn, tenant_id, plan_id) is None:
            raise PlanNotFound(f"no plan {plan_id}")
        raise PlanVersionNotFound(f"plan {plan_id} has no version {version}", version=version)
    return _public_plan(stored)


async def list_plans(conn: Connection, tenant_id: str, query: PlanListQuery) -> PlanList:
    plans, has_more = await repository.list_plans(
        conn, tenant_id, limit=query.limit, starting_after=query.starting_after, code=query.code
    )
    return PlanList(
        data=[_public_plan(plan) for plan in plans],
        has_more=has_more,
        next_cursor=plans[-1].plan_id if has_more else None,
    )


# -- migrations --------------------------------------------------------------------------------


async def schedule_migration(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    plan_id: str,
    request: PlanMigrationCreate,
    *,
    now: datetime,
) -> PlanMigration:
    """Record that subscriptions on one version move to another, and announce it (the
    subscriptions service moves them)."""
    latest = await repository.get_plan_version(conn, tenant_id, plan_id)
    if latest is None:
        raise PlanNotFound(f"no plan {plan_id}")
    effective_at = domain.check_migration(
        request.from_version,
        request.to_version,
        latest.latest_version,
        request.effective_at,
        now=now,
    )
    migration = PlanMigration(
        id=PlanMigrationId.new(),
        plan_id=latest.plan_id,
        from_version=request.from_version,
        to_version=request.to_version,
        effective_at=effective_at,
        created_at=now,
    )
    await repository.insert_migration(conn, tenant_id, migration)
    await outbox.add(
        conn,
        PLAN_MIGRATION_SCHEDULED,
        PlanMigrationScheduled(
            migration_id=migration.id,
            plan_id=migration.plan_id,
            plan_code=latest.code,
            from_version=migration.from_version,
            to_version=migration.to_version,
            effective_at=effective_at,
            scheduled_at=now,
        ),
        subject=migration.plan_id,
        tenant_id=tenant_id,
    )
    return migration


async def list_migrations(conn: Connection, tenant_id: str, plan_id: str) -> PlanMigrationList:
    if await repository.get_plan_version(conn, tenant_id, plan_id) is None:
        raise PlanNotFound(f"no plan {plan_id}")
    return PlanMigrationList(data=await repository.list_migrations(conn, tenant_id, plan_id))


# -- price overrides ---------------------------------------------------------------------------


def _public_override(stored: repository.StoredOverride) -> PriceOverride:
    model = domain.price_model(stored.price, stored.currency)
    return PriceOverride(
        id=stored.id,
        plan_id=stored.plan_id,
        customer_id=stored.customer_id,
        charge_key=stored.charge_key,
        meter_key=stored.meter_key,
        price=_PUBLIC_PRICE.validate_python(domain.describe_price(model, Money.to_public)),
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


async def set_price_override(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    plan_id: str,
    request: PriceOverrideCreate,
    *,
    now: datetime,
) -> PriceOverride:
    """One customer's own price for one charge of the plan (checked against the plan's latest
    version and the charge's meter), replacing any earlier one."""
    latest = await repository.get_plan_version(conn, tenant_id, plan_id)
    if latest is None:
        raise PlanNotFound(f"no plan {plan_id}")
    meters = await repository.meters_by_key(conn, tenant_id, domain.meter_keys_of(latest.body))
    charge = domain.override_charge(latest.body, request.charge_key, request.price, meters)
    wire_price = _WIRE_PRICE.validate_python(domain.describe_price(charge.model, Money.to_wire))
    stored = await repository.upsert_override(
        conn,
        tenant_id,
        new_id=PriceOverrideId.new(),
        plan_id=latest.plan_id,
        customer_id=request.customer_id,
        charge_key=charge.charge_id,
        meter_key=charge.meter_key,
        currency=latest.body.currency,
        price=wire_price,
        now=now,
    )
    await outbox.add(
        conn,
        PRICE_OVERRIDE_SET,
        PriceOverrideSet(
            override_id=stored.id,
            plan_id=stored.plan_id,
            customer_id=stored.customer_id,
            charge_key=stored.charge_key,
            meter_key=stored.meter_key,
            currency=stored.currency,
            price=wire_price,
            set_at=now,
        ),
        subject=stored.customer_id,
        tenant_id=tenant_id,
    )
    return _public_override(stored)


async def list_overrides(
    conn: Connection, tenant_id: str, plan_id: str, query: PriceOverrideListQuery
) -> PriceOverrideList:
    if await repository.get_plan_version(conn, tenant_id, plan_id) is None:
        raise PlanNotFound(f"no plan {plan_id}")
    overrides, has_more = await repository.list_overrides(
        conn,
        tenant_id,
        plan_id,
        limit=query.limit,
        starting_after=query.starting_after,
        customer_id=query.customer_id,
    )
    return PriceOverrideList(
        data=[_public_override(stored) for stored in overrides],
        has_more=has_more,
        next_cursor=overrides[-1].id if has_more else None,
    )


# -- coupons -----------------------------------------------------------------------------------


def _public_coupon(coupon: CouponCreated) -> Coupon:
    return Coupon(
        id=coupon.coupon_id,
        code=coupon.code,
        name=coupon.name,
        percent_off=coupon.percent_off,
        amount_off=None if coupon.amount_off is None else coupon.amount_off.to_money().to_public(),
        duration=coupon.duration,
        duration_periods=coupon.duration_periods,
        plan_ids=coupon.plan_ids,
        created_at=coupon.created_at,
    )


async def create_coupon(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, request: CouponCreate, *, now: datetime
) -> Coupon:
    """A coupon; a fixed amount off must be in the currency of every plan it is limited to."""
    amount_off = None if request.amount_off is None else request.amount_off.to_money()
    domain.CouponTerms(
        request.code, request.percent_off, amount_off, request.duration, request.duration_periods
    )
    plan_ids = list(dict.fromkeys(request.plan_ids))
    if plan_ids:
        currencies = await repository.existing_plan_currencies(conn, tenant_id, plan_ids)
        missing = [plan_id for plan_id in plan_ids if plan_id not in currencies]
        if missing:
            raise UnknownPlan(f"no plan {', '.join(missing)}", plan_ids=missing)
        for plan_id, currency in currencies.items():
            if amount_off is not None and amount_off.currency != currency:
                raise CurrencyMismatch(
                    f"the coupon takes off {amount_off} but plan {plan_id} bills in "
                    f"{currency.code}",
                    currencies=[currency.code, amount_off.currency.code],
                )
    coupon = CouponCreated(
        coupon_id=CouponId.new(),
        code=request.code,
        name=request.name,
        percent_off=request.percent_off,
        amount_off=None if amount_off is None else amount_off.to_wire(),
        duration=request.duration,
        duration_periods=request.duration_periods,
        plan_ids=plan_ids,
        created_at=now,
    )
    try:
        await repository.insert_coupon(conn, tenant_id, coupon)
    except repository.DuplicateCode as exc:
        raise CouponCodeTaken(f"code {request.code!r} is already used by another coupon") from exc
    await outbox.add(conn, COUPON_CREATED, coupon, subject=coupon.coupon_id, tenant_id=tenant_id)
    return _public_coupon(coupon)


async def get_coupon(conn: Connection, tenant_id: str, coupon_id: str) -> Coupon:
    coupon = await repository.get_coupon(conn, tenant_id, coupon_id)
    if coupon is None:
        raise CouponNotFound(f"no coupon {coupon_id}")
    return _public_coupon(coupon)


async def list_coupons(conn: Connection, tenant_id: str, query: CouponListQuery) -> CouponList:
    coupons, has_more = await repository.list_coupons(
        conn, tenant_id, limit=query.limit, starting_after=query.starting_after
    )
    return CouponList(
        data=[_public_coupon(coupon) for coupon in coupons],
        has_more=has_more,
        next_cursor=coupons[-1].coupon_id if has_more else None,
    )


# -- the meter projection ----------------------------------------------------------------------


async def project_meter(conn: Connection, event: CloudEvent[MeterChanged]) -> None:
    """Handler of the metering topics: keep the latest definition of each meter, so that
    plans on unknown or archived meters are refused. An older version arriving after a newer
    one changes nothing."""
    data = event.data
    await repository.upsert_meter(
        conn,
        event.tenantid,
        data.meter,
        version=data.version,
        archived=data.archived or event.type == METER_ARCHIVED.name,
        changed_at=data.changed_at,
    )
