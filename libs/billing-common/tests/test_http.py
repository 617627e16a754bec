from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing_common.errors import ValidationFailed
from billing_common.http import (
    exception_handlers,
    json_response,
    parse_body,
    parse_query,
    reject_nul_characters,
)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = 0


async def create(request: Request) -> Response:
    return json_response(await parse_body(request, Thing, max_bytes=500_000), status_code=201)


async def search(request: Request) -> Response:
    return json_response(parse_query(request, Thing))


APP = Starlette(
    routes=[Route("/things", create, methods=["POST"]), Route("/things", search, methods=["GET"])],
    exception_handlers=exception_handlers(),
)


async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"content": b'{"name": '}, 400, "malformed_body"),
        ({"content": b""}, 400, "malformed_body"),
        ({"content": b"[" * 100_000 + b"]" * 100_000}, 400, "malformed_body"),
        ({"content": b'{"name": "x", "count": ' + b"9" * 5000 + b"}"}, 400, "malformed_body"),
        ({"content": b'{"name": 1}'}, 422, "validation_failed"),
        ({"content": b'{"name": "x", "colour": "red"}'}, 422, "validation_failed"),
        ({"content": b'{"name": "a\\u0000b"}'}, 422, "validation_failed"),
        ({"content": b'{"name": "' + b"x" * 600_000 + b'"}'}, 413, "payload_too_large"),
        (
            {"content": b"name=x", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
    ],
)
async def test_bad_bodies_are_problems(
    request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    kwargs = {"headers": {"content-type": "application/json"}, **request_kwargs}
    response = await call("POST", "/things", **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["instance"] == "/things"


async def test_a_valid_body_passes() -> None:
    response = await call("POST", "/things", json={"name": "x", "count": 2})
    assert response.status_code == 201
    assert response.json() == {"name": "x", "count": 2}


async def test_validation_errors_name_each_field() -> None:
    response = await call("POST", "/things", json={"name": 1, "count": "many"})
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"name", "count"}


async def test_queries_are_validated_and_refuse_nul() -> None:
    assert (await call("GET", "/things?name=x&count=3")).json() == {"name": "x", "count": 3}
    bad = await call("GET", "/things?name=%00")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "name"


async def test_unknown_routes_and_methods_are_problems_with_allow() -> None:
    missing = await call("GET", "/nothing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = await call("DELETE", "/things")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET, HEAD, POST"


def test_nul_is_found_at_any_depth_with_its_path() -> None:
    with pytest.raises(ValidationFailed) as caught:
        reject_nul_characters({"a": [{"b": "ok"}, {"c": "x\x00"}]})
    assert caught.value.detail == "a.1.c: must not contain NUL characters"
    reject_nul_characters({"a": ["fine", 1, None, {"b": 2.5}]})
