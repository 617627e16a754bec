from __future__ import annotations

import pytest

from billing_customers.domain import validate_timezone


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_known_timezones_pass(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize("name", ["Mars/Olympus", "europe/paris", "../etc/passwd", "", "+01:00"])
def test_unknown_timezones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an IANA timezone"):
        validate_timezone(name)
