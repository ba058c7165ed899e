"""Building a workflow: named steps (jobs or sub-workflows) and their dependencies.

Pure: nothing here touches the database. :meth:`Workflow.jobs` validates the whole
graph and returns the jobs to insert, each marked with its workflow's id and step name
(``meta.workflow_id``, ``meta.workflow_step``: immutable, so the ack path knows a job is
a step without a lookup) and carrying the :class:`~.plan.WorkflowPlan` in
``job.extra["workflow"]``, which Powertools' insert hook writes in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID, uuid4

from oban.job import Job, JobState
from oban.worker import WorkerResolutionError, resolve_worker

from ..errors import (
    WorkflowCycle,
    WorkflowDuplicateStep,
    WorkflowError,
    WorkflowJobReused,
    WorkflowNotInserted,
    WorkflowStepNameInvalid,
    WorkflowUnknownDependency,
    WorkflowUnknownWorker,
)
from .graph import find_cycle
from .plan import EXTRA_KEY, STEP_KEY, WORKFLOW_KEY, PlannedStep, PlannedWorkflow, WorkflowPlan

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["POLICIES", "Policy", "Step", "Workflow"]

type Policy = Literal["cancel", "ignore"]
POLICIES: tuple[Policy, ...] = ("cancel", "ignore")


def _policy(value: object, option: str, where: str) -> Policy:
    if value == "cancel":
        return "cancel"
    if value == "ignore":
        return "ignore"
    raise WorkflowError(
        f"{where}: {option} must be 'cancel' (the dependents are cancelled too) or "
        f"'ignore' (the dependency counts as satisfied), got {value!r}"
    )


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WorkflowStepNameInvalid(f"a {what} name must be a non-empty string, got {value!r}")
    return value


class Step:
    """One step of a workflow: a job, or a sub-workflow (``job`` is then None)."""

    __slots__ = ("deps", "job", "name", "on_dep_cancelled", "on_dep_discarded", "workflow")

    def __init__(
        self,
        name: str,
        *,
        job: Job | None,
        workflow: Workflow | None,
        deps: tuple[str, ...],
        on_dep_cancelled: Policy | None,
        on_dep_discarded: Policy | None,
    ) -> None:
        self.name = name
        self.job = job
        self.workflow = workflow
        self.deps = deps
        # None: the workflow's own default (resolved when the plan is made).
        self.on_dep_cancelled = on_dep_cancelled
        self.on_dep_discarded = on_dep_discarded

    def __repr__(self) -> str:
        kind = f"job {self.job.worker}" if self.job is not None else "sub-workflow"
        return f"Step({self.name!r}, {kind}, deps={list(self.deps)!r})"


class Workflow:
    """A DAG of steps. ``on_dep_cancelled`` / ``on_dep_discarded``: what a step does, by
    default, when one of its dependencies is cancelled / discarded: ``"cancel"`` (it is
    cancelled too, and so on down the graph) or ``"ignore"`` (the dependency counts as
    satisfied). Each step may override them.

    ::

        wf = Workflow(name="invoice")
        wf.add("fetch", Fetch.new({"id": 7}))
        wf.add("render", Render.new({"id": 7}), deps=["fetch"])
        wf.add("mail", Mail.new({"id": 7}), deps=["render"], on_dep_discarded="ignore")
        await wf.enqueue(oban)
    """

    def __init__(
        self,
        name: str = "workflow",
        *,
        on_dep_cancelled: Policy = "cancel",
        on_dep_discarded: Policy = "cancel",
        id: UUID | str | None = None,
    ) -> None:
        self.name = _name(name, "workflow")
        self.on_dep_cancelled = _policy(on_dep_cancelled, "on_dep_cancelled", f"workflow {name!r}")
        self.on_dep_discarded = _policy(on_dep_discarded, "on_dep_discarded", f"workflow {name!r}")
        self.id = UUID(str(id)) if id is not None else uuid4()
        self.appending = False
        self._steps: dict[str, Step] = {}
        self._parent: Workflow | None = None

    @classmethod
    def appending_to(cls, workflow_id: UUID | str, *, name: str = "append") -> Workflow:
        """Steps to add to a workflow already in the database: their ``deps`` may name
        its existing steps (a dependency already completed counts as satisfied at
        insert). ``name`` is only used in error messages."""
        wf = cls(name, id=workflow_id)
        wf.appending = True
        return wf

    @property
    def steps(self) -> Mapping[str, Step]:
        return dict(self._steps)

    def add(
        self,
        name: str,
        job: Job,
        *,
        deps: Iterable[str] = (),
        on_dep_cancelled: Policy | None = None,
        on_dep_discarded: Policy | None = None,
    ) -> Workflow:
        """Add step ``name`` running ``job`` once every step in ``deps`` completed."""
        if not isinstance(job, Job):
            raise WorkflowError(
                f"workflow {self.name!r}: step {name!r} needs a Job (Worker.new(...)), "
                f"got {type(job).__name__}"
            )
        if job.id is not None:
            raise WorkflowJobReused(
                f"workflow {self.name!r}: step {name!r}: job {job.id} is already inserted; "
                "build a new job with Worker.new(...)"
            )
        if WORKFLOW_KEY in job.meta or EXTRA_KEY in (job.extra or {}):
            raise WorkflowJobReused(
                f"workflow {self.name!r}: step {name!r}: this job is already step "
                f"{job.meta.get(STEP_KEY)!r} of workflow {job.meta.get(WORKFLOW_KEY)}; "
                "build a new job for each step"
            )
        if (job.extra or {}).get("unique") is not None:
            raise WorkflowError(
                f"workflow {self.name!r}: step {name!r}: a unique job cannot be a workflow "
                "step (build it with unique=None)"
            )
        step = self._step(name, deps, on_dep_cancelled, on_dep_discarded, job=job)
        job.meta = {**job.meta, WORKFLOW_KEY: str(self.id), STEP_KEY: step.name}
        self._steps[step.name] = step
        return self

    def add_workflow(
        self,
        name: str,
        workflow: Workflow,
        *,
        deps: Iterable[str] = (),
        on_dep_cancelled: Policy | None = None,
        on_dep_discarded: Policy | None = None,
    ) -> Workflow:
        """Add step ``name`` standing for ``workflow``: its steps start once every step
        in ``deps`` completed, and the step is satisfied when the whole sub-workflow
        completed (cancelled / discarded as its worst step, per the policies)."""
        if not isinstance(workflow, Workflow):
            raise WorkflowError(
                f"workflow {self.name!r}: step {name!r} needs a Workflow, got "
                f"{type(workflow).__name__}"
            )
        if workflow.appending:
            raise WorkflowError(
                f"workflow {self.name!r}: step {name!r}: steps appended to a workflow "
                "cannot be a sub-workflow"
            )
        ancestor: Workflow | None = self
        while ancestor is not None:
            if ancestor is workflow:
                raise WorkflowCycle(self.name, (workflow.name, self.name, workflow.name))
            ancestor = ancestor._parent
        if workflow._parent is not None:
            raise WorkflowJobReused(
                f"workflow {self.name!r}: step {name!r}: workflow {workflow.name!r} is "
                f"already a step of workflow {workflow._parent.name!r}"
            )
        step = self._step(name, deps, on_dep_cancelled, on_dep_discarded, workflow=workflow)
        workflow._parent = self
        self._steps[step.name] = step
        return self

    def _step(
        self,
        name: str,
        deps: Iterable[str],
        on_dep_cancelled: Policy | None,
        on_dep_discarded: Policy | None,
        *,
        job: Job | None = None,
        workflow: Workflow | None = None,
    ) -> Step:
        name = _name(name, "step")
        if name in self._steps:
            raise WorkflowDuplicateStep(self.name, name)
        if isinstance(deps, str):
            raise WorkflowError(
                f"workflow {self.name!r}: step {name!r}: deps must be a list of step "
                f"names, got the string {deps!r}"
            )
        unique: list[str] = []
        for dep in deps:
            dep = _name(dep, "dependency")
            if dep == name:
                raise WorkflowCycle(self.name, (name, name))
            if dep not in unique:
                unique.append(dep)
        where = f"workflow {self.name!r}: step {name!r}"
        return Step(
            name,
            job=job,
            workflow=workflow,
            deps=tuple(unique),
            on_dep_cancelled=None
            if on_dep_cancelled is None
            else _policy(on_dep_cancelled, "on_dep_cancelled", where),
            on_dep_discarded=None
            if on_dep_discarded is None
            else _policy(on_dep_discarded, "on_dep_discarded", where),
        )

    # -- building -----------------------------------------------------------------------

    def validate(self) -> None:
        """Refuse what cannot run, naming it: a dependency on a step the workflow does
        not have (appended steps may name existing ones), a cycle, an empty workflow."""
        if self._parent is not None:
            raise WorkflowError(
                f"workflow {self.name!r} is a step of workflow {self._parent.name!r}: "
                "enqueue that one"
            )
        self._validate_level()

    def _validate_level(self) -> None:
        if not self._steps:
            raise WorkflowError(f"workflow {self.name!r} has no steps")
        if not self.appending:
            for step in self._steps.values():
                for dep in step.deps:
                    if dep not in self._steps:
                        raise WorkflowUnknownDependency(self.name, step.name, dep)
        cycle = find_cycle({name: step.deps for name, step in self._steps.items()})
        if cycle is not None:
            raise WorkflowCycle(self.name, cycle)
        for step in self._steps.values():
            if step.job is not None:
                try:
                    resolve_worker(step.job.worker)
                except WorkerResolutionError as exc:
                    raise WorkflowUnknownWorker(
                        f"workflow {self.name!r}: step {step.name!r}: worker "
                        f"{step.job.worker!r} cannot be resolved here ({exc})"
                    ) from None
            if step.workflow is not None:
                step.workflow._validate_level()

    def plan(self) -> WorkflowPlan:
        """What to insert (validated first; see :meth:`validate`)."""
        self.validate()
        workflows: list[PlannedWorkflow] = []
        steps: list[PlannedStep] = []
        self._plan_into(workflows, steps, parent=None, started=not self.appending)
        return WorkflowPlan(
            root=self.id,
            name=self.name,
            appending=self.appending,
            workflows=tuple(workflows),
            steps=tuple(steps),
        )

    def _plan_into(
        self,
        workflows: list[PlannedWorkflow],
        steps: list[PlannedStep],
        *,
        parent: tuple[UUID, str] | None,
        started: bool,
    ) -> None:
        if not self.appending:
            workflows.append(
                PlannedWorkflow(
                    id=self.id,
                    name=self.name,
                    parent_id=None if parent is None else parent[0],
                    parent_step=None if parent is None else parent[1],
                    steps_total=len(self._steps),
                    on_dep_cancelled=self.on_dep_cancelled,
                    on_dep_discarded=self.on_dep_discarded,
                    started=started,
                )
            )
        for step in self._steps.values():
            local = tuple(d for d in step.deps if d in self._steps)
            steps.append(
                PlannedStep(
                    workflow_id=self.id,
                    name=step.name,
                    job=step.job,
                    sub_workflow_id=None if step.workflow is None else step.workflow.id,
                    deps=step.deps,
                    pending=len(step.deps),
                    external_deps=tuple(d for d in step.deps if d not in local),
                    on_dep_cancelled=step.on_dep_cancelled or self.on_dep_cancelled,
                    on_dep_discarded=step.on_dep_discarded or self.on_dep_discarded,
                )
            )
            if step.workflow is not None:
                step.workflow._plan_into(
                    workflows,
                    steps,
                    parent=(self.id, step.name),
                    started=started and not step.deps,
                )

    def jobs(self) -> list[Job]:
        """The jobs to insert, in one batch (``oban.enqueue_many(*wf.jobs())``): every
        step's job, sub-workflows' included, each carrying the plan. Validates first."""
        plan = self.plan()
        found: list[Job] = []
        for step in plan.steps:
            if step.job is None:
                continue
            # Suspended until the insert hook decides: a job that reached oban's own
            # insert (no hooks in this process) never runs out of order.
            step.job.state = JobState.SUSPENDED
            step.job.extra = {**(step.job.extra or {}), EXTRA_KEY: plan}
            found.append(step.job)
        return found

    async def enqueue(self, oban: Any, *, conn: AsyncConnection[Any] | Any = None) -> list[Job]:
        """Insert the whole workflow atomically (in the caller's transaction with
        ``conn=``) through ``oban.enqueue_many``; returns the inserted jobs. Needs
        Powertools' hooks in this process, like unique jobs."""
        inserted: list[Job] = await oban.enqueue_many(self.jobs(), conn=conn)
        if not all((job.extra or {}).get("workflow_inserted") for job in inserted):
            raise WorkflowNotInserted(
                f"workflow {self.name!r} reached oban's own insert: the Powertools hooks "
                "are not installed in this process (build powertools.oban_options() or "
                "import oban_powertools.oban_cli before enqueueing). Its jobs were "
                "inserted suspended and will not run."
            )
        return inserted

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, id={self.id}, steps={list(self._steps)!r})"
