from __future__ import annotations

from billing_common.errors import (
    BillingError,
    Conflict,
    InvalidEvent,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
    is_retryable,
)


def test_problem_document_has_the_rfc_9457_members_and_extensions() -> None:
    problem = ValidationFailed("name: too short", errors=[{"field": "name"}]).to_problem("/v1/x")
    assert problem == {
        "type": "https://docs.bill.sh/errors/validation_failed",
        "title": "Validation failed",
        "status": 422,
        "detail": "name: too short",
        "code": "validation_failed",
        "instance": "/v1/x",
        "errors": [{"field": "name"}],
    }


def test_subclasses_carry_their_status_and_code() -> None:
    assert (Conflict.status, Conflict.code) == (409, "conflict")
    assert RateLimited.status == 429
    assert RateLimited.retryable


def test_retry_classification() -> None:
    assert is_retryable(ServiceUnavailable("db down"))
    assert not is_retryable(InvalidEvent("bad json"))
    assert not is_retryable(BillingError("bug"))
    assert is_retryable(ConnectionResetError())  # infrastructure faults are transient
