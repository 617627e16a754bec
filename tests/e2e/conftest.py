"""Fixtures of the e2e tests: ONE whole platform per test session.

Starting the embedded stack and the 18 services takes about 30 s, so every e2e
test shares one `Platform`, started on first use under pytest's temporary folder
and stopped by the fixture's teardown whether the tests pass or fail. Tests that
crash a service restart it normally before they end (see `services`), so the next
test finds every service running with its ordinary settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from billing_local.platform import Platform, RunningPlatform
from billing_local.supervisor import ServiceSupervisor
from tests.e2e.support import Api, Services, wait_caught_up


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = Path(tmp_path_factory.mktemp("platform"))
    # The context manager stops whatever started, also when start() itself fails.
    with Platform(data_dir) as started:
        started.start()
        yield started


@pytest.fixture(scope="session")
def running(platform: Platform) -> RunningPlatform:
    assert platform.running is not None
    return platform.running


@pytest.fixture(scope="session")
def supervisor(platform: Platform) -> ServiceSupervisor:
    assert platform.supervisor is not None
    return platform.supervisor


@pytest.fixture(scope="session")
def kafka(running: RunningPlatform) -> str:
    """The Kafka bootstrap address of the embedded broker."""
    return running.stack.kafka_bootstrap


@pytest.fixture(scope="session")
def gateway(running: RunningPlatform) -> Iterator[httpx.Client]:
    """A client of the gateway without credentials."""
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=running.gateway_url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def api(running: RunningPlatform) -> Iterator[Api]:
    """The public API with the session's API key."""
    with httpx.Client(
        base_url=running.gateway_url,
        headers={"Authorization": f"Bearer {running.api_key}"},
        timeout=30,
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    ) as client:
        yield Api(client)


@pytest.fixture
def services(supervisor: ServiceSupervisor, kafka: str) -> Iterator[Services]:
    """Kill and restart services; what a test leaves crashed or reconfigured is restarted
    normally at teardown. Starts once the audit consumer has caught up, so that crash
    counters and dead-letter streaks count only the test's own messages."""
    wait_caught_up(kafka)
    helper = Services(supervisor)
    try:
        yield helper
    finally:
        helper.restore()
