"""Workflows as the workflow pages show them: a keyset list and one workflow in full.

Plain functions over the database, testable without HTTP. Every value leaves through the
display policy: workflow and step names are the host's data (they may name a customer),
as are workers and the sub-workflows' names. Reads are bounded: the list walks the
(state, inserted_at, id) index, a workflow's steps come a page at a time, and its graph
is read (and drawn) only up to :data:`DRAW_LIMIT` steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ..db import Conn, Database
from ..db.queries import Statements
from ..display import Display
from ..errors import FilterError
from ..seams import Resource
from .common import COUNT_CAP, Count, ListFilters, bounded_count, utc

__all__ = [
    "DRAW_LIMIT",
    "WORKFLOW_ACTIONS",
    "WORKFLOW_STATES",
    "Progress",
    "StepView",
    "WorkflowDetail",
    "WorkflowFilters",
    "WorkflowList",
    "WorkflowRow",
    "list_workflows",
    "parse_workflow_id",
    "workflow_detail",
]

WORKFLOW_STATES = ("pending", "executing", "completed", "cancelled", "discarded")
FINISHED = frozenset({"completed", "cancelled", "discarded"})
WORKFLOW_ACTIONS = ("cancel_workflow", "retry_workflow")
PAGE_SIZE = 50
# Above this many steps the graph is not drawn: a layered drawing of thousands of boxes
# tells an operator less than the counts by state and the table, and costs more to lay out.
DRAW_LIMIT = 200
# The steps table shows this many at a time (all of a drawable workflow's).
STEP_PAGE = DRAW_LIMIT
EDGE_LIMIT = 5000
CHILD_LIMIT = 100
MAX_NAME = 255
# A list cursor: the last row's inserted_at (microseconds since the epoch) and id.
CURSOR = re.compile(r"^(\d{1,17})\.([0-9a-fA-F-]{36})$")

Q = Statements(
    workflow_pages=(
        "list_workflows workflow_state_counts workflow workflow_steps workflow_edges"
        " workflow_step_states sub_workflows"
    ),
)


def parse_workflow_id(raw: str) -> UUID | None:
    """A workflow id from a URL or form: a UUID, or None for anything else."""
    text = raw.strip()
    if len(text) != 36:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WorkflowFilters(ListFilters):
    state: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in WORKFLOW_STATES:
            raise FilterError(f"unknown workflow state {self.state[:40]!r}")
        if self.name is not None and len(self.name) > MAX_NAME:
            raise FilterError(f"the name filter is longer than {MAX_NAME}")

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> WorkflowFilters:
        return cls(cls.from_param(query, "state"), cls.from_param(query, "name"))


@dataclass(frozen=True, slots=True)
class Cursor:
    inserted_at: datetime
    id: UUID

    def __str__(self) -> str:
        micros = int(self.inserted_at.timestamp()) * 1_000_000 + self.inserted_at.microsecond
        return f"{micros}.{self.id}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        """Absent, or a cursor from a page link; anything else is refused (showing the
        first page as if it were the one asked for would mislead)."""
        if not raw:
            return None
        match = CURSOR.match(raw.strip())
        wid = parse_workflow_id(match[2]) if match else None
        if match is None or wid is None:
            raise FilterError("before must be a cursor from a page link")
        micros = int(match[1])
        at = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
        return cls(at, wid)


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    completed: int
    cancelled: int
    discarded: int

    @property
    def finished(self) -> int:
        return self.completed + self.cancelled + self.discarded

    @property
    def percent(self) -> int:
        return 0 if self.total <= 0 else int(100 * self.finished / self.total)

    def words(self) -> str:
        """The counters in one phrase, e.g. "3 of 5 steps finished (2 completed, 1
        discarded)": the page says it in words, never only as a bar."""
        parts = [
            f"{n} {label}"
            for n, label in (
                (self.completed, "completed"),
                (self.cancelled, "cancelled"),
                (self.discarded, "discarded"),
            )
            if n
        ]
        detail = f" ({', '.join(parts)})" if parts else ""
        step = "step" if self.total == 1 else "steps"
        return f"{self.finished} of {self.total} {step} finished{detail}"


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    id: str
    name: str
    state: str
    parent_id: str | None
    parent_step: str | None
    progress: Progress
    inserted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkflowList:
    rows: list[WorkflowRow]
    next_before: str | None
    counts: dict[str, Count]


def _progress(row: Mapping[str, Any], prefix: str = "steps_") -> Progress:
    return Progress(
        int(row[f"{prefix}total"]),
        int(row[f"{prefix}completed"]),
        int(row[f"{prefix}cancelled"]),
        int(row[f"{prefix}discarded"]),
    )


def shown_name(display: Display, workflow_id: str, name: str) -> str:
    return display.text("workflow", name, resource=Resource("workflow", workflow_id), field="name")


def shown_step(display: Display, workflow_id: str, step: str | None, field: str = "step") -> str:
    if step is None:
        return ""
    resource = Resource("workflow", workflow_id)
    return display.text("workflow_step", step, resource=resource, field=field)


def workflow_row(display: Display, row: Mapping[str, Any]) -> WorkflowRow:
    wid = str(row["id"])
    parent = str(row["parent_workflow_id"]) if row["parent_workflow_id"] else None
    return WorkflowRow(
        id=wid,
        name=shown_name(display, wid, row["name"]),
        state=row["state"],
        parent_id=parent,
        parent_step=shown_step(display, parent, row["parent_step"], "parent_step")
        if parent
        else None,
        progress=_progress(row),
        inserted_at=utc(row["inserted_at"]),
        started_at=utc(row["started_at"]),
        finished_at=utc(row["finished_at"]),
    )


async def list_workflows(
    db: Database,
    display: Display,
    filters: WorkflowFilters,
    *,
    before: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> WorkflowList:
    """One page of workflows, newest first, with a capped count per state."""
    limit = max(1, min(limit, 200))
    states = [filters.state] if filters.state else list(WORKFLOW_STATES)
    async with db.connection() as conn:
        cur = await conn.execute(
            Q.list_workflows,
            {
                "states": states,
                "name": filters.name,
                "before_at": before.inserted_at if before else None,
                "before_id": before.id if before else None,
                "limit": limit + 1,
            },
        )
        raw = await cur.fetchall()
        cur = await conn.execute(
            Q.workflow_state_counts,
            {"states": list(WORKFLOW_STATES), "name": filters.name, "cap": COUNT_CAP},
        )
        counts = {
            r["state"]: bounded_count(int(r["n"]), None, COUNT_CAP) for r in await cur.fetchall()
        }
    rows = [workflow_row(display, r) for r in raw[:limit]]
    next_before = None
    if len(raw) > limit:
        last = raw[limit - 1]
        next_before = str(Cursor(utc(last["inserted_at"]) or datetime.now(UTC), last["id"]))
    return WorkflowList(rows, next_before, {s: counts[s] for s in WORKFLOW_STATES})


# -- one workflow ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepView:
    key: str  # the step's name as stored: the graph's node key, never shown
    name: str  # as the display policy shows it
    job_id: int | None
    sub_workflow_id: str | None
    sub_name: str | None
    deps: list[str]  # shown
    dep_keys: list[str]  # as stored
    state: str  # the job's state, or the sub-workflow's; "missing" for a pruned job
    outcome: str | None
    cancelled_by: str | None  # shown: why it was cancelled (the dependency that took it down)
    pending: int
    deps_finished: bool
    worker: str | None
    attempt: int | None
    max_attempts: int | None
    finished_at: datetime | None

    @property
    def href(self) -> str | None:
        if self.sub_workflow_id is not None:
            return f"/workflows/{self.sub_workflow_id}"
        if self.job_id is not None:
            return f"/jobs/{self.job_id}"
        return None

    @property
    def stuck(self) -> bool:
        """Waiting although every dependency finished: a missed release (the periodic
        repair releases it)."""
        return (
            self.outcome is None and self.deps_finished and self.state in ("suspended", "pending")
        )

    @property
    def label(self) -> str:
        """The state in words, as the graph and the table show it beside the colour."""
        if self.stuck:
            return f"{self.state}, release missed"
        if self.state == "suspended":
            return "waiting on dependencies" if self.deps else "suspended"
        return self.state


@dataclass(frozen=True, slots=True)
class WorkflowDetail:
    row: WorkflowRow
    on_dep_cancelled: str
    on_dep_discarded: str
    parent_name: str | None
    steps: list[StepView]
    steps_next: int | None  # where the next page of steps starts (None: this is the last)
    steps_from: int  # where this page starts
    edges: list[tuple[str, str]]  # (upstream, downstream) as stored; empty when not drawn
    drawn: bool  # the whole graph was read (and can be drawn)
    step_states: dict[str, int]
    children: list[WorkflowRow]
    now: datetime
    actions: list[str] = field(default_factory=list)

    @property
    def stuck(self) -> list[StepView]:
        return [s for s in self.steps if s.stuck]


def step_view(display: Display, wid: str, row: Mapping[str, Any]) -> StepView:
    """One step row as the pages and the forensics bundle show it."""
    resource = Resource("workflow", wid)
    sub = str(row["sub_workflow_id"]) if row["sub_workflow_id"] else None
    if sub is not None:
        state = row["sub_state"] or row["outcome"] or "missing"
    else:
        state = row["job_state"] or "missing"
    deps = list(row["deps"] or [])
    return StepView(
        key=row["name"],
        name=shown_step(display, wid, row["name"]),
        job_id=row["job_id"],
        sub_workflow_id=sub,
        sub_name=shown_name(display, sub, row["sub_name"]) if sub and row["sub_name"] else None,
        deps=[shown_step(display, wid, d, "deps") for d in deps],
        dep_keys=deps,
        state=state,
        outcome=row["outcome"],
        cancelled_by=display.free_text(
            "workflow_step", row["cancelled_by"], resource=resource, field="cancelled_by"
        )
        if row["cancelled_by"]
        else None,
        pending=int(row["pending"]),
        deps_finished=bool(row["deps_finished"]),
        worker=display.text("worker", row["worker"], resource=resource, field="worker")
        if row["worker"]
        else None,
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        finished_at=utc(row["finished_at"]),
    )


async def fetch_workflow(conn: Conn, workflow_id: UUID) -> Mapping[str, Any] | None:
    cur = await conn.execute(Q.workflow, {"id": workflow_id})
    return await cur.fetchone()


async def fetch_steps(
    conn: Conn, workflow_id: UUID, *, offset: int = 0, limit: int = STEP_PAGE
) -> list[Mapping[str, Any]]:
    cur = await conn.execute(
        Q.workflow_steps, {"id": workflow_id, "offset": offset, "limit": limit}
    )
    return list(await cur.fetchall())


async def workflow_detail(
    db: Database, display: Display, workflow_id: UUID, *, steps_from: int = 0
) -> WorkflowDetail | None:
    """One workflow: its counters, a page of steps, its graph when small enough to draw,
    its parent and sub-workflows. None when there is no such workflow."""
    async with db.connection() as conn:
        row = await fetch_workflow(conn, workflow_id)
        if row is None:
            return None
        # A workflow small enough to draw has all its steps in one page and its edges
        # read; a larger one shows its steps a page at a time and its counts by state.
        steps_from = max(0, steps_from)
        small = steps_from == 0 and int(row["steps_total"]) <= DRAW_LIMIT
        raw_steps = await fetch_steps(conn, workflow_id, offset=steps_from, limit=STEP_PAGE + 1)
        edges: list[tuple[str, str]] = []
        drawn = False
        if small and len(raw_steps) <= STEP_PAGE:
            cur = await conn.execute(Q.workflow_edges, {"id": workflow_id, "limit": EDGE_LIMIT + 1})
            edges = [(e["upstream"], e["downstream"]) for e in await cur.fetchall()]
            drawn = len(edges) <= EDGE_LIMIT
        cur = await conn.execute(Q.workflow_step_states, {"id": workflow_id})
        step_states = {r["state"]: int(r["n"]) for r in await cur.fetchall()}
        cur = await conn.execute(Q.sub_workflows, {"id": workflow_id, "limit": CHILD_LIMIT})
        children = [workflow_row(display, r) for r in await cur.fetchall()]
    wid = str(row["id"])
    more = len(raw_steps) > STEP_PAGE
    steps = [step_view(display, wid, r) for r in raw_steps[:STEP_PAGE]]
    shown = workflow_row(display, row)
    parent_name = None
    if row["parent_workflow_id"] and row["parent_name"]:
        parent_name = shown_name(display, str(row["parent_workflow_id"]), row["parent_name"])
    return WorkflowDetail(
        row=shown,
        on_dep_cancelled=row["on_dep_cancelled"],
        on_dep_discarded=row["on_dep_discarded"],
        parent_name=parent_name,
        steps=steps,
        steps_next=steps_from + STEP_PAGE if more else None,
        steps_from=steps_from,
        edges=edges if drawn else [],
        drawn=drawn,
        step_states=step_states,
        children=children,
        now=utc(row["db_now"]) or datetime.now(UTC),
        actions=applicable(row, step_states),
    )


def applicable(row: Mapping[str, Any], step_states: Mapping[str, int]) -> list[str]:
    """The workflow actions that apply now (the pipeline checks again on preview)."""
    found = []
    if row["state"] not in FINISHED:
        found.append("cancel_workflow")
    failed = int(row["steps_cancelled"]) + int(row["steps_discarded"])
    if failed and row["parent_workflow_id"] is None:
        found.append("retry_workflow")
    return found
