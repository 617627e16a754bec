"""The public API shapes of meters and usage (validated by the gateway and by the service)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from billing_common.errors import ValidationFailed
from billing_metering.domain import WindowSize
from billing_metering.meters import MAX_EVENT_TYPES, Aggregation, MeterDefinition, PropertyFilter

#: A quantity on the wire: a decimal string, so no client reads it through a float.
Quantity = Annotated[Decimal, PlainSerializer(lambda value: f"{value:f}", return_type=str)]


class MeterCreate(MeterDefinition):
    """`POST /v1/meters`: a meter definition (see `MeterDefinition` for every rule)."""


class MeterUpdate(BaseModel):
    """`PATCH /v1/meters/{key}`: what may change about a meter.

    Name, event types and filters decide which future events count; usage
    already recorded keeps the meter it was recorded with. The aggregation,
    value property, grouping and carry-over are what stored usage means, so
    they never change: define a new meter instead.
    """

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    event_types: (
        Annotated[tuple[str, ...], Field(min_length=1, max_length=MAX_EVENT_TYPES)] | None
    ) = None
    filters: tuple[PropertyFilter, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _immutable_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            frozen = sorted(set(data) & IMMUTABLE_METER_FIELDS)
            if frozen:
                raise MeterFieldImmutable(
                    f"{', '.join(frozen)} of a meter cannot change: usage already recorded "
                    f"means what the meter said; define a new meter instead",
                    fields=frozen,
                )
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.name is None and self.event_types is None and self.filters is None:
            raise ValidationFailed(
                "a meter update names at least one of name, event_types, filters"
            )
        return self


IMMUTABLE_METER_FIELDS = frozenset(
    {"key", "aggregation", "value_property", "operation_property", "group_by", "carry_over"}
)


class MeterFieldImmutable(ValidationFailed):
    code = "meter_field_immutable"
    title = "This field of a meter cannot change"


class Meter(BaseModel):
    """A meter as the API returns it."""

    model_config = ConfigDict(frozen=True)

    object: Literal["meter"] = "meter"
    key: str
    name: str
    event_types: tuple[str, ...]
    aggregation: Aggregation
    value_property: str | None
    operation_property: str | None
    filters: tuple[PropertyFilter, ...]
    group_by: tuple[str, ...]
    carry_over: bool
    version: int
    archived: bool
    plans: list[str] = Field(
        default_factory=list,
        description="the plans with a published version that charges on this meter: while "
        "there is one, the meter cannot be deleted",
    )
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def of(
        cls,
        definition: MeterDefinition,
        *,
        version: int,
        archived: bool,
        created_at: datetime,
        updated_at: datetime,
        plans: list[str] | None = None,
    ) -> Meter:
        return cls(
            **definition.model_dump(),
            version=version,
            archived=archived,
            plans=plans or [],
            created_at=created_at,
            updated_at=updated_at,
        )

    def definition(self) -> MeterDefinition:
        return MeterDefinition.model_validate(
            self.model_dump(include=set(MeterDefinition.model_fields))
        )


class MeterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Meter]


class MeterListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_archived: bool = False


def _group_filter(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        dimension, separator, _ = value.partition(":")
        if not separator or not dimension:
            raise ValidationFailed(
                f"group filter {value!r} must be 'dimension:value' (repeat it for more values)"
            )
    return values


class UsageQuery(BaseModel):
    """The query string of the usage endpoints. `from` and `to` are half-open: `[from, to)`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    window_size: WindowSize | None = Field(
        default=None, description="minute, hour, day or month; none: one value for the range"
    )
    group: Annotated[tuple[str, ...], AfterValidator(_group_filter)] = Field(
        default=(),
        description="Keep groups by value: `group=region:eu` (repeat for more values)",
    )
    source: Literal["auto", "accumulator", "store"] = Field(
        default="auto",
        description="auto: the Redis accumulators when the range is one whole current "
        "accumulator period without windows, else ClickHouse; accumulator or store: force one",
    )


class MeterUsageQuery(UsageQuery):
    customer: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="Our customer id or the customer's external id; none: all"
    )


class CustomerUsageQuery(UsageQuery):
    meter: Annotated[str, Field(min_length=1, max_length=63)]


class UsageValue(BaseModel):
    customer_id: str
    group: dict[str, str]
    window_start: AwareDatetime
    window_end: AwareDatetime
    value: Quantity


class Usage(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    object: Literal["usage"] = "usage"
    meter: str
    aggregation: Aggregation
    from_: AwareDatetime = Field(serialization_alias="from")
    to: AwareDatetime
    window_size: WindowSize | None
    source: Literal["accumulator", "store"]
    data: list[UsageValue]
