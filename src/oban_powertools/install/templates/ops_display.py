# ==========================================================================================
#  STARTER: THE HOST OWNS THIS FILE.
#
#  Written once by `oban-powertools install`, which never overwrites it after you edit it.
#  As generated it redacts nothing: every value is shown as the library renders it.
#  Decide what operators may see of your job arguments, metadata and errors.
# ==========================================================================================
"""The display policy for oban-powertools: redaction and labels for every shown value.

The library passes every value it renders on a page, in forensics, exports or the bridge
through ``display``, once, in one place; nested data (job args and meta) key by key. It
runs for every value on every page, so keep it a plain, fast method: not ``async def``.
"""

from __future__ import annotations

from typing import Any

from oban_powertools import DisplayContext

# Field names whose values no operator should read, e.g. in job args.
SECRET_FIELDS = frozenset({"password", "token", "api_key", "secret", "authorization"})


class PowertoolsDisplay:
    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None:
        """The text to show instead of ``value``, or None to show the library's default.

        ``kind`` says what the value is (``"args"``, ``"meta"``, ``"error"``, ``"queue"``,
        ``"worker"``, ``"principal"``, ``"reason"`` ...); ``context.surface`` where it is
        going (``"page"``, ``"audit"``, ``"forensics"``, ``"export"``, ``"bridge"``),
        ``context.resource`` what it belongs to, ``context.field`` its key inside nested
        data and ``context.extra.get("path")`` the dotted key path. Returning a string for
        a nested value hides the whole subtree. A redaction rule looks like::

            if context.field is not None and context.field.lower() in SECRET_FIELDS:
                return "[redacted]"
        """
        return None
