"""The example host's settings, from the environment like a real deployment."""

from __future__ import annotations

import os
from typing import Any

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/oban_powertools_demo"
)
# Signs the login cookie. Every web process needs the same one, and a real one.
SESSION_SECRET = os.environ.get("SESSION_SECRET", "demo-only-secret-change-me")
CSRF_SECRET = os.environ.get("OBAN_POWERTOOLS_CSRF_SECRET", "demo-only-csrf-secret-change-me")
QUEUES: dict[str, int | dict[str, Any]] = {"default": 10}
