"""The example host's settings, from the environment like a real deployment."""

from __future__ import annotations

import os

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/oban_powertools_demo"
)
SESSION_SECRET = os.environ.get("SESSION_SECRET", "demo-only-secret-change-me")
CSRF_SECRET = os.environ.get("OBAN_POWERTOOLS_CSRF_SECRET", "demo-only-csrf-secret-change-me")
BRIDGE_URL = os.environ.get("OBAN_POWERTOOLS_BRIDGE_URL") or None
QUEUES = {"default": 10, "mailers": 5, "exports": 2}
