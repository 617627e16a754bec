"""Customer rules: pure functions, no I/O."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def validate_timezone(name: str) -> str:
    """An IANA timezone name, as given: `validate_timezone("Europe/Paris")` is "Europe/Paris".

    Raises ValueError for names the tz database does not know (and for paths).
    """
    if name not in _ZONES:
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Paris')")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - the set above comes from the same db
        raise ValueError(f"{name!r} is not an IANA timezone") from exc
    return name


_ZONES = frozenset(available_timezones()) | {"UTC"}
