"""Context passing: a step reads what its dependencies returned.

Typed workers record their return value with the job (:mod:`oban_powertools.workers.
recorded`, oban's ``Record``: ``meta.return``). :func:`workflow_results` reads those of
a step's dependencies in one query and decodes them::

    @typed_worker(queue="invoices")
    class Render:
        async def perform(self, args: RenderArgs, job: Job) -> dict[str, str]:
            fetched = (await workflow_results(job))["fetch"]
            ...
"""

from __future__ import annotations

from typing import Any

from oban import Oban
from oban.job import Job
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ..db.queries import StatementsInSchema
from ..errors import WorkflowError
from ..workers.recorded import decode_recorded
from ..workflows.plan import STEP_KEY, WORKFLOW_KEY

__all__ = ["workflow_results"]

Q = StatementsInSchema(workflows="step_results step_deps")


async def workflow_results(
    job: Job,
    source: Oban | AsyncConnection[Any] | AsyncConnectionPool[Any] | None = None,
    *,
    schema: str | None = None,
) -> dict[str, Any]:
    """``{dependency name: its recorded result}`` for the step ``job`` (None for a
    dependency that recorded nothing: not a typed worker, returned None, or a
    sub-workflow). Reads through ``source``: an Oban instance (default: oban's default
    instance), a psycopg connection or pool; ``schema`` defaults to the instance's
    prefix, else ``public``."""
    workflow_id = job.meta.get(WORKFLOW_KEY)
    step = job.meta.get(STEP_KEY)
    if workflow_id is None or step is None:
        raise WorkflowError(f"job {job.id} ({job.worker}) is not a workflow step")
    if source is None:
        source = Oban.get_instance()
    if isinstance(source, Oban):
        query = source._query
        schema = schema or query._prefix
        source = query._pool
    schema = schema or "public"
    if isinstance(source, AsyncConnectionPool):
        async with source.connection() as conn:
            return await _read(conn, workflow_id, step, schema)
    return await _read(source, workflow_id, step, schema)


async def _read(
    conn: AsyncConnection[Any], workflow_id: str, step: str, schema: str
) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q.step_deps.at(schema), {"workflow_id": workflow_id, "name": step})
    row = await cur.fetchone()
    deps = list(row["deps"]) if row else []
    await cur.execute(Q.step_results.at(schema), {"workflow_id": workflow_id, "names": deps})
    found: dict[str, Any] = dict.fromkeys(deps)
    for r in await cur.fetchall():
        meta = r["meta"] or {}
        if meta.get("recorded") and isinstance(meta.get("return"), str):
            found[r["name"]] = decode_recorded(meta["return"])
    return found
