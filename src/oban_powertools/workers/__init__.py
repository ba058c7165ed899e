"""Typed workers: oban workers whose args are a dataclass or a pydantic model.

``@typed_worker(queue=..., args=ExportArgs)`` makes an ordinary oban worker (registered,
``new``/``enqueue``, resolved by name when it runs) that checks its args at enqueue and
again when the job runs, hands ``perform`` the typed object, runs lifecycle hooks around
it, honours a deadline, records its return value, and lists the paths of sensitive
fields in ``meta.redact`` so the display policy hides them everywhere
(:mod:`oban_powertools.display`).
"""

from .recorded import RECORD_LIMIT, decode_recorded
from .schema import ArgsSchema, schema_for
from .sensitive import Sensitive
from .typed import typed_worker

__all__ = [
    "RECORD_LIMIT",
    "ArgsSchema",
    "Sensitive",
    "decode_recorded",
    "schema_for",
    "typed_worker",
]
