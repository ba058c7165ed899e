"""Time zones of cron entries, loaded by name without letting the name reach the file system."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import CronTimezoneError
from .fields import clip

MAX_TIMEZONE_LENGTH = 64
"""Longest accepted time zone name, in characters."""

_TIMEZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")


def load_timezone(name: str) -> ZoneInfo:
    """Load an IANA time zone, raising :class:`CronTimezoneError` if it is unknown.

    Names are checked before they reach :class:`ZoneInfo` (which maps them to
    files): only ``Area/Location``-style keys of ASCII letters, digits, ``_``,
    ``+`` and ``-`` of at most 64 characters are accepted, so path-like input
    such as ``../etc/passwd`` never touches the file system.
    """
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_TIMEZONE_LENGTH
        or _TIMEZONE_NAME.fullmatch(name) is None
    ):
        shown = clip(name, MAX_TIMEZONE_LENGTH) if isinstance(name, str) else repr(name)
        raise CronTimezoneError(f"unknown time zone {shown}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronTimezoneError(f"unknown time zone {name!r}") from exc
