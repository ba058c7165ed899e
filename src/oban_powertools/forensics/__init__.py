"""Forensics: evidence bundles with diagnosis, chronology, completeness and next paths."""

from .bundle import (
    SUBJECT_TYPES,
    ChronologyItem,
    EvidenceBundle,
    Fact,
    UnsupportedSubject,
    build_bundle,
)
from .completeness import COMPLETE, LABELS, PARTIAL, UNAVAILABLE, UNKNOWN, Completeness

__all__ = [
    "COMPLETE",
    "LABELS",
    "PARTIAL",
    "SUBJECT_TYPES",
    "UNAVAILABLE",
    "UNKNOWN",
    "ChronologyItem",
    "Completeness",
    "EvidenceBundle",
    "Fact",
    "UnsupportedSubject",
    "build_bundle",
]
