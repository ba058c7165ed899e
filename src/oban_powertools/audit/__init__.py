"""The audit log: one writer, and the queries pages and exports read it with."""

from .writer import AuditEvent, write_event

__all__ = ["AuditEvent", "write_event"]
