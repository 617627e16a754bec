"""The route table of the public API: the one source of forwarding and of the OpenAPI document.

A service exposes an endpoint by adding a `RouteSpec` to its group below (and
to `ROUTES` if the group is new); the gateway then authenticates, rate-limits,
validates and forwards it, and `/openapi.json` and `/docs` describe it. The
service itself serves the same method and path (see its `api.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from billing_audit.schemas import AuditEventList, AuditEventQuery
from billing_customers.schemas import Customer, CustomerCreate, CustomerList, CustomerListQuery

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_PATH_PARAM = re.compile(r"{([a-z_][a-z0-9_]*)}")
_PATH = re.compile(r"^/v1(/([a-z0-9_]+|{[a-z_][a-z0-9_]*}))+$")


@dataclass(frozen=True)
class RouteSpec:
    """One operation of the public API and the service that owns it.

    `request_model` validates the JSON body (None: the route takes no body);
    `query_model` validates the query string (None: no query parameters);
    `idempotent`: the route honours `Idempotency-Key` (every POST does).
    """

    method: HttpMethod
    path: str
    service: str
    summary: str
    request_model: type[BaseModel] | None
    query_model: type[BaseModel] | None
    response_model: type[BaseModel]
    success_status: int = 200
    idempotent: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not _PATH.match(self.path):
            raise ValueError(f"{self.path!r} must be /v1 then snake_case or {{param}} parts")
        if self.method == "GET" and self.request_model is not None:
            raise ValueError(f"GET {self.path} cannot take a request body")

    @property
    def path_params(self) -> list[str]:
        """The names of the `{param}` parts of the path, in order."""
        return _PATH_PARAM.findall(self.path)

    @property
    def operation_id(self) -> str:
        """A stable id for the OpenAPI document: `get_v1_customers_customer_id`."""
        parts = [part.strip("{}") for part in self.path.strip("/").split("/")]
        return "_".join([self.method.lower(), *parts])


CUSTOMERS: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/v1/customers",
        service="customers",
        summary="Create a customer",
        request_model=CustomerCreate,
        query_model=None,
        response_model=Customer,
        success_status=201,
        idempotent=True,
    ),
    RouteSpec(
        "GET",
        "/v1/customers",
        service="customers",
        summary="List customers",
        description="Oldest first; pass `next_cursor` as `starting_after` for the next page.",
        request_model=None,
        query_model=CustomerListQuery,
        response_model=CustomerList,
    ),
    RouteSpec(
        "GET",
        "/v1/customers/{customer_id}",
        service="customers",
        summary="Retrieve a customer",
        request_model=None,
        query_model=None,
        response_model=Customer,
    ),
)

AUDIT: tuple[RouteSpec, ...] = (
    RouteSpec(
        "GET",
        "/v1/audit_events",
        service="audit",
        summary="List audit events",
        description="Every state change, oldest first; filter by `subject` or `type`.",
        request_model=None,
        query_model=AuditEventQuery,
        response_model=AuditEventList,
    ),
)

ROUTES: tuple[RouteSpec, ...] = (*CUSTOMERS, *AUDIT)
