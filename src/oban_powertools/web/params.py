"""Ids and tokens from paths, queries and forms, checked before they reach the database.

A value that cannot be one is treated as absent (a 404 or "no such preview"), never passed
on to become a database error: PostgreSQL's bigint ends at 2**63 - 1, and no id or token
holds anything but ASCII digits or URL-safe characters.
"""

from __future__ import annotations

import re

BIGINT_MAX = 2**63 - 1
# Preview tokens are ``secrets.token_urlsafe``; the pipeline accepts at most 100 characters.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,100}")


def positive_id(raw: object) -> int | None:
    """A database id (1 .. 2**63 - 1) written in ASCII digits, else None."""
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= BIGINT_MAX else None


def preview_token(raw: object) -> str | None:
    """A string shaped like a preview token, else None."""
    return raw if isinstance(raw, str) and TOKEN.fullmatch(raw) else None
