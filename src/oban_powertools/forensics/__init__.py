"""Forensics: evidence bundles with diagnosis, chronology, completeness and next paths."""

from .build import SUBJECT_TYPES, UnsupportedSubject, build_bundle
from .bundle import ChronologyItem, EvidenceBundle, Fact
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
