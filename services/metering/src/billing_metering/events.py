"""Topics the metering service produces."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field

from billing_common.cycle import PERIOD_CLOSING, CyclePeriod
from billing_common.events import EventData, Topic
from billing_common.usage_events import USAGE_EVENTS_RECEIVED, UsageEventsReceived
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_metering.meters import MeterDefinition


class MeterChanged(EventData):
    """A meter as it is after a change: the whole definition (event-carried state transfer)."""

    meter: MeterDefinition
    version: int = Field(ge=1, description="1 at creation, +1 per change")
    archived: bool = False
    changed_at: AwareDatetime


METER_CREATED = Topic(
    "metering",
    "meter_created",
    MeterChanged,
    "A meter was defined; carries the whole definition.",
)
METER_UPDATED = Topic(
    "metering",
    "meter_updated",
    MeterChanged,
    "A meter's name or filters changed; carries the whole definition. Usage already "
    "recorded keeps the meter it was recorded with.",
)
METER_ARCHIVED = Topic(
    "metering",
    "meter_archived",
    MeterChanged,
    "A meter was deleted (archived): it counts no new events; its history stays queryable.",
)


class MeterUsage(EventData):
    """What one batch added to one meter of one customer."""

    meter_key: str
    events: int = Field(ge=1, description="events of this batch the meter counted")
    value_delta: Decimal | None = Field(
        description="sum of the batch's values (count and sum meters); null where the "
        "aggregation is not additive"
    )
    period_start: AwareDatetime = Field(description="the accumulator period (UTC month)")
    period_value: Decimal | None = Field(
        description="the meter's value for the period so far, over all groups, where the "
        "accumulators keep it; null otherwise"
    )
    first_event_at: AwareDatetime
    last_event_at: AwareDatetime


class UsageRecorded(EventData):
    """Usage one consumed batch recorded for one customer: compact, for spend alerts."""

    customer_id: str
    usage: list[MeterUsage] = Field(min_length=1)
    recorded_at: AwareDatetime


USAGE_RECORDED = Topic(
    "metering",
    "usage_recorded",
    UsageRecorded,
    "Usage was recorded for a customer: per meter, the batch's events and the period's value "
    "so far.",
)


PARKED_EVENTS_RELEASED = Topic(
    "metering",
    "parked_events_released",
    UsageEventsReceived,
    "Usage events that waited for their customer to exist, sent again once it does; keyed "
    "by the customer id, read by metering's usage consumer like the gateway's.",
)


class PeriodUsage(EventData):
    meter_key: str
    group: dict[str, str] = Field(description="the meter's group_by dimensions and values")
    quantity: Decimal
    transactions: list[Decimal] = Field(
        default_factory=list,
        description="each event's value in the order they happened, for a meter some plan "
        "prices transaction by transaction (a percentage price); empty otherwise",
    )


class PeriodUsageComputed(CyclePeriod):
    """A closing period's usage: each meter's value for the customer over the period, per
    group, read exactly from the deduplicated events."""

    usage: list[PeriodUsage]
    computed_at: AwareDatetime


PERIOD_USAGE_COMPUTED = Topic(
    "metering",
    "period_usage_computed",
    PeriodUsageComputed,
    "The usage of a closing period, per meter and group: rating rates it.",
)


#: Pricing models that rate each event's value on its own (fee per transaction, minimum
#: and maximum per transaction): their period usage carries the transactions.
PER_TRANSACTION_MODELS = frozenset({"percentage"})


class PlanChargePrice(EventData):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str


class PlanCharge(EventData):
    model_config = ConfigDict(extra="ignore", frozen=True)

    meter_key: str
    price: PlanChargePrice


class PlanMeters(EventData):
    """What metering reads of `billing.pricing.plan_published`: which meters a plan version
    charges on (so that a meter in use is not deleted). A tolerant reader: the rest of the
    plan is ignored, and pricing may add fields without metering changing."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    plan_id: str
    meter_keys: list[str]
    charges: list[PlanCharge] = Field(default_factory=list)

    @property
    def per_transaction_meters(self) -> set[str]:
        """The meters this version prices transaction by transaction."""
        return {c.meter_key for c in self.charges if c.price.model in PER_TRANSACTION_MODELS}


PLAN_PUBLISHED_METERS = Topic(
    "pricing",
    "plan_published",
    PlanMeters,
    "A plan version was published (read by metering for the meters it charges on).",
)

CONSUMES: tuple[Topic[Any], ...] = (
    PERIOD_CLOSING,
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    PLAN_PUBLISHED_METERS,
    USAGE_EVENTS_RECEIVED,
    PARKED_EVENTS_RELEASED,
)


PRODUCES: tuple[Topic[Any], ...] = (
    METER_CREATED,
    METER_UPDATED,
    METER_ARCHIVED,
    USAGE_RECORDED,
    PARKED_EVENTS_RELEASED,
    PERIOD_USAGE_COMPUTED,
)
