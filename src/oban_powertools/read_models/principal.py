"""A principal as pages show it: its stable id beside its label.

Labels are for people and need not be unique ("Ops Demo" may be two accounts); the id is
what auditors search and filter by (``/audit?actor=<id>``). So wherever a principal
appears (audit, previews, forensics, paused-by, queue decisions) both are shown, each
through the display policy: pages use the ``principal`` macro, plain text ``str()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..display import Display
from ..seams import Resource


@dataclass(frozen=True, slots=True)
class ShownPrincipal:
    """Id, label and type of a principal, already through the display policy."""

    id: str
    label: str
    type: str | None = None

    @property
    def distinct_label(self) -> str | None:
        """The label when it says something the id does not (it is neither empty nor the id)."""
        return self.label if self.label and self.label != self.id else None

    def __str__(self) -> str:
        if self.distinct_label is None:
            return self.id or "an unknown actor"
        if not self.id:
            return self.label
        return f"{self.label} ({self.id})"

    def to_dict(self) -> dict[str, str]:
        """For exports and the JSON API; ``type`` only where the record holds one."""
        shown = {"id": self.id, "label": self.label}
        return shown | {"type": self.type} if self.type else shown


def shown_principal(
    display: Display,
    principal_id: str | None,
    label: str | None,
    *,
    type: str | None = None,
    resource: Resource | None = None,
    id_field: str = "principal_id",
    label_field: str = "principal_label",
) -> ShownPrincipal | None:
    """Both values through the policy (each under its own field); None when neither is known.

    ``id_field``/``label_field`` name the stored columns (``paused_by_id`` ...), so a policy
    that treats them differently sees where each value comes from.
    """
    if principal_id is None and label is None:
        return None
    shown_id = display.optional("principal", principal_id, resource=resource, field=id_field)
    shown_label = display.optional("principal", label, resource=resource, field=label_field)
    return ShownPrincipal(shown_id or "", shown_label or shown_id or "", type)


def shown_actor(display: Display, principal_id: str, label: str) -> ShownPrincipal:
    """A principal that acts (its id is always known) through the policy."""
    shown = shown_principal(display, principal_id, label)
    assert shown is not None  # the id is a str, so the principal is known
    return shown


def shown_stored(
    display: Display, row: Mapping[str, Any], prefix: str, *, resource: Resource
) -> ShownPrincipal | None:
    """The principal a row stores in its ``<prefix>_id`` and ``<prefix>_label`` columns
    (``paused_by_id`` ...), each value through the policy under its column's name."""
    id_field, label_field = f"{prefix}_id", f"{prefix}_label"
    return shown_principal(
        display,
        row[id_field],
        row[label_field],
        resource=resource,
        id_field=id_field,
        label_field=label_field,
    )
