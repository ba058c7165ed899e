"""The explainer's answers for a workflow step: what a suspended step waits on, that a
release was missed, or which dependency took a cancelled step down.

A step's job stays ``suspended`` until every dependency has completed (or finished in a
way its policy ignores); the ack of the last one releases it in the same transaction.
So a suspended step either waits on dependencies that have not finished (named, each
with its state and job), or every dependency has finished and the release was missed
(the periodic workflow repair releases it, or cancels it when a dependency took it
down). A step cancelled without running names the dependency that did not complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common import NATIVE, NextPath
from .gather import Situation
from .model import Evidence, Reason

__all__ = ["workflow_step"]

FAILED = ("cancelled", "discarded")
# Dependencies named one by one in the title; the evidence lists each of them.
TITLE_DEPS = 5


def _dep_state(dep: Mapping[str, Any]) -> str:
    if dep.get("outcome"):
        state = str(dep["outcome"])
    elif dep.get("sub_workflow_id"):
        state = str(dep.get("sub_state") or "missing")
    else:
        state = str(dep.get("job_state") or "job missing")
    if dep.get("job_id"):
        return f"{state} (job {dep['job_id']})"
    if dep.get("sub_workflow_id"):
        return f"{state} (sub-workflow {dep['sub_workflow_id']})"
    return state


def _dep_path(s: Situation, dep: Mapping[str, Any], name: str) -> NextPath | None:
    if dep.get("job_id"):
        return NextPath(f"Job {dep['job_id']} (step {name})", NATIVE, f"/jobs/{dep['job_id']}")
    if dep.get("sub_workflow_id"):
        return NextPath(f"Sub-workflow {name}", NATIVE, f"/workflows/{dep['sub_workflow_id']}")
    return None


def workflow_step(s: Situation) -> list[Reason]:
    step = s.step
    if step is None or s.state not in ("suspended", "cancelled"):
        return []
    wid = str(step["workflow_id"])
    workflow = s.show("workflow", step["workflow_name"], "workflow_name")
    deps: list[Mapping[str, Any]] = list(step["deps"] or [])
    names = {str(d["name"]): s.show("workflow_step", d["name"], "deps") for d in deps}
    page = NextPath(f"Workflow {workflow}", NATIVE, f"/workflows/{wid}")

    if s.state == "cancelled":
        failed = [d for d in deps if d.get("outcome") in FAILED]
        if step["outcome"] != "cancelled" or not (failed or step["cancelled_by"]):
            return []
        why = s.display.free_text(
            "workflow_step", step["cancelled_by"] or "", resource=s.resource, field="cancelled_by"
        )
        which = ", ".join(f"{names[d['name']]} ({d['outcome']})" for d in failed)
        evidence = [Evidence(f"Dependency {names[d['name']]}", _dep_state(d)) for d in failed]
        if why:
            evidence.append(Evidence("Recorded reason", why))
        paths = [p for d in failed if (p := _dep_path(s, d, names[d["name"]]))]
        paths.append(
            NextPath(
                "Retry the workflow (its failed steps and their dependents)",
                NATIVE,
                f"/workflows/{wid}",
            )
        )
        title = (
            f"It was cancelled without running because its dependency {which} did not "
            "complete: its workflow cancels the dependents of a failed step"
            if failed
            else "It was cancelled without running by its workflow"
        )
        return [Reason("workflow_dependency_failed", title, evidence, paths)]

    waiting = [d for d in deps if not d.get("outcome")]
    evidence = [Evidence(f"Dependency {names[d['name']]}", _dep_state(d)) for d in deps]
    evidence.append(Evidence("Workflow", f"{workflow} ({step['workflow_state']})"))
    if waiting:
        shown = [names[d["name"]] for d in waiting]
        listed = ", ".join(shown[:TITLE_DEPS]) + (
            f" and {len(shown) - TITLE_DEPS} more" if len(shown) > TITLE_DEPS else ""
        )
        paths = [p for d in waiting[:TITLE_DEPS] if (p := _dep_path(s, d, names[d["name"]]))]
        return [
            Reason(
                "workflow_dependencies",
                f"Waiting on dependencies {listed}: it runs once they have completed",
                evidence,
                [*paths, page],
            )
        ]
    return [
        Reason(
            "workflow_release_missed",
            "Every dependency has finished, yet it is still suspended: its release was "
            "missed. The periodic workflow repair releases it (or cancels it, when a "
            "dependency took it down) and records that it did",
            evidence,
            [
                NextPath(
                    f"Workflow {workflow}",
                    NATIVE,
                    f"/workflows/{wid}",
                    note="Nothing to do: the repair runs on the leader every few seconds.",
                )
            ],
        )
    ]
