"""The one redaction path: every value bound for a page, an export or the bridge passes here.

The host's display policy (``config.display``) decides per value: it returns a string to
show instead, or None for the default rendering. :class:`Display` applies it

* once per scalar value (reasons, principal labels, worker and queue names);
* per key path inside nested data (job args and meta, cron args, audit snapshots), with
  ``field`` set to the key name, so a policy that redacts ``password`` catches
  ``{"user": {"password": ...}}`` as well;
* to free text that may embed such data (error tracebacks, bridged pages): ``key: value``
  pairs found in the text are offered to the policy under their key, and values the policy
  redacted elsewhere in the same record are masked wherever they reappear.

A job may also say itself which of its args are secret: a typed worker lists the paths of
its sensitive fields in the job's ``meta.redact`` (``["card.number"]``). Those paths are
masked whatever the policy says (the policy is not even shown their values), and the
masked values join the record's known secrets, so a traceback quoting them is masked too.
Callers pass ``redact=job_redactions(meta)`` with a job's args. Free text that is not tied
to one job (a bridged Oban Web page) has no ``meta.redact``: there the field names
typed workers declared sensitive in this process (:func:`declare_sensitive_keys`) are
masked in every ``key: value`` pair, which may hide more than needed, never less.

Templates never call the policy; read models and forensics hand them strings that have
already been through here, so nothing reaches a page by another route.
"""

from __future__ import annotations

import html
import inspect
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .seams import DisplayContext, DisplayPolicy, Resource

# Values shorter than this are not masked as "known secrets" in free text: replacing every
# "1" or "yes" in a traceback would destroy it, and such values carry no secret anyway.
MIN_KNOWN_SECRET_LENGTH = 4

# Nesting deeper than this is shown as a placeholder rather than walked, so a hostile
# payload cannot make a page render slowly; the placeholder reveals nothing.
MAX_DEPTH = 32

# What a path listed in a job's meta.redact shows instead of its value.
REDACTED = "[redacted]"
REDACT_KEY = "redact"


# Field names typed workers declared sensitive, gathered as they are declared (as oban
# gathers its workers): free text without a job's meta.redact masks pairs under them.
_SENSITIVE_KEYS: set[str] = set()


def declare_sensitive_keys(names: Iterable[str]) -> None:
    """Mask ``key: value`` pairs under these field names in free text (bridged pages,
    tracebacks); called by ``@typed_worker`` for its schema's sensitive fields."""
    _SENSITIVE_KEYS.update(n for n in names if n)


def sensitive_keys() -> frozenset[str]:
    return frozenset(_SENSITIVE_KEYS)


def job_redactions(meta: Any) -> frozenset[str]:
    """The args paths a job's ``meta.redact`` lists (its typed worker's sensitive
    fields); anything malformed there is ignored, never shown."""
    paths = meta.get(REDACT_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(paths, list):
        return frozenset()
    return frozenset(p for p in paths if isinstance(p, str) and p)


# A key followed by a value, in the notations that job data shows up in when it is printed:
# JSON ("k": "v"), Python reprs ('k': 'v', k='v'), Elixir maps ("k" => "v"), their
# HTML-escaped forms inside bridged pages, and all of these escaped again inside strings
# (\"k\": \"v\": JSON in a JSON error field, a few levels deep). The key group is a plain
# identifier; the value is a quoted string (in the same quote as its key, possibly
# escaped) or a bare token. Keys start only at a word boundary, which keeps the scan
# linear on long runs of letters.
_QUOTE = r"(?:\\{0,7}(?:\"|'|&quot;|&\#34;|&\#39;|&\#x27;|&apos;))"
_PAIR = re.compile(
    rf"(?P<kq>{_QUOTE})?(?<![A-Za-z0-9_\-])(?P<key>[A-Za-z_][A-Za-z0-9_\-]{{0,63}})(?P=kq)?"
    rf"(?P<sep>\s*(?::|=&gt;|=>|=)\s*)"
    rf"(?:(?P<vq>{_QUOTE})(?P<qval>.{{0,2000}}?)(?<!\\)(?P=vq)"
    rf"|(?P<bare>[^\s,;)}}\]<&\"']{{1,200}}))",
    re.DOTALL,
)


@dataclass(slots=True)
class Shown:
    """The result of walking nested data: the data as it may be shown, and what was masked.

    ``secrets`` holds the original string values the policy replaced, so free text of the
    same record (an error traceback quoting the args) can be masked too.
    """

    value: Any
    secrets: dict[str, str] = field(default_factory=dict)


class Display:
    """The host's display policy, bound to one surface ("page", "forensics", "bridge" ...)."""

    def __init__(self, policy: DisplayPolicy, surface: str = "page") -> None:
        self.policy = policy
        self.surface = surface

    def on(self, surface: str) -> Display:
        return Display(self.policy, surface)

    # -- one value --------------------------------------------------------------------

    def _ask(
        self,
        kind: str,
        value: Any,
        resource: Resource | None,
        field: str | None,
        path: str | None = None,
    ) -> str | None:
        extra = {"path": path} if path is not None else {}
        shown = self.policy.display(
            kind, value, DisplayContext(self.surface, resource, field, extra)
        )
        if inspect.isawaitable(shown):
            # Closing it avoids a "never awaited" warning; failing keeps the value hidden.
            close = getattr(shown, "close", None)
            if callable(close):
                close()
            raise TypeError(
                "the display policy's display() must be synchronous and return str or None"
            )
        if shown is not None and not isinstance(shown, str):
            raise TypeError(
                f"the display policy returned {type(shown).__name__}; return a str or None"
            )
        return shown

    def text(
        self,
        kind: str,
        value: Any,
        *,
        resource: Resource | None = None,
        field: str | None = None,
    ) -> str:
        """One value as text: the policy's string, or the default rendering.

        Containers are walked key by key (see :meth:`tree`) and shown as compact JSON.
        """
        if isinstance(value, Mapping | list | tuple):
            return compact_json(self.tree(kind, value, resource=resource, field=field).value)
        shown = self._ask(kind, value, resource, field)
        return shown if shown is not None else default_text(value)

    def optional(
        self,
        kind: str,
        value: Any,
        *,
        resource: Resource | None = None,
        field: str | None = None,
    ) -> str | None:
        """Like :meth:`text`, but None (an absent value) stays None."""
        if value is None:
            return None
        return self.text(kind, value, resource=resource, field=field)

    # -- nested data ------------------------------------------------------------------

    def tree(
        self,
        kind: str,
        value: Any,
        *,
        resource: Resource | None = None,
        field: str | None = None,
        redact: Collection[str] = (),
    ) -> Shown:
        """Nested data with the policy applied at every key path.

        The policy is asked about each node with ``field`` = its key (list items inherit
        their list's key) and ``extra["path"]`` = the dotted path; a string it returns
        replaces that whole subtree. Paths in ``redact`` (a job's ``meta.redact``) are
        masked without asking.
        """
        secrets: dict[str, str] = {}

        def walk(node: Any, key: str | None, path: str, depth: int) -> Any:
            if path and path in redact:
                shown: str | None = REDACTED
            else:
                shown = self._ask(kind, node, resource, key, path or None)
            if shown is not None:
                for text in _strings(node):
                    if len(text) >= MIN_KNOWN_SECRET_LENGTH:
                        secrets[text] = shown
                return shown
            if depth >= MAX_DEPTH and isinstance(node, Mapping | list | tuple):
                return "[nested too deeply to show]"
            if isinstance(node, Mapping):
                return {
                    str(k): walk(v, str(k), f"{path}.{k}" if path else str(k), depth + 1)
                    for k, v in node.items()
                }
            if isinstance(node, list | tuple):
                return [walk(v, key, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
            return _jsonable(node)

        return Shown(walk(value, field, "", 0), secrets)

    def json(
        self,
        kind: str,
        value: Any,
        *,
        resource: Resource | None = None,
        field: str | None = None,
        redact: Collection[str] = (),
    ) -> tuple[str, dict[str, str]]:
        """Nested data as indented JSON for a ``<pre>``, and the masked values."""
        shown = self.tree(kind, value, resource=resource, field=field, redact=redact)
        return pretty_json(shown.value), shown.secrets

    # -- free text --------------------------------------------------------------------

    def free_text(
        self,
        kind: str,
        value: Any,
        *,
        resource: Resource | None = None,
        field: str | None = None,
        known: Mapping[str, str] | None = None,
        html_escaped: bool = False,
    ) -> str:
        """Text that may quote job data (a traceback, a bridged page).

        First the policy sees the whole text; when it leaves it alone, values it redacted
        elsewhere in the record (``known``) are masked, then ``key: value`` pairs in the
        text are offered to the policy under their key.
        """
        if value is None:
            return ""
        whole = self._ask(kind, value, resource, field)
        if whole is not None:
            return whole
        text = value if isinstance(value, str) else default_text(value)
        text = mask_known(text, known or {}, html_escaped=html_escaped)
        return self.scrub_pairs(kind, text, resource=resource, html_escaped=html_escaped)

    def scrub_pairs(
        self,
        kind: str,
        text: str,
        *,
        resource: Resource | None = None,
        html_escaped: bool = False,
    ) -> str:
        """Offer each ``key: value`` pair found in ``text`` to the policy under its key."""
        parts: list[str] = []
        pos = 0
        while (match := _PAIR.search(text, pos)) is not None:
            parts.append(text[pos : match.start()])
            pos = match.end()
            key = match["key"]
            raw = match["qval"] if match["vq"] is not None else match["bare"]
            value = html.unescape(raw) if html_escaped else raw
            if key in _SENSITIVE_KEYS:
                shown: str | None = REDACTED
            else:
                shown = self._ask(kind, value, resource, key)
            quote = match["vq"] or ""
            head = f"{match['kq'] or ''}{key}{match['kq'] or ''}{match['sep']}"
            if shown is not None:
                masked = html.escape(shown, quote=True) if html_escaped else shown
                parts.append(f"{head}{quote}{masked}{quote}")
                continue
            # The policy let this value through, but the value may hold or begin other
            # pairs that the match swallowed: an error quoting a dict ('error: "failed
            # for {'password': 'x'}"'), a bare value cut short ("args: password='x'"), a
            # quoted string that is really the next key ('args: "password": "x"'). Keep
            # the key as it is and scan again from the value's start, in the whole text.
            # The scan always moves forward, so it ends.
            value_start = match.start("vq") if match["vq"] is not None else match.start("bare")
            parts.append(text[match.start() : value_start])
            pos = value_start
        parts.append(text[pos:])
        return "".join(parts)


def mask_known(text: str, known: Mapping[str, str], *, html_escaped: bool = False) -> str:
    """Replace every occurrence of a value the policy already redacted in the same record."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(known, key=len, reverse=True):
        replacement = known[secret]
        if html_escaped:
            text = text.replace(html.escape(secret, quote=True), html.escape(replacement))
        text = text.replace(secret, replacement)
    return text


def merge_secrets(*parts: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part)
    return merged


def _strings(node: Any) -> Iterable[str]:
    """Every string (and number, as text) inside ``node``, for known-secret masking."""
    stack = [node]
    seen = 0
    while stack and seen < 10_000:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            yield item
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            yield str(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def default_text(value: Any) -> str:
    """How a value looks when the policy has no opinion."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return compact_json(value)
    return str(value)


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def pretty_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, default=str, ensure_ascii=False)


def error_line(text: str, *, limit: int = 240) -> str:
    """The line of a traceback that says what went wrong (its last non-empty line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"
