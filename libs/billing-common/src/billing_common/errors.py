"""The error hierarchy every service raises and every edge renders.

A `BillingError` carries a stable machine `code`, an HTTP `status`, and whether
the operation may succeed if retried. The gateway renders it as RFC 9457
problem+json; a Kafka consumer retries a retryable one and dead-letters the rest.
Handlers map classes, never message strings.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://docs.bill.sh/errors/"


class BillingError(Exception):
    """Base of every error the platform raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            problem["instance"] = instance
        problem.update(self.extensions)
        return problem


class InvalidRequest(BillingError):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class MalformedBody(InvalidRequest):
    code = "malformed_body"
    title = "Malformed request body"


class ValidationFailed(BillingError):
    """The input parsed but does not satisfy the schema; `errors` lists each field."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"


class Unauthenticated(BillingError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(BillingError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(BillingError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(BillingError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Conflict(BillingError):
    status = 409
    code = "conflict"
    title = "Conflict"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class IdempotentRequestInProgress(Conflict):
    code = "idempotent_request_in_progress"
    title = "A request with this idempotency key is still in progress"
    retryable = True


class PayloadTooLarge(BillingError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(BillingError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimited(BillingError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    retryable = True


class CurrencyMismatch(BillingError):
    status = 422
    code = "currency_mismatch"
    title = "Currency mismatch"


class InvalidAmount(BillingError):
    status = 422
    code = "invalid_amount"
    title = "Invalid amount"


class InvalidId(BillingError):
    status = 422
    code = "invalid_id"
    title = "Invalid id"


class ServiceUnavailable(BillingError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    retryable = True


class UpstreamTimeout(BillingError):
    status = 504
    code = "upstream_timeout"
    title = "Upstream timeout"
    retryable = True


class InvalidEvent(BillingError):
    """A consumed message that can never be processed: it is dead-lettered, not retried."""

    status = 422
    code = "invalid_event"
    title = "Invalid event"


def is_retryable(error: BaseException) -> bool:
    """Whether a consumer should retry `error` rather than dead-letter the message.

    Our own errors say so themselves; anything else (a dropped connection, a
    serialization failure, a timeout) is treated as transient: retrying an
    infrastructure fault is safe because every effect is idempotent, while
    dead-lettering it would lose a valid event.
    """
    if isinstance(error, BillingError):
        return error.retryable
    return True
