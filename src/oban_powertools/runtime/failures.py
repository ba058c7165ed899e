"""How the runtime reports a failure: without the database's DETAIL, which may quote a
row's values (job args the display policy redacts), and with a traceback only for bugs."""

from __future__ import annotations

import logging

import psycopg

__all__ = ["describe_error", "log_error", "transient"]

# Reported under the scheduler's name, the one operators filter on.
logger = logging.getLogger("oban_powertools.runtime.scheduler")


def describe_error(error: BaseException) -> str:
    """An error as the scheduler logs it and records it on a slot.

    For a database error only the class, SQLSTATE and primary message: PostgreSQL's DETAIL
    (which ``str()`` includes) quotes the row it refused, e.g. "Failing row contains (...)"
    with the job's args, and those may hold values the display policy redacts.
    """
    if isinstance(error, psycopg.Error):
        primary = error.diag.message_primary if error.sqlstate else None
        if primary is None:
            # Raised by psycopg itself (no server message, no DETAIL): its text is ours.
            primary = str(error).split("\n", 1)[0]
        return f"{type(error).__name__} (SQLSTATE {error.sqlstate or 'none'}): {primary}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def transient(error: BaseException) -> bool:
    """Whether an error says nothing about the entry: the database is unreachable or
    restarting (connection errors, pool timeouts) or a lock conflict rolled it back."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def log_error(message: str, *args: object, error: BaseException) -> None:
    """Log ``error`` without the database's DETAIL (see :func:`describe_error`); other
    errors are bugs and keep their traceback."""
    if isinstance(error, psycopg.Error):
        logger.error(message + ": %s", *args, describe_error(error))
    else:
        logger.error(message, *args, exc_info=error)
