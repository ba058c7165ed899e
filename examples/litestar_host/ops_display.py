"""The host's display policy: what operators may see of job data."""

from __future__ import annotations

from typing import Any

from oban_powertools import DisplayContext

SECRET_KEYS = frozenset({"password", "token", "api_key", "secret"})


class PowertoolsDisplay:
    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None:
        if context.field is not None and context.field.lower() in SECRET_KEYS:
            return "[redacted]"
        return None
