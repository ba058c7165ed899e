"""What inserting a workflow writes: its workflow rows, step rows and edges (pure data).

A :class:`WorkflowPlan` is made by :meth:`Workflow.plan <.model.Workflow.plan>` and
travels to Powertools' insert hook in each step job's ``job.extra["workflow"]``; the hook
writes it in one transaction, one statement per table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from oban.job import Job

__all__ = [
    "EXTRA_KEY",
    "STEP_KEY",
    "WORKFLOW_KEY",
    "PlannedStep",
    "PlannedWorkflow",
    "WorkflowPlan",
]

# A step job's meta: the (immutable) ids the ack path reads.
WORKFLOW_KEY = "workflow_id"
STEP_KEY = "workflow_step"
# A step job's extra (not stored): the plan, for the insert hook.
EXTRA_KEY = "workflow"


@dataclass(frozen=True, slots=True)
class PlannedWorkflow:
    id: UUID
    name: str
    parent_id: UUID | None
    parent_step: str | None
    steps_total: int
    on_dep_cancelled: str
    on_dep_discarded: str
    # Whether its steps may run once their own dependencies are satisfied: the root
    # workflow, and a sub-workflow whose parent step has no dependencies (and whose
    # parent is started); otherwise it starts when its parent step is released.
    started: bool


@dataclass(frozen=True, slots=True)
class PlannedStep:
    workflow_id: UUID
    name: str
    job: Job | None  # None: a sub-workflow step
    sub_workflow_id: UUID | None
    deps: tuple[str, ...]
    # Dependencies not satisfied at insert; for appended steps the insert subtracts the
    # existing dependencies (external_deps) already satisfied.
    pending: int
    external_deps: tuple[str, ...]
    on_dep_cancelled: str
    on_dep_discarded: str


@dataclass(frozen=True, slots=True, eq=False)
class WorkflowPlan:
    root: UUID
    name: str
    appending: bool  # the root workflow exists: these steps are added to it
    workflows: tuple[PlannedWorkflow, ...]
    steps: tuple[PlannedStep, ...]

    def jobs(self) -> list[Job]:
        return [step.job for step in self.steps if step.job is not None]

    def edges(self) -> list[tuple[UUID, str, str]]:
        """(workflow id, upstream, downstream) for every dependency."""
        return [(s.workflow_id, dep, s.name) for s in self.steps for dep in s.deps]
