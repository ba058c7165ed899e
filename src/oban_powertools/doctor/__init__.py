"""``oban-powertools doctor``: what is missing for a working control plane, and the fix.

Each check reports ``ok``, ``fail`` (with the fix) or ``skip`` (not applicable, or not
checkable because something it depends on failed, which is reported once, where it
failed). The checks only read: doctor never changes the database or the host's files.
The checks live by what they look at (``host``: the config and its seams; ``database``:
PostgreSQL, the schemas and the running nodes; ``http``: the mount and the bridge);
``runner`` runs them in order and ``report`` prints them.
"""

from .check import CHECKS, Check, DoctorOptions
from .database import OBAN_TABLES
from .report import can_print_marks, failed, render_json, render_text
from .runner import run

__all__ = [
    "CHECKS",
    "OBAN_TABLES",
    "Check",
    "DoctorOptions",
    "can_print_marks",
    "failed",
    "render_json",
    "render_text",
    "run",
]
