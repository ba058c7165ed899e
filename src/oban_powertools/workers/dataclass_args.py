"""Checking args against a dataclass, with no dependency: the field types a job's JSON
can carry.

Supported: ``int`` (not ``bool``), ``float`` (an ``int`` is accepted), ``str``, ``bool``,
``None`` / ``Optional`` / unions, ``Literal``, ``Enum`` (by value in JSON), ``list[T]``,
``tuple[T, ...]`` and fixed tuples, ``dict[str, T]``, nested dataclasses,
``datetime`` / ``date`` (ISO strings in JSON), ``Any``. Defaults are honoured; keys the
dataclass does not have are rejected. An unsupported annotation is refused when the
worker is declared, not when a job first runs.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from ..errors import ArgsValidationError, InvalidArgument
from .schema import Loaded
from .sensitive import is_sensitive

__all__ = ["DataclassSchema"]

# How much of a wrong value an error quotes.
QUOTE_LIMIT = 60
SCALARS: tuple[type, ...] = (int, float, str, bool, datetime, date)


class _At:
    """Where the walk is: the path errors name (``ExportArgs.card.number``), the key path
    ``meta.redact`` holds (``card.number``), and whether the value is sensitive."""

    __slots__ = ("key", "name", "sensitive")

    def __init__(self, name: str, key: str, sensitive: bool) -> None:
        self.name = name
        self.key = key
        self.sensitive = sensitive

    def field(self, field: str, sensitive: bool) -> _At:
        key = f"{self.key}.{field}" if self.key else field
        return _At(f"{self.name}.{field}", key, self.sensitive or sensitive)

    def item(self, index: int | str) -> _At:
        if isinstance(index, int):
            return _At(f"{self.name}[{index}]", f"{self.key}[{index}]", self.sensitive)
        return self.field(index, False)

    def fail(self, expected: str, value: Any) -> ArgsValidationError:
        return ArgsValidationError(self.name, f"expected {expected}, got {self._quote(value)}")

    def _quote(self, value: Any) -> str:
        kind = type(value).__name__
        if self.sensitive:
            return f"{kind} (a sensitive value, not shown)"
        if value is None:
            return "None"
        if not isinstance(value, str | int | float | bool | enum.Enum):
            # A container may hold a sensitive value deeper down: name its type only.
            return kind
        text = repr(value)
        if len(text) > QUOTE_LIMIT:
            text = text[: QUOTE_LIMIT - 1] + "…"
        return f"{kind} {text}"


def _type_name(tp: Any) -> str:
    tp = _strip(tp)[0]
    if tp is type(None) or tp is None:
        return "None"
    if tp is Any:
        return "any value"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _strip(tp: Any) -> tuple[Any, bool]:
    """``Annotated[T, ...]`` → (T, whether it is marked Sensitive)."""
    sensitive = False
    while typing.get_origin(tp) is typing.Annotated:
        sensitive = sensitive or is_sensitive(tp.__metadata__)
        tp = tp.__origin__
    return tp, sensitive


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError) as exc:
        raise InvalidArgument(
            f"args={cls.__name__}: its field types cannot be resolved ({exc}); define the "
            "types it names at module level"
        ) from exc


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any, bool]]:
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, marked = _strip(hints[f.name])
        out.append((f, tp, marked or bool(f.metadata.get("sensitive"))))
    return out


def check_supported(tp: Any, where: str, seen: set[type] | None = None) -> None:
    """Refuse, at declaration, an annotation this module cannot check."""
    seen = seen if seen is not None else set()
    tp = _strip(tp)[0]
    origin = typing.get_origin(tp)
    if tp is Any or tp is None or tp is type(None) or tp in SCALARS:
        return
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp in seen:
            return
        seen.add(tp)
        for f, ftp, _ in _fields(tp):
            check_supported(ftp, f"{where}.{f.name}" if where else f.name, seen)
        return
    if origin is typing.Literal:
        return
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                check_supported(arg, where, seen)
        return
    if origin is dict:
        key, value = typing.get_args(tp) or (str, Any)
        if key is not str:
            raise InvalidArgument(f"{where}: dict keys must be str in JSON args, not {key!r}")
        check_supported(value, where, seen)
        return
    if tp in (list, tuple, dict):
        return
    raise InvalidArgument(
        f"{where}: {tp!r} is not a supported args type (int, float, str, bool, None, unions, "
        "Literal, Enum, list, tuple, dict[str, T], dataclasses, datetime, date, Any)"
    )


def _sensitive_names(tp: Any, seen: set[type]) -> set[str]:
    tp = _strip(tp)[0]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp in seen:
            return set()
        seen.add(tp)
        names: set[str] = set()
        for f, ftp, sensitive in _fields(tp):
            if sensitive or _contains_sensitive(ftp):
                names.add(f.name)
            names |= _sensitive_names(ftp, seen)
        return names
    found: set[str] = set()
    for arg in typing.get_args(tp):
        if arg is not Ellipsis and not isinstance(arg, str | int | bool | enum.Enum):
            found |= _sensitive_names(arg, seen)
    return found


def _contains_sensitive(tp: Any) -> bool:
    """``list[Annotated[str, Sensitive()]]``: the items are sensitive, so is the field."""
    if _strip(tp)[1]:
        return True
    return any(_contains_sensitive(a) for a in typing.get_args(_strip(tp)[0]) if a is not Ellipsis)


def _load(tp: Any, value: Any, at: _At, redact: list[str]) -> Any:
    tp, marked = _strip(tp)
    if marked and not at.sensitive:
        at = _At(at.name, at.key, True)
    if (
        at.sensitive
        and at.key not in redact
        and not any(at.key.startswith(p + ".") or at.key.startswith(p + "[") for p in redact)
    ):
        redact.append(at.key)
        # A sensitive subtree is hidden whole; its insides need no paths of their own.
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise at.fail("None", value)
    if origin in (typing.Union, types.UnionType):
        return _union(tp, value, at, redact)
    if origin is typing.Literal:
        for option in typing.get_args(tp):
            if value == option and type(value) is type(option):
                return value
            if isinstance(option, enum.Enum) and (value is option or value == option.value):
                return option
        raise at.fail(_type_name(tp), value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            values = ", ".join(repr(m.value) for m in tp)
            raise at.fail(f"{tp.__name__} (one of {values})", value) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise at.fail("bool", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise at.fail("int", value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise at.fail("float", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise at.fail("str", value)
    if tp is datetime:
        return _datetime(value, at)
    if tp is date:
        return _date(value, at)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, at, redact)
    if origin is list or tp is list:
        if not isinstance(value, list | tuple):
            raise at.fail(_type_name(tp), value)
        (item,) = typing.get_args(tp) or (Any,)
        return [_load(item, v, at.item(i), redact) for i, v in enumerate(value)]
    if origin is tuple or tp is tuple:
        return _tuple(tp, value, at, redact)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise at.fail(_type_name(tp), value)
        _, item = typing.get_args(tp) or (str, Any)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise at.fail("str keys", k)
            out[k] = _load(item, v, at.item(k), redact)
        return out
    raise at.fail(_type_name(tp), value)  # check_supported refused it at declaration


def _union(tp: Any, value: Any, at: _At, redact: list[str]) -> Any:
    options = typing.get_args(tp)
    # None and exact scalar types first, so 1 stays an int in `int | float`.
    for option in options:
        if value is None and option is type(None):
            return None
        if option in (int, str, bool) and type(value) is option:
            return value
    inner: ArgsValidationError | None = None
    for option in options:
        attempt: list[str] = []
        try:
            loaded = _load(option, value, at, attempt)
        except ArgsValidationError as exc:
            # An option that got inside the value (a dataclass for a mapping) knows
            # better what is wrong than "expected Card | None".
            if inner is None and exc.path != at.name:
                inner = exc
            continue
        redact.extend(p for p in attempt if p not in redact)
        return loaded
    if inner is not None:
        raise inner
    raise at.fail(_type_name(tp), value)


def _tuple(tp: Any, value: Any, at: _At, redact: list[str]) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise at.fail(_type_name(tp), value)
    args = typing.get_args(tp)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_load(args[0], v, at.item(i), redact) for i, v in enumerate(value))
    if len(args) != len(value):
        raise at.fail(f"{_type_name(tp)} ({len(args)} items)", value)
    return tuple(
        _load(a, v, at.item(i), redact) for i, (a, v) in enumerate(zip(args, value, strict=True))
    )


def _iso[T](value: Any, at: _At, parse: Callable[[str], T], what: str) -> T:
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError:
            pass
    raise at.fail(f"{what} (an ISO 8601 string in JSON)", value)


def _datetime(value: Any, at: _At) -> datetime:
    if isinstance(value, datetime):
        return value
    return _iso(value, at, datetime.fromisoformat, "datetime")


def _date(value: Any, at: _At) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return _iso(value, at, date.fromisoformat, "date")


def _dataclass(cls: type, value: Any, at: _At, redact: list[str]) -> Any:
    if isinstance(value, cls):
        value = _dump(value)
    if not isinstance(value, Mapping):
        raise at.fail(f"{cls.__name__} (an object)", value)
    fields = _fields(cls)
    known = {f.name for f, _, _ in fields}
    for key in value:
        if key not in known:
            raise ArgsValidationError(
                f"{at.name}.{key}", f"not a field of {cls.__name__} ({', '.join(sorted(known))})"
            )
    kwargs = {}
    for f, tp, sensitive in fields:
        here = at.field(f.name, sensitive)
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ArgsValidationError(here.name, "required, missing")
            continue
        kwargs[f.name] = _load(tp, value[f.name], here, redact)
    return cls(**kwargs)


def _dump(value: Any) -> Any:
    """JSON-ready args: dataclasses as objects, enums by value, datetimes as ISO text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _dump(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


class DataclassSchema:
    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.name = cls.__name__
        check_supported(cls, cls.__name__)

    def sensitive_names(self) -> set[str]:
        return _sensitive_names(self.cls, set())

    def coerce(self, value: Any) -> Loaded:
        data = _dump(value) if isinstance(value, self.cls) else value
        return self.load(data if data is not None else {})

    def load(self, data: Mapping[str, Any]) -> Loaded:
        redact: list[str] = []
        instance = _dataclass(self.cls, data, _At(self.name, "", False), redact)
        dumped = _dump(instance)
        assert isinstance(dumped, dict)
        return Loaded(instance, dumped, redact)
