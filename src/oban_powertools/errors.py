"""The library's error types. Every message names what is wrong and how to fix it.

Every error the library raises on purpose derives from :class:`PowertoolsError` and has a
``code`` that stays the same across releases: the JSON API and the CLI print it, and
hosts may match on it. The action pipeline's errors (``ActionError`` and its family) live
in :mod:`oban_powertools.actions.errors`; the package root exports them all.
"""

from __future__ import annotations

from typing import ClassVar


class PowertoolsError(Exception):
    """Base class for every error this library raises on purpose."""

    code: ClassVar[str] = "powertools_error"


class ConfigError(PowertoolsError, ValueError):
    """A required setting is missing or invalid. Raised at start-up, never silently defaulted."""

    code = "config_invalid"

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem}. {fix}")


class MigrationError(PowertoolsError):
    """The schema cannot be brought to the requested version."""

    code = "migration_failed"


class QueryFileError(PowertoolsError):
    """A query file is malformed, or a module asked for a statement that does not exist.

    Raised when a module is imported, so a broken file never reaches a running node."""

    code = "query_file_invalid"


class InvalidArgument(PowertoolsError, ValueError):
    """A library function or class was given a value it cannot take (a non-positive
    interval, an unknown surface, a naive datetime ...). Nothing was changed."""

    code = "invalid_argument"


class CronExpressionError(InvalidArgument):
    """A cron expression could not be parsed or can never match."""

    code = "cron_expression_invalid"


class CronTimezoneError(InvalidArgument):
    """A time zone name is unknown or not an acceptable IANA key."""

    code = "cron_timezone_invalid"


class CronEntryError(InvalidArgument):
    """A cron entry definition is invalid; nothing was written."""

    code = "cron_entry_invalid"


class FilterError(InvalidArgument):
    """A list page's filter cannot be applied (unknown state, too long ...)."""

    code = "filter_invalid"


class LimitOptionError(ConfigError):
    """A queue's limiter option (``global_limit``, ``rate_limit``, a partition) is
    unknown or invalid; the instance does not start."""

    code = "limit_option_invalid"


class UniqueOptionError(InvalidArgument):
    """A job's ``unique`` option (on the worker or the insert) is invalid; nothing was
    inserted."""

    code = "unique_option_invalid"


class UniqueConflictUnresolved(PowertoolsError):
    """A unique insert conflicted with a job this transaction cannot see (another
    transaction holds the key and this one's snapshot predates it, e.g. under REPEATABLE
    READ). Nothing was inserted for that job."""

    code = "unique_conflict_unresolved"


class ArgsValidationError(InvalidArgument):
    """A typed worker's args do not fit its schema: ``path`` names the field
    (``ExportArgs.customer_id``), ``problem`` says what is wrong. Raised by
    ``Worker.new``/``enqueue``; nothing was inserted."""

    code = "args_invalid"

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class JobArgsInvalid(ArgsValidationError):
    """A job's stored args no longer fit its typed worker's schema (the schema changed
    after the job was enqueued). Retrying cannot help: with Powertools' hooks installed
    the job is discarded at once, with this message in its errors."""

    code = "job_args_invalid"


class DeadlinePassed(PowertoolsError):
    """A typed worker's job was still running at its deadline (``meta.deadline_at``);
    ``on_error`` receives this, and the job is cancelled ("deadline passed while
    running")."""

    code = "deadline_passed"


class ExtraNotInstalled(ConfigError):
    """An optional integration was used without the extra that brings its dependency."""

    code = "extra_not_installed"

    def __init__(self, extra: str, feature: str, missing: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"oban-powertools[{extra}]",
            f"{feature} needs {missing}, which is not installed",
            f'Install the extra: pip install "oban-powertools[{extra}]"',
        )


class WorkflowError(InvalidArgument):
    """A workflow cannot be built or enqueued as given; nothing was inserted. The
    subclasses name the problem; this base is for the rest (a bad option, a batch that
    holds part of a workflow)."""

    code = "workflow_invalid"


class WorkflowCycle(WorkflowError):
    """A workflow's dependencies form a cycle; ``cycle`` names its steps in order, the
    first repeated at the end (``("a", "b", "a")``)."""

    code = "workflow_cycle"

    def __init__(self, workflow: str, cycle: tuple[str, ...]) -> None:
        self.workflow = workflow
        self.cycle = cycle
        super().__init__(
            f"workflow {workflow!r}: its dependencies form a cycle: {' -> '.join(cycle)}"
        )


class WorkflowUnknownDependency(WorkflowError):
    """A step depends on a step its workflow does not have."""

    code = "workflow_unknown_dependency"

    def __init__(self, workflow: str, step: str, dependency: str) -> None:
        self.workflow = workflow
        self.step = step
        self.dependency = dependency
        super().__init__(
            f"workflow {workflow!r}: step {step!r} depends on {dependency!r}, which is not "
            "a step of this workflow; add it first or fix the name"
        )


class WorkflowDuplicateStep(WorkflowError):
    """Two steps of one workflow have the same name."""

    code = "workflow_duplicate_step"

    def __init__(self, workflow: str, step: str) -> None:
        self.workflow = workflow
        self.step = step
        super().__init__(
            f"workflow {workflow!r} already has a step named {step!r}; step names are "
            "unique within a workflow"
        )


class WorkflowStepNameInvalid(WorkflowError):
    """A step (or workflow) name is empty or not a string."""

    code = "workflow_step_name_invalid"


class WorkflowJobReused(WorkflowError):
    """A job (or sub-workflow) is already part of a workflow: each job is one step of
    one workflow, so build a new job for the second step."""

    code = "workflow_job_reused"


class WorkflowUnknownWorker(WorkflowError):
    """A step's job names a worker this process cannot resolve (oban would fail it at
    run time; a workflow refuses it before anything is inserted)."""

    code = "workflow_unknown_worker"


class WorkflowNotInserted(PowertoolsError):
    """A workflow's jobs reached oban's own insert, not Powertools': the hooks are not
    installed in this process (build ``powertools.oban_options()`` or import
    ``oban_powertools.oban_cli`` first). The jobs were inserted suspended and will not
    run."""

    code = "workflow_not_inserted"


class WorkflowNotFound(PowertoolsError):
    """Steps were appended to a workflow id that is not in the database."""

    code = "workflow_not_found"


class WorkflowFinished(PowertoolsError):
    """Steps were appended to a workflow that has already finished; nothing was
    inserted."""

    code = "workflow_finished"


class ChainError(InvalidArgument):
    """A chain link cannot be enqueued as given (an empty chain key, a bad
    ``on_failure``, a job that is also a workflow step or unique); nothing was
    inserted."""

    code = "chain_invalid"


class BatchError(InvalidArgument):
    """A batch cannot be built or enqueued as given (no jobs, a job already in a batch,
    a bad option); nothing was inserted."""

    code = "batch_invalid"


class BatchCallbackUnknown(BatchError):
    """A batch callback names a worker that cannot be resolved (the way oban resolves
    a job's worker when it runs it); nothing was inserted."""

    code = "batch_callback_unknown"

    def __init__(self, batch: str, kind: str, worker: str, problem: str) -> None:
        self.batch = batch
        self.kind = kind
        self.worker = worker
        super().__init__(f"batch {batch!r}: {kind} names worker {worker!r}, which {problem}")


class CompositeNotInserted(PowertoolsError):
    """Chain links or batch jobs reached oban's own insert, not Powertools': the hooks
    are not installed in this process. Chain links were inserted without their chain
    and may run out of order; a batch's callbacks will not fire."""

    code = "composite_not_inserted"
