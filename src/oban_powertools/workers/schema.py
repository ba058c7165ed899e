"""An args schema, whatever declares it: a dataclass (:mod:`.dataclass_args`) or a
pydantic model (:mod:`.pydantic_args`, only when pydantic is installed)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidArgument

__all__ = ["ArgsSchema", "Loaded", "schema_for"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """Args checked against their schema: the typed object ``perform`` gets, the JSON
    stored in the job, and the paths of its sensitive values (for ``meta.redact``)."""

    value: Any
    data: dict[str, Any]
    redact: list[str]


class ArgsSchema(Protocol):
    name: str

    def coerce(self, value: Any) -> Loaded:
        """Check an instance of the schema or a mapping (at enqueue)."""
        ...

    def load(self, data: Mapping[str, Any]) -> Loaded:
        """Check stored JSON args (when the job runs)."""
        ...

    def sensitive_names(self) -> set[str]:
        """The names of the schema's sensitive fields, at any depth."""
        ...


def schema_for(cls: Any) -> ArgsSchema:
    """The schema of ``args=``; raises InvalidArgument for anything but a dataclass or a
    pydantic model class."""
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        from .dataclass_args import DataclassSchema

        return DataclassSchema(cls)
    # A pydantic model class exists only if pydantic was imported: without it (the extra
    # not installed) nothing here imports it.
    pydantic = sys.modules.get("pydantic")
    if isinstance(cls, type) and pydantic is not None and issubclass(cls, pydantic.BaseModel):
        from .pydantic_args import PydanticSchema

        return PydanticSchema(cls)
    raise InvalidArgument(
        f"args={cls!r}: give a dataclass or a pydantic model class as a typed worker's args schema"
    )
