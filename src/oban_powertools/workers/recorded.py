"""A typed worker's return value, recorded with the job (oban's ``Record``: Erlang term
format in ``meta.return`` with ``meta.recorded = true``, as Oban Pro stores it).

The recording is bounded: a value whose encoding is larger than the worker's
``record_limit`` is recorded as a small note saying so, and a value erlpack cannot encode
as a note naming its type. Neither fails the job: the work is done, only its record is
smaller.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import erlpack
from oban.job import Record

__all__ = ["RECORD_LIMIT", "decode_recorded", "record"]

# Bytes of encoded value a typed worker records by default (oban's own limit is 64 MB,
# which would make every page that shows the job slow).
RECORD_LIMIT = 65_536


def _plain(value: Any) -> Any:
    """What erlpack can encode: dataclasses and models as dicts, datetimes as ISO text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(mode="json"))
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def record(value: Any, limit: int = RECORD_LIMIT) -> Record:
    plain = _plain(value)
    try:
        return Record(plain, limit=limit)
    except ValueError as exc:  # over the limit
        size = len(base64.b64encode(erlpack.pack(plain)))
        note = {"truncated": True, "size": size, "limit": limit, "detail": str(exc)}
        return Record(note)
    except (NotImplementedError, TypeError, OverflowError):  # erlpack cannot encode it
        return Record({"unrecordable": True, "type": type(value).__name__})


def _text(value: Any) -> Any:
    # erlpack gives binaries back as bytes; they were strings when recorded.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return value


def decode_recorded(encoded: str) -> Any:
    """A recorded value back from ``meta.return`` (base64 without padding, as oban
    writes it). Raises ValueError when it is not such a value."""
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return _text(erlpack.unpack(base64.b64decode(padded, validate=True)))
    except Exception as exc:  # erlpack raises its own types for malformed input
        raise ValueError(f"not a recorded value: {exc}") from None
