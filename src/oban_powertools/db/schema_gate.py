"""Whether the database holds the schema this release needs, asked until it does.

On a database where ``oban-powertools migrate`` never ran (or an older release's schema),
every read would fail with ``UndefinedTable``. :class:`SchemaGate` answers the question
once per process while the answer is "current": after that it costs nothing per request.
While the schema is not current it asks again on every call, so the pages work as soon as
``migrate`` has run, without a restart. Each distinct problem is logged once, as one line.
"""

from __future__ import annotations

import logging

from . import Database
from .migrate import SchemaProblem, schema_problem

__all__ = ["SchemaGate"]

logger = logging.getLogger("oban_powertools")


class SchemaGate:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._current = False
        self._reported: SchemaProblem | None = None

    @property
    def current(self) -> bool:
        """True once the schema was found current (it is not asked again)."""
        return self._current

    async def check(self) -> SchemaProblem | None:
        """None when the schema is current, else what is missing. Raises psycopg's
        errors when the database cannot be asked."""
        if self._current:
            return None
        async with self._db.connection() as conn:
            problem = await schema_problem(conn, self._db.prefix)
        if problem is None:
            self._current = True
            if self._reported is not None:
                logger.info("oban-powertools: the database schema is current now")
            return None
        if problem != self._reported:
            self._reported = problem
            logger.warning("oban-powertools: %s. Run `%s`.", problem.describe(), problem.command)
        return problem
