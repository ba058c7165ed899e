-- What the workflow pages, the workflow forensics bundle and the explainer read
-- (read_models/workflows.py, forensics/workflow.py). Every statement reads a bounded
-- number of rows: a keyset page walked along the (state, inserted_at, id) index, one
-- workflow's row, a capped page of its steps.

-- name: list_workflows
-- One keyset page of workflows, newest first (ties by id), optionally of one state and
-- one name. Each state is its own walk of the (state, inserted_at DESC, id) index, at
-- most limit rows, and the walks are merged: the page costs the same at 100 workflows
-- or 10 million. The cursor is the last row's (inserted_at, id).
SELECT w.*
FROM unnest(%(states)s::text[]) AS s(state)
CROSS JOIN LATERAL (
    SELECT id, name, state, parent_workflow_id, parent_step, steps_total, steps_completed,
           steps_cancelled, steps_discarded, inserted_at, started_at, finished_at
    FROM powertools_workflows
    WHERE state = s.state
      AND (%(name)s::text IS NULL OR name = %(name)s::text)
      AND (%(before_at)s::timestamptz IS NULL
           OR inserted_at < %(before_at)s::timestamptz
           OR (inserted_at = %(before_at)s::timestamptz AND id > %(before_id)s::uuid))
    ORDER BY inserted_at DESC, id
    LIMIT %(limit)s
) w
ORDER BY w.inserted_at DESC, w.id
LIMIT %(limit)s

-- name: workflow_state_counts
-- How many workflows are in each state, counted along the state index up to cap + 1.
SELECT s.state,
       (SELECT count(*) FROM (
            SELECT 1 FROM powertools_workflows w
            WHERE w.state = s.state
              AND (%(name)s::text IS NULL OR w.name = %(name)s::text)
            LIMIT %(cap)s + 1) capped) AS n
FROM unnest(%(states)s::text[]) AS s(state)

-- name: workflow
-- One workflow, with its parent's name and the database's clock.
SELECT w.id, w.name, w.state, w.parent_workflow_id, w.parent_step, w.steps_total,
       w.steps_completed, w.steps_cancelled, w.steps_discarded, w.on_dep_cancelled,
       w.on_dep_discarded, w.inserted_at, w.started_at, w.finished_at,
       p.name AS parent_name, p.state AS parent_state, now() AS db_now
FROM powertools_workflows w
LEFT JOIN powertools_workflows p ON p.id = w.parent_workflow_id
WHERE w.id = %(id)s::uuid

-- name: workflow_steps
-- A page of one workflow's steps by name (an offset along the primary key: a workflow's
-- steps are thousands at most, and a name in a page link would be host data), each with its job's state (or its
-- sub-workflow's state and progress), and whether every dependency has finished.
SELECT s.name, s.job_id, s.sub_workflow_id, s.deps, s.pending, s.outcome, s.cancelled_by,
       s.on_dep_cancelled, s.on_dep_discarded, s.inserted_at, s.finished_at,
       j.state::text AS job_state, j.worker, j.queue, j.attempt, j.max_attempts,
       j.attempted_at, j.completed_at, j.cancelled_at, j.discarded_at,
       sw.name AS sub_name, sw.state AS sub_state, sw.steps_total AS sub_total,
       sw.steps_completed AS sub_completed,
       (s.outcome IS NULL AND NOT EXISTS (
            SELECT 1 FROM powertools_workflow_edges e
            JOIN powertools_workflow_steps u
              ON u.workflow_id = e.workflow_id AND u.name = e.upstream
            WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name
              AND u.outcome IS NULL)) AS deps_finished
FROM powertools_workflow_steps s
LEFT JOIN oban_jobs j ON j.id = s.job_id
LEFT JOIN powertools_workflows sw ON sw.id = s.sub_workflow_id
WHERE s.workflow_id = %(id)s::uuid
ORDER BY s.name
OFFSET %(offset)s
LIMIT %(limit)s

-- name: workflow_edges
-- One workflow's dependencies (for drawing its graph), capped.
SELECT upstream, downstream FROM powertools_workflow_edges
WHERE workflow_id = %(id)s::uuid
ORDER BY upstream, downstream
LIMIT %(limit)s

-- name: workflow_step_states
-- How many of one workflow's steps are in each shown state (a job step: its job's
-- state; a sub-workflow step: its sub-workflow's), for workflows too large to draw.
SELECT coalesce(j.state::text, sw.state, s.outcome, 'missing') AS state, count(*) AS n
FROM powertools_workflow_steps s
LEFT JOIN oban_jobs j ON j.id = s.job_id
LEFT JOIN powertools_workflows sw ON sw.id = s.sub_workflow_id
WHERE s.workflow_id = %(id)s::uuid
GROUP BY 1
ORDER BY 1

-- name: sub_workflows
-- The sub-workflows of one workflow (through the parent index), capped.
SELECT id, name, state, parent_workflow_id, parent_step, steps_total, steps_completed,
       steps_cancelled, steps_discarded, inserted_at, started_at, finished_at
FROM powertools_workflows
WHERE parent_workflow_id = %(id)s::uuid
ORDER BY parent_step
LIMIT %(limit)s

-- name: step_of_job
-- The workflow step a job is (the explainer and the job page): the step, its workflow,
-- and each dependency with how it finished and its job.
SELECT s.workflow_id, s.name, s.pending, s.outcome, s.cancelled_by, w.name AS workflow_name,
       w.state AS workflow_state,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'name', u.name, 'outcome', u.outcome, 'job_id', u.job_id,
                   'job_state', uj.state::text, 'sub_workflow_id', u.sub_workflow_id,
                   'sub_state', usw.state) ORDER BY u.name), '[]'::jsonb)
        FROM powertools_workflow_edges e
        JOIN powertools_workflow_steps u ON u.workflow_id = e.workflow_id AND u.name = e.upstream
        LEFT JOIN oban_jobs uj ON uj.id = u.job_id
        LEFT JOIN powertools_workflows usw ON usw.id = u.sub_workflow_id
        WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name) AS deps
FROM powertools_workflow_steps s
JOIN powertools_workflows w ON w.id = s.workflow_id
WHERE s.job_id = %(job_id)s::bigint
