"""Checking args against a pydantic model (the optional extra ``oban-powertools[pydantic]``;
imported only for a worker whose ``args=`` is a model).

Args are checked in pydantic's strict JSON mode, the form they are stored in: ``"5"`` is
not an int, an ISO string is a datetime, an enum is its value. Unknown keys follow the
model's own ``extra`` setting (``model_config = ConfigDict(extra="forbid")`` rejects them).
Sensitive fields are ``Annotated[T, Sensitive()]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import ArgsValidationError, ConfigError

try:
    from pydantic import BaseModel, ValidationError
except ModuleNotFoundError as exc:  # only a worker with a model for args imports this
    raise ConfigError(
        "args",
        "is a pydantic model, but pydantic is not installed",
        'Install the extra: pip install "oban-powertools[pydantic]"',
    ) from exc
from .schema import Loaded
from .sensitive import is_sensitive

__all__ = ["PydanticSchema"]

QUOTE_LIMIT = 60


def _sensitive_paths(model: BaseModel, prefix: str, out: list[str]) -> None:
    for name, info in type(model).model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        value = getattr(model, name, None)
        if is_sensitive(info.metadata):
            if value is not None:
                out.append(path)
            continue
        _walk(value, path, out)


def _walk(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, BaseModel):
        _sensitive_paths(value, path, out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", out)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, f"{path}.{key}", out)


def _models_in(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    found: list[type[BaseModel]] = []
    for arg in getattr(tp, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


def _location(schema: str, loc: tuple[int | str, ...]) -> str:
    path = schema
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _sensitive_location(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    """Whether an error's location is (inside) a sensitive field, so its value is not
    quoted."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        info = current.model_fields.get(str(part))
        if info is None:
            continue  # a list index or dict key: stay on the model of the items
        if is_sensitive(info.metadata):
            return True
        current = info.annotation
        for arg in getattr(current, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return False


class PydanticSchema:
    def __init__(self, cls: type[BaseModel]) -> None:
        self.cls = cls
        self.name = cls.__name__

    def sensitive_names(self) -> set[str]:
        names: set[str] = set()
        seen: set[type] = set()
        todo: list[Any] = [self.cls]
        while todo:
            model = todo.pop()
            if model in seen:
                continue
            seen.add(model)
            for name, info in model.model_fields.items():
                if is_sensitive(info.metadata):
                    names.add(name)
                todo.extend(_models_in(info.annotation))
        return names

    def coerce(self, value: Any) -> Loaded:
        if isinstance(value, self.cls):
            return self.load(value.model_dump(mode="json"))
        return self.load(value if value is not None else {})

    def load(self, data: Mapping[str, Any]) -> Loaded:
        try:
            text = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise ArgsValidationError(self.name, f"not JSON ({exc})") from None
        try:
            model = self.cls.model_validate_json(text, strict=True)
        except ValidationError as exc:
            raise self._error(exc) from None
        redact: list[str] = []
        _sensitive_paths(model, "", redact)
        return Loaded(model, model.model_dump(mode="json"), redact)

    def _error(self, exc: ValidationError) -> ArgsValidationError:
        first = exc.errors()[0]
        loc = tuple(first.get("loc", ()))
        problem = first.get("msg", "invalid")
        if first.get("type") == "missing":
            problem = "required, missing"
        elif "input" in first:
            value = first["input"]
            if _sensitive_location(self.cls, loc):
                problem += f", got {type(value).__name__} (a sensitive value, not shown)"
            elif not isinstance(value, str | int | float | bool) or value is None:
                # A container may hold a sensitive value deeper down: name its type only.
                problem += f", got {type(value).__name__}"
            else:
                text = repr(value)
                if len(text) > QUOTE_LIMIT:
                    text = text[: QUOTE_LIMIT - 1] + "…"
                problem += f", got {type(value).__name__} {text}"
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more)"
        return ArgsValidationError(_location(self.name, loc), problem)
