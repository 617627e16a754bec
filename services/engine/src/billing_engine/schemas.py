"""The public API shapes of test clocks and billing runs (validated by the gateway and by
the service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing_common.ids import CustomerId, TestClockId
from billing_engine.domain import ClockStatus

SagaStatus = Literal["pending", "done", "failed"]


class TestClockCreate(BaseModel):
    """`POST /v1/test_clocks`."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid")

    frozen_time: AwareDatetime = Field(description="Where the clock starts")
    name: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class TestClockAdvance(BaseModel):
    """`POST /v1/test_clocks/{test_clock_id}/advance`."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    to: AwareDatetime = Field(description="The new frozen time; later than the current one")


class TestClockAttach(BaseModel):
    """`POST /v1/test_clocks/{test_clock_id}/customers`."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId = Field(description="A customer with no subscription yet")


class SagaCounts(BaseModel):
    """The period closes (sagas) a test clock started, by status."""

    pending: int
    done: int
    failed: int


class TestClock(BaseModel):
    """A test clock as the API returns it. `status` is `ready` once every period its
    advances passed is closed, invoiced and renewed; `advancing` until then;
    `internal_failure` if a close gave up after its retries."""

    __test__ = False
    model_config = ConfigDict(frozen=True)

    object: str = "test_clock"
    id: TestClockId
    name: str | None
    frozen_time: AwareDatetime
    status: ClockStatus
    customer_count: int
    sagas: SagaCounts
    created_at: AwareDatetime


class TestClockList(BaseModel):
    __test__ = False

    object: str = "list"
    data: list[TestClock]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class TestClockListQuery(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: TestClockId | None = None


class BillingRun(BaseModel):
    """One period close (a saga): `pending` until its invoice is finalized (`done`);
    re-emitted after a timeout, `failed` once its attempts are spent."""

    model_config = ConfigDict(frozen=True)

    object: str = "billing_run"
    saga_id: uuid.UUID
    subscription_id: str
    customer_id: str
    test_clock_id: str | None
    period_start: AwareDatetime
    period_end: AwareDatetime
    status: SagaStatus
    attempts: int
    started_at: AwareDatetime
    last_emitted_at: AwareDatetime
    completed_at: AwareDatetime | None
    invoice_id: str | None


class BillingRunList(BaseModel):
    object: str = "list"
    data: list[BillingRun]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page")


class BillingRunListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    starting_after: uuid.UUID | None = Field(default=None, description="A saga id")
    status: SagaStatus | None = None
    subscription_id: str | None = None
    customer_id: str | None = None
    test_clock_id: TestClockId | None = None
