"""Releasing workflow steps in the transaction that acks their dependencies.

The workflow follow-up of :mod:`.acks`. (Foundation: the follow-up is registered; the
release itself follows.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .acks import AckedJob, AckTransaction

__all__ = ["after_ack"]


async def after_ack(tx: AckTransaction, acked: Sequence[AckedJob]) -> None:
    """Record the steps that finished and release (or cancel) their dependents."""
    return None
