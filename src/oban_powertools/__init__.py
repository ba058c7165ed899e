"""oban-powertools: an audited operator control plane and runtime power tools for oban-py."""

from importlib import metadata as _metadata

from .actions.errors import (
    ActionError,
    InvalidParams,
    InvalidReason,
    InvalidTargets,
    NotApplicable,
    PreviewConsumed,
    PreviewDrifted,
    PreviewExpired,
    PreviewNotFound,
    PreviewOtherActor,
    ReasonRequired,
    ReasonTooLong,
    ReasonTooShort,
    Unauthorized,
    UnknownAction,
    UnknownTarget,
)
from .config import Config
from .errors import (
    ArgsValidationError,
    ConfigError,
    CronEntryError,
    CronExpressionError,
    CronTimezoneError,
    DeadlinePassed,
    FilterError,
    InvalidArgument,
    JobArgsInvalid,
    LimitOptionError,
    MigrationError,
    PowertoolsError,
    QueryFileError,
    UniqueConflictUnresolved,
    UniqueOptionError,
    WorkflowCycle,
    WorkflowDuplicateStep,
    WorkflowError,
    WorkflowFinished,
    WorkflowJobReused,
    WorkflowNotFound,
    WorkflowNotInserted,
    WorkflowStepNameInvalid,
    WorkflowUnknownDependency,
    WorkflowUnknownWorker,
)
from .install.layout import InstallError
from .powertools import Powertools
from .runtime.workflow_results import workflow_results
from .seams import Auth, DisplayContext, DisplayPolicy, Principal, Resource
from .workers import Sensitive, typed_worker
from .workflows import Workflow

try:
    __version__ = _metadata.version("oban-powertools")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, never installed: no metadata
    __version__ = "0+unknown"

__all__ = [
    "ActionError",
    "ArgsValidationError",
    "Auth",
    "Config",
    "ConfigError",
    "LimitOptionError",
    "CronEntryError",
    "CronExpressionError",
    "CronTimezoneError",
    "DeadlinePassed",
    "DisplayContext",
    "DisplayPolicy",
    "FilterError",
    "InstallError",
    "InvalidArgument",
    "InvalidParams",
    "InvalidReason",
    "InvalidTargets",
    "JobArgsInvalid",
    "MigrationError",
    "NotApplicable",
    "Powertools",
    "PowertoolsError",
    "PreviewConsumed",
    "PreviewDrifted",
    "PreviewExpired",
    "PreviewNotFound",
    "PreviewOtherActor",
    "Principal",
    "QueryFileError",
    "UniqueConflictUnresolved",
    "UniqueOptionError",
    "ReasonRequired",
    "Sensitive",
    "ReasonTooLong",
    "ReasonTooShort",
    "Resource",
    "Unauthorized",
    "UnknownAction",
    "UnknownTarget",
    "__version__",
    "typed_worker",
    "workflow_results",
    "Workflow",
    "WorkflowCycle",
    "WorkflowDuplicateStep",
    "WorkflowError",
    "WorkflowFinished",
    "WorkflowJobReused",
    "WorkflowNotFound",
    "WorkflowNotInserted",
    "WorkflowStepNameInvalid",
    "WorkflowUnknownDependency",
    "WorkflowUnknownWorker",
]
