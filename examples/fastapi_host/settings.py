"""The example host's settings, from the environment like a real deployment."""

from __future__ import annotations

import os

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/oban_powertools_demo"
)
SESSION_SECRET = os.environ.get("SESSION_SECRET", "demo-only-secret-change-me")
CSRF_SECRET = os.environ.get("OBAN_POWERTOOLS_CSRF_SECRET", "demo-only-csrf-secret-change-me")
BRIDGE_URL = os.environ.get("OBAN_POWERTOOLS_BRIDGE_URL") or None
# Queue options are oban's, plus the limiters Powertools enforces at fetch (Oban Pro's
# option names): at most one export per customer at a time across every node, and at
# most 60 emails started in any minute.
QUEUES = {
    "default": 10,
    "mailers": {"limit": 5, "rate_limit": {"allowed": 60, "period": 60}},
    "exports": {
        "limit": 4,
        "global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": ["customer_id"]}},
    },
}
