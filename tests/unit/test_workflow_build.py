"""Building a workflow: validation refuses what cannot run, naming it (no database)."""

from __future__ import annotations

from typing import Any

import pytest
from oban import worker

from oban_powertools import (
    PowertoolsError,
    WorkflowCycle,
    WorkflowDuplicateStep,
    WorkflowError,
    WorkflowJobReused,
    WorkflowStepNameInvalid,
    WorkflowUnknownDependency,
)
from oban_powertools.workflows import STEP_KEY, WORKFLOW_KEY, Workflow
from oban_powertools.workflows.graph import find_cycle, topological_order


@worker(queue="wf-unit")
class Step:
    async def process(self, job: Any) -> None:
        return None


def job(n: int = 0) -> Any:
    return Step.new({"n": n})


def test_a_diamond_plans_its_rows_and_marks_its_jobs() -> None:
    wf = Workflow(name="diamond")
    wf.add("a", job()).add("b", job(), deps=["a"]).add("c", job(), deps=["a"])
    wf.add("d", job(), deps=["b", "c"], on_dep_discarded="ignore")
    plan = wf.plan()
    assert [(s.name, s.pending) for s in plan.steps] == [("a", 0), ("b", 1), ("c", 1), ("d", 2)]
    assert sorted(plan.edges()) == sorted(
        [(wf.id, "a", "b"), (wf.id, "a", "c"), (wf.id, "b", "d"), (wf.id, "c", "d")]
    )
    d = plan.steps[3]
    assert (d.on_dep_cancelled, d.on_dep_discarded) == ("cancel", "ignore")
    jobs = wf.jobs()
    assert [j.meta[STEP_KEY] for j in jobs] == ["a", "b", "c", "d"]
    assert {j.meta[WORKFLOW_KEY] for j in jobs} == {str(wf.id)}
    assert all(j.state == "suspended" and j.extra["workflow"].root == wf.id for j in jobs)


def test_a_cycle_is_refused_naming_its_steps_in_order() -> None:
    wf = Workflow(name="loop")
    wf.add("a", job(), deps=["c"]).add("b", job(), deps=["a"]).add("c", job(), deps=["b"])
    wf.add("x", job())
    with pytest.raises(WorkflowCycle) as caught:
        wf.jobs()
    assert caught.value.cycle == ("a", "b", "c", "a")
    assert "a -> b -> c -> a" in str(caught.value)
    assert caught.value.code == "workflow_cycle"
    assert isinstance(caught.value, PowertoolsError)


def test_a_step_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(WorkflowCycle, match="a -> a"):
        Workflow().add("a", job(), deps=["a"])


def test_unknown_dependencies_duplicates_empty_names_and_reused_jobs_are_refused() -> None:
    wf = Workflow(name="w").add("a", job(), deps=["nope"])
    with pytest.raises(WorkflowUnknownDependency, match="'a' depends on 'nope'"):
        wf.plan()
    with pytest.raises(WorkflowDuplicateStep, match="already has a step named 'a'"):
        Workflow(name="w").add("a", job()).add("a", job())
    with pytest.raises(WorkflowStepNameInvalid):
        Workflow().add("", job())
    with pytest.raises(WorkflowStepNameInvalid):
        Workflow().add("a", job(), deps=[""])
    shared = job()
    Workflow(name="first").add("a", shared)
    with pytest.raises(WorkflowJobReused, match="already step 'a'"):
        Workflow(name="second").add("b", shared)
    with pytest.raises(WorkflowError, match="no steps"):
        Workflow(name="empty").jobs()
    with pytest.raises(WorkflowError, match="on_dep_cancelled must be"):
        Workflow(on_dep_cancelled="skip")  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="list of step names"):
        Workflow().add("a", job(), deps="b")


def test_sub_workflows_start_with_their_parent_step_and_cannot_be_reused() -> None:
    inner = Workflow(name="inner").add("x", job()).add("y", job(), deps=["x"])
    outer = Workflow(name="outer").add("a", job()).add_workflow("sub", inner, deps=["a"])
    outer.add("z", job(), deps=["sub"])
    plan = outer.plan()
    started = {w.name: w.started for w in plan.workflows}
    assert started == {"outer": True, "inner": False}
    sub = next(s for s in plan.steps if s.name == "sub")
    assert sub.job is None and sub.sub_workflow_id == inner.id
    assert [j.meta[WORKFLOW_KEY] for j in outer.jobs()] == [
        str(outer.id),
        str(inner.id),
        str(inner.id),
        str(outer.id),
    ]
    with pytest.raises(WorkflowJobReused, match="already a step of workflow 'outer'"):
        Workflow(name="other").add_workflow("again", inner)
    with pytest.raises(WorkflowCycle):
        inner.add_workflow("back", outer)
    with pytest.raises(WorkflowError, match="enqueue that one"):
        inner.jobs()


def test_appended_steps_may_depend_on_steps_already_in_the_database() -> None:
    wf = Workflow.appending_to("0b0e1f2a-0000-4000-8000-000000000000")
    wf.add("late", job(), deps=["existing", "local"]).add("local", job())
    plan = wf.plan()
    assert plan.appending and plan.workflows == ()
    late = plan.steps[0]
    assert late.external_deps == ("existing",) and late.pending == 2


def test_graph_helpers() -> None:
    assert find_cycle({"a": [], "b": ["a"]}) is None
    assert topological_order({"c": ["b"], "b": ["a"], "a": []}) == ["a", "b", "c"]
