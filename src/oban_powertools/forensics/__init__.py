"""Forensics: evidence bundles with diagnosis, chronology, completeness and next paths."""

from .build import DEFAULT_WINDOW, SUBJECT_TYPES, UnsupportedSubject, build_bundle
from .bundle import ChronologyItem, EvidenceBundle, Fact
from .completeness import COMPLETE, LABELS, PARTIAL, UNAVAILABLE, UNKNOWN, Completeness
from .job import job_bundle

__all__ = [
    "COMPLETE",
    "DEFAULT_WINDOW",
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
    "job_bundle",
]
