"""The checks as text for a terminal or as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .check import CHECKS, Check


def failed(checks: Sequence[Check]) -> bool:
    return any(check.status == "fail" for check in checks)


def render_json(checks: Sequence[Check]) -> str:
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", "fail", "skip")}
    return json.dumps(
        {"ok": not failed(checks), "counts": counts, "checks": [asdict(c) for c in checks]},
        indent=2,
    )


MARKS = {"ok": "✓", "fail": "✗", "skip": "-"}
ASCII_MARKS = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}


def can_print_marks(encoding: str | None) -> bool:
    try:
        "".join(MARKS.values()).encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def render_text(checks: Sequence[Check], *, ascii_only: bool = False) -> str:
    marks = ASCII_MARKS if ascii_only else MARKS
    width = max(len(name) for name in CHECKS)
    lines = []
    indent = " " * (len(marks["fail"]) + 1 + width + 2)
    for check in checks:
        lines.append(f"{marks[check.status]} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{indent}fix: {check.fix}")
    counts = [sum(c.status == s for c in checks) for s in ("ok", "fail", "skip")]
    lines.append(f"{counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
    return "\n".join(lines)
