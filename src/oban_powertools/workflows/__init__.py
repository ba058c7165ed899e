"""Workflows: DAGs of jobs whose steps run once their dependencies completed.

The domain side (pure, no database): :class:`Workflow` builds and validates the graph
(:mod:`.model`, :mod:`.graph`) and :class:`~.plan.WorkflowPlan` says what to insert.
The runtime side inserts it (the insert hook), releases steps in the transaction that
acks their dependencies (:mod:`oban_powertools.runtime.acks`) and repairs missed
releases. See docs/workflows.md.
"""

from .model import POLICIES, Policy, Step, Workflow
from .plan import EXTRA_KEY, STEP_KEY, WORKFLOW_KEY, PlannedStep, PlannedWorkflow, WorkflowPlan

__all__ = [
    "EXTRA_KEY",
    "POLICIES",
    "STEP_KEY",
    "WORKFLOW_KEY",
    "PlannedStep",
    "PlannedWorkflow",
    "Policy",
    "Step",
    "Workflow",
    "WorkflowPlan",
]
