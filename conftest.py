"""Fixtures shared by the whole tree: the embedded stack, started once per test session.

Unit tests use none of these. Service tests take `database_url` (a real
PostgreSQL) and a fresh schema each; e2e tests take the whole stack. URLs
already set in the environment are used instead of starting servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_common.ids import uuid7
from billing_local.stack import EmbeddedStack, StackUrls


@pytest.fixture(scope="session")
def stack_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUrls]:
    data_dir = Path(tmp_path_factory.mktemp("stack"))
    with EmbeddedStack(data_dir, env=os.environ) as stack:
        yield stack.start()


@pytest.fixture(scope="session")
def database_url(stack_urls: StackUrls) -> str:
    return stack_urls.database_url


@pytest.fixture
def fresh_schema() -> str:
    """A schema name no other test uses, so service tests never see each other's rows."""
    return f"t_{uuid7().hex[-16:]}"
