"""Subscription use cases: each runs in the transaction its caller opened.

A use case loads what it needs (the subscription locked, the plan versions, the customer,
the tenant's policy), calls one domain transition with the instant `now` it is given (the
seam for test clocks: the caller decides what "now" is), saves the new state, and adds the
events the change causes to the outbox in the same transaction.

Test clocks: a customer attached to one lives on its time everywhere, as in Stripe. The
API asks `customer_now` / `subscription_now` for the time of the customer concerned (the
clock's frozen time, else the real time) and hands that to the use case, so a start
"now", a cancellation, a pause, a resumption or a plan change of a clock customer happens,
and is prorated and announced, at the clock's time. The engine's steps (renewals, trial
ends) already happen at the boundary they name (`cycle`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from billing_common import clock_projection
from billing_common.currency import Currency
from billing_common.db import Connection
from billing_common.errors import Conflict, CurrencyMismatch, NotFound, ValidationFailed
from billing_common.ids import SubscriptionId
from billing_common.money import Money
from billing_common.outbox import OutboxWriter
from billing_subscriptions import domain, repository
from billing_subscriptions.domain import (
    Action,
    BillingEffect,
    InvalidPlanChange,
    SubscriptionStatus,
    Transition,
)
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BillingEffectsRecorded,
    RecordedEffect,
    SubscriptionCoupon,
    SubscriptionCreated,
    SubscriptionFields,
    SubscriptionUpdated,
    TransitionMade,
    transition_name,
)
from billing_subscriptions.periods import local_midnight, zone
from billing_subscriptions.policy import SubscriptionPolicy
from billing_subscriptions.repository import AttachedCoupon, PlanVersion, StoredSubscription
from billing_subscriptions.schemas import (
    Subscription,
    SubscriptionCancel,
    SubscriptionChangePlan,
    SubscriptionCouponResource,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionListQuery,
)


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    title = "Subscription not found"


class ExternalIdTaken(Conflict):
    code = "subscription_external_id_taken"
    title = "A subscription with this external id exists"


class UnknownCustomer(ValidationFailed):
    code = "unknown_customer"
    title = "No customer has this id"


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    title = "No plan has this id"


class UnknownPlanVersion(ValidationFailed):
    code = "unknown_plan_version"
    title = "The plan has no such version"


class CustomerPlanCurrencyMismatch(CurrencyMismatch):
    code = "subscription_currency_mismatch"
    title = "The plan is not in the customer's currency"


class UnknownCoupon(ValidationFailed):
    code = "unknown_coupon"
    title = "No coupon has this id"


class CouponCurrencyMismatch(CurrencyMismatch):
    code = "coupon_currency_mismatch"
    title = "The coupon takes off an amount in another currency than the plan's"


class CouponNotForPlan(ValidationFailed):
    code = "coupon_not_for_plan"
    title = "The coupon is limited to other plans"


# -- reads ------------------------------------------------------------------------------------


def to_public(stored: StoredSubscription) -> Subscription:
    """The API's view of a stored subscription."""
    state = stored.state
    period = state.current_period
    cancel_at = None
    if state.cancel_at_period_end:
        cancel_at = state.trial_end if period is None else period.end
    return Subscription(
        **_shared_fields(stored),
        id=stored.id,
        base_fee=stored.plan.base_fee.to_public(),
        current_period_fee=None if state.period_fee is None else state.period_fee.to_public(),
        cancel_at=cancel_at,
        coupons=[
            SubscriptionCouponResource(
                coupon_id=c.coupon_id, code=c.code, start_period=c.start_period
            )
            for c in stored.coupons
        ],
    )


def _shared_fields(stored: StoredSubscription) -> dict[str, Any]:
    """What the API's view and the events say alike (money aside: public there, wire here)."""
    state = stored.state
    period = state.current_period
    scheduled = stored.scheduled_plan
    return {
        "customer_id": stored.customer_id,
        "external_id": stored.external_id,
        "status": state.status,
        "currency": stored.plan.currency,
        "plan_id": stored.plan.plan_id,
        "plan_version": stored.plan.version,
        "interval": state.terms.interval,
        "billing_anchor": state.terms.anchor,
        "timezone": state.terms.timezone,
        "billing_starts_at": state.terms.starts_at,
        "current_period_start": None if period is None else period.start,
        "current_period_end": None if period is None else period.end,
        "trial_end": state.trial_end,
        "cancel_at_period_end": state.cancel_at_period_end,
        "scheduled_plan_id": None if scheduled is None else scheduled.plan_id,
        "scheduled_plan_version": None if scheduled is None else scheduled.version,
        "paused_at": state.paused_at,
        "canceled_at": state.canceled_at,
        "ended_at": state.ended_at,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


async def get_subscription(conn: Connection, tenant_id: str, subscription_id: str) -> Subscription:
    return to_public(await _load(conn, tenant_id, subscription_id, for_update=False))


async def list_subscriptions(
    conn: Connection, tenant_id: str, query: SubscriptionListQuery
) -> SubscriptionList:
    page, has_more = await repository.list_page(
        conn,
        tenant_id,
        limit=query.limit,
        starting_after=query.starting_after,
        customer_id=query.customer_id,
        status=query.status,
    )
    return SubscriptionList(
        data=[to_public(stored) for stored in page],
        has_more=has_more,
        next_cursor=page[-1].id if has_more and page else None,
    )


async def _load(
    conn: Connection, tenant_id: str, subscription_id: str, *, for_update: bool
) -> StoredSubscription:
    stored = await repository.get(conn, tenant_id, subscription_id, for_update=for_update)
    if stored is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return stored


async def _plan_version(
    conn: Connection, tenant_id: str, plan_id: str, version: int | None
) -> PlanVersion:
    plan = await repository.get_plan_version(conn, tenant_id, plan_id, version)
    if plan is not None:
        return plan
    if version is not None and await repository.plan_exists(conn, tenant_id, plan_id):
        message = f"plan {plan_id} has no version {version}"
        raise UnknownPlanVersion(
            message,
            errors=[{"field": "plan_version", "message": message, "type": "unknown_plan_version"}],
        )
    message = f"no plan {plan_id}"
    raise UnknownPlan(
        message, errors=[{"field": "plan_id", "message": message, "type": "unknown_plan"}]
    )


async def _coupons_for(
    conn: Connection,
    tenant_id: str,
    coupon_ids: list[str],
    plan: PlanVersion,
    *,
    start_period: int,
) -> tuple[AttachedCoupon, ...]:
    """The coupons asked for, checked against the plan version, starting at `start_period`.

    Refused, each with its own code (422): a coupon subscriptions has not heard of
    (`unknown_coupon`), a fixed amount in another currency than the plan's
    (`coupon_currency_mismatch`), a coupon limited to other plans (`coupon_not_for_plan`).
    """
    attached: list[AttachedCoupon] = []
    for index, coupon_id in enumerate(coupon_ids):
        field = f"coupons[{index}]"
        coupon = await repository.get_coupon(conn, tenant_id, coupon_id)
        if coupon is None:
            message = f"no coupon {coupon_id}"
            raise UnknownCoupon(
                message,
                coupon_id=coupon_id,
                errors=[{"field": field, "message": message, "type": "unknown_coupon"}],
            )
        if coupon.amount_off is not None and coupon.amount_off.currency != plan.currency:
            raise CouponCurrencyMismatch(
                f"coupon {coupon.code} takes off {coupon.amount_off}; plan {plan.plan_id} bills "
                f"in {plan.currency.code}",
                coupon_id=coupon_id,
                coupon_currency=coupon.amount_off.currency.code,
                plan_currency=plan.currency.code,
            )
        if coupon.plan_ids and plan.plan_id not in coupon.plan_ids:
            message = f"coupon {coupon.code} applies to plans {list(coupon.plan_ids)} only"
            raise CouponNotForPlan(
                message,
                coupon_id=coupon_id,
                plan_id=plan.plan_id,
                errors=[{"field": field, "message": message, "type": "coupon_not_for_plan"}],
            )
        attached.append(AttachedCoupon(coupon.coupon_id, coupon.code, start_period))
    return tuple(attached)


# -- the customer's clock ---------------------------------------------------------------------


async def customer_now(
    conn: Connection, tenant_id: str, customer_id: str, *, now: datetime
) -> datetime:
    """The time the customer lives on: its test clock's frozen time if it is attached to
    one, else `now` (the real time)."""
    frozen = await clock_projection.customer_clock_time(conn, tenant_id, customer_id)
    return now if frozen is None else frozen


async def subscription_now(
    conn: Connection, tenant_id: str, subscription_id: str, *, now: datetime
) -> datetime:
    """The time the subscription's customer lives on (`customer_now`); `now` for a
    subscription that does not exist (the use case then says so)."""
    frozen = await repository.subscription_clock_time(conn, tenant_id, subscription_id)
    return now if frozen is None else frozen


# -- policy -----------------------------------------------------------------------------------


async def get_policy(conn: Connection, tenant_id: str) -> SubscriptionPolicy:
    return await repository.get_policy(conn, tenant_id)


async def set_policy(
    conn: Connection, tenant_id: str, policy: SubscriptionPolicy, *, now: datetime
) -> SubscriptionPolicy:
    """Replace the tenant's policy; it applies to every transition from now on."""
    await repository.put_policy(conn, tenant_id, policy, now)
    return policy


# -- commands ---------------------------------------------------------------------------------


def start_instant(start: str | date | datetime, timezone: str, now: datetime) -> datetime:
    """When a subscription asked to start at `start` starts: `now`, an instant as given, or
    a date's midnight in the customer's timezone."""
    if isinstance(start, datetime):
        return start
    if isinstance(start, date):
        return local_midnight(start, zone(timezone))
    return now


async def create_subscription(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    request: SubscriptionCreate,
    *,
    now: datetime,
) -> Subscription:
    customer = await repository.get_customer(conn, tenant_id, request.customer_id)
    if customer is None:
        message = f"no customer {request.customer_id}"
        raise UnknownCustomer(
            message,
            errors=[{"field": "customer_id", "message": message, "type": "unknown_customer"}],
        )
    plan = await _plan_version(conn, tenant_id, request.plan_id, request.plan_version)
    if plan.currency != customer.currency:
        raise CustomerPlanCurrencyMismatch(
            f"customer {customer.customer_id} is billed in {customer.currency.code}, plan "
            f"{plan.plan_id} version {plan.version} is in {plan.currency.code}",
            customer_currency=customer.currency.code,
            plan_currency=plan.currency.code,
        )
    coupons = await _coupons_for(conn, tenant_id, list(request.coupons), plan, start_period=0)
    policy = await repository.get_policy(conn, tenant_id)
    trial_days = plan.trial_days if request.trial_days is None else request.trial_days
    transition = domain.start_subscription(
        plan.to_plan(),
        request.billing_anchor,
        customer.timezone,
        start_instant(request.start, customer.timezone, now),
        policy,
        trial_days=trial_days,
    )
    stored = StoredSubscription(
        id=SubscriptionId.new(),
        customer_id=customer.customer_id,
        external_id=request.external_id,
        state=transition.subscription,
        plan=plan,
        scheduled_plan=None,
        revision=1,
        created_at=now,
        updated_at=now,
        coupons=coupons,
    )
    try:
        await repository.insert(conn, tenant_id, stored)
    except repository.DuplicateExternalId as exc:
        raise ExternalIdTaken(
            f"external_id {request.external_id!r} is already used by another subscription"
        ) from exc
    await outbox.add(
        conn,
        SUBSCRIPTION_CREATED,
        SubscriptionCreated(**_fields(stored)),
        subject=stored.customer_id,
        tenant_id=tenant_id,
    )
    await _record_effects(conn, outbox, tenant_id, None, stored, transition)
    return to_public(stored)


async def cancel_subscription(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    request: SubscriptionCancel,
    *,
    now: datetime,
) -> Subscription:
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.cancel(before.state, now, policy, request.at)
    return await _save(conn, outbox, tenant_id, before, transition, now=now)


async def pause_subscription(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    *,
    now: datetime,
) -> Subscription:
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.pause(before.state, now, policy)
    return await _save(conn, outbox, tenant_id, before, transition, now=now)


async def resume_subscription(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    *,
    now: datetime,
) -> Subscription:
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.resume(before.state, now, policy)
    return await _save(conn, outbox, tenant_id, before, transition, now=now)


async def change_subscription_plan(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    request: SubscriptionChangePlan,
    *,
    now: datetime,
) -> Subscription:
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    new_plan = await _plan_version(conn, tenant_id, request.plan_id, request.plan_version)
    if (new_plan.plan_id, new_plan.version) == (before.plan.plan_id, before.plan.version):
        raise InvalidPlanChange(
            f"the subscription is already on plan {new_plan.plan_id} version {new_plan.version}"
        )
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.change_plan(before.state, new_plan.to_plan(), now, policy, request.when)
    return await _save(conn, outbox, tenant_id, before, transition, now=now, new_plan=new_plan)


async def end_subscription_trial(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    *,
    now: datetime,
) -> Subscription:
    """trialing -> active (its first period charged), or canceled if so asked. For the
    engine, when the trial's end passes; no public route."""
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.end_trial(before.state, now, policy)
    return await _save(conn, outbox, tenant_id, before, transition, now=now)


async def renew_subscription(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    subscription_id: str,
    *,
    now: datetime,
) -> Subscription:
    """The current period is over: the next one starts (applying a scheduled plan), or the
    subscription is canceled or ends. For the engine, one period per call; no public route."""
    before = await _load(conn, tenant_id, subscription_id, for_update=True)
    policy = await repository.get_policy(conn, tenant_id)
    transition = domain.renew(before.state, now, policy)
    return await _save(conn, outbox, tenant_id, before, transition, now=now)


# -- saving a transition ----------------------------------------------------------------------


def _after(
    before: StoredSubscription,
    transition: Transition,
    now: datetime,
    new_plan: PlanVersion | None,
) -> StoredSubscription:
    """`before` moved by `transition`, with the plan versions it is now on and scheduled for.

    The domain knows plans, not their versions: a plan change moves to (or schedules)
    `new_plan`; a renewal that applies the scheduled plan moves to the scheduled version;
    a transition that drops the schedule (a cancellation) drops its version too.
    """
    state = transition.subscription
    plan, scheduled = before.plan, before.scheduled_plan
    if transition.action is Action.CHANGE_PLAN:
        assert new_plan is not None
        if state.scheduled_plan is not None:
            scheduled = new_plan
        else:
            plan, scheduled = new_plan, None
    elif state.scheduled_plan is None and scheduled is not None:
        applied = transition.action is Action.RENEW and state.status not in (
            SubscriptionStatus.CANCELED,
            SubscriptionStatus.ENDED,
        )
        plan = scheduled if applied else plan
        scheduled = None
    return replace(
        before,
        state=state,
        plan=plan,
        scheduled_plan=scheduled,
        revision=before.revision + 1,
        updated_at=now,
    )


async def _save(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    before: StoredSubscription,
    transition: Transition,
    *,
    now: datetime,
    new_plan: PlanVersion | None = None,
) -> Subscription:
    after = _after(before, transition, now, new_plan)
    await repository.update(conn, tenant_id, after)
    assert transition.previous_status is not None, "a stored subscription had a status"
    await outbox.add(
        conn,
        SUBSCRIPTION_UPDATED,
        SubscriptionUpdated(
            **_fields(after),
            transition=TransitionMade(
                action=transition_name(transition.action),
                from_status=transition.previous_status,
                to_status=after.state.status,
                at=transition.at,
            ),
        ),
        subject=after.customer_id,
        tenant_id=tenant_id,
    )
    await _record_effects(conn, outbox, tenant_id, before, after, transition)
    return to_public(after)


async def _record_effects(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    before: StoredSubscription | None,
    after: StoredSubscription,
    transition: Transition,
) -> None:
    """Write what the transition bills, if it bills anything.

    Credits are for the plan version the subscription was on, charges for the one it is
    on after the transition (a plan change credits the old and charges the new).
    """
    if not transition.effects:
        return
    currency: Currency = after.plan.currency

    def recorded(effect: BillingEffect) -> RecordedEffect:
        plan = before.plan if effect.is_credit and before is not None else after.plan
        if effect.plan_id != plan.plan_id:  # pragma: no cover - a domain invariant
            raise RuntimeError(f"effect on {effect.plan_id} does not match {plan.plan_id}")
        return RecordedEffect(
            reason=effect.reason,
            plan_id=plan.plan_id,
            plan_version=plan.version,
            base_fee_timing=plan.base_fee_timing,
            amount=effect.amount.to_wire(),
            service_start=effect.service_start,
            service_end=effect.service_end,
        )

    net: Money = transition.net
    await outbox.add(
        conn,
        BILLING_EFFECTS_RECORDED,
        BillingEffectsRecorded(
            subscription_id=after.id,
            customer_id=after.customer_id,
            revision=after.revision,
            action=transition_name(transition.action),
            at=transition.at,
            currency=currency,
            effects=[recorded(effect) for effect in transition.effects],
            net=net.to_wire(),
        ),
        subject=after.customer_id,
        tenant_id=tenant_id,
    )


def _fields(stored: StoredSubscription) -> dict[str, object]:
    """The `SubscriptionFields` of a stored subscription."""
    state = stored.state
    fields = SubscriptionFields(
        **_shared_fields(stored),
        subscription_id=stored.id,
        revision=stored.revision,
        base_fee=stored.plan.base_fee.to_wire(),
        base_fee_timing=stored.plan.base_fee_timing,
        ends_at=state.terms.ends_at,
        current_period_fee=None if state.period_fee is None else state.period_fee.to_wire(),
        coupons=[
            SubscriptionCoupon(coupon_id=c.coupon_id, code=c.code, start_period=c.start_period)
            for c in stored.coupons
        ],
    )
    return {name: getattr(fields, name) for name in SubscriptionFields.model_fields}
