-- The workflow actions (actions/workflows.py): cancel_workflow and retry_workflow. Their
-- previews read what the action would touch; their confirms lock it in the order the ack
-- path takes its locks (jobs, then steps, then workflows, each in key order), check it
-- against the preview, then change jobs, steps and counters in the pipeline's
-- transaction. The tree (a workflow and its sub-workflows) is powertools_workflow_tree
-- (migration 0014).

-- name: cancel_plan
-- What cancelling a workflow touches: the workflow and its sub-workflows (the tree),
-- and every unfinished step's job that is still waiting or running, with its step.
SELECT s.workflow_id, s.name AS step, j.id AS job_id, j.state::text AS state, j.attempt
FROM powertools_workflow_tree(%(id)s::uuid) AS tree
JOIN powertools_workflow_steps s ON s.workflow_id = tree.id AND s.outcome IS NULL
JOIN oban_jobs j ON j.id = s.job_id
WHERE j.state IN ('suspended', 'available', 'scheduled', 'retryable', 'executing')
ORDER BY j.id

-- name: cancel_plan_for_update
-- cancel_plan with the jobs locked (first, as the ack path locks them).
SELECT s.workflow_id, s.name AS step, j.id AS job_id, j.state::text AS state, j.attempt
FROM powertools_workflow_tree(%(id)s::uuid) AS tree
JOIN powertools_workflow_steps s ON s.workflow_id = tree.id AND s.outcome IS NULL
JOIN oban_jobs j ON j.id = s.job_id
WHERE j.state IN ('suspended', 'available', 'scheduled', 'retryable', 'executing')
ORDER BY j.id
FOR UPDATE OF j

-- name: workflow_tree
-- A workflow and its sub-workflows, each with its state and counters.
SELECT w.id, w.name, w.state, w.parent_workflow_id, w.steps_total, w.steps_completed,
       w.steps_cancelled, w.steps_discarded
FROM powertools_workflows w
WHERE w.id IN (SELECT id FROM powertools_workflow_tree(%(id)s::uuid))
ORDER BY w.id = %(id)s::uuid DESC, w.id

-- name: lock_tree_steps
-- Lock the unfinished steps of a workflow tree (key order, as the ack path does), then
-- the tree's workflows (id order): what a workflow action changes, locked before it is
-- read again.
WITH steps AS (
    SELECT s.workflow_id, s.name FROM powertools_workflow_steps s
    WHERE s.workflow_id IN (SELECT id FROM powertools_workflow_tree(%(id)s::uuid))
    ORDER BY s.workflow_id, s.name
    FOR NO KEY UPDATE
)
SELECT count(*) AS n FROM steps

-- name: lock_tree
-- The workflows of a tree, locked in id order (after their steps).
SELECT w.id FROM powertools_workflows w
WHERE w.id IN (SELECT id FROM powertools_workflow_tree(%(id)s::uuid))
ORDER BY w.id
FOR NO KEY UPDATE

-- name: cancel_tree
-- Cancel a workflow tree whose jobs were just cancelled: the steps whose job no longer
-- runs (cancelled now) and the sub-workflow steps are recorded as cancelled, counted into
-- their workflows, and every unfinished workflow of the tree ends cancelled. A step whose
-- job was executing is left to its ack, which records it (its workflow is finished
-- already, so the ack changes only the counters).
WITH tree AS (
    SELECT id FROM powertools_workflow_tree(%(id)s::uuid)
), done AS (
    UPDATE powertools_workflow_steps s
    SET outcome = 'cancelled', finished_at = now()
    WHERE s.workflow_id IN (SELECT id FROM tree) AND s.outcome IS NULL
      AND (s.job_id = ANY(%(cancelled)s::bigint[])
           OR (s.job_id IS NULL AND s.sub_workflow_id IS NOT NULL))
    RETURNING s.workflow_id
), counted AS (
    SELECT workflow_id, count(*) AS n FROM done GROUP BY workflow_id
)
UPDATE powertools_workflows w
SET steps_cancelled = w.steps_cancelled + coalesce(c.n, 0),
    state = CASE WHEN w.state IN ('pending', 'executing') THEN 'cancelled' ELSE w.state END,
    finished_at = CASE WHEN w.state IN ('pending', 'executing') THEN now()
                       ELSE w.finished_at END
FROM tree LEFT JOIN counted c ON c.workflow_id = tree.id
WHERE w.id = tree.id
RETURNING w.id, w.state, w.steps_total, w.steps_completed, w.steps_cancelled,
          w.steps_discarded

-- name: retry_plan
-- What retrying a workflow touches: its steps that were cancelled or discarded, each
-- with its job and the dependencies it will wait for again (those not completed: after
-- the retry none is cancelled or discarded any more); 0 means its job runs now.
SELECT s.name AS step, s.outcome, s.cancelled_by, s.job_id, s.sub_workflow_id,
       j.state::text AS state, j.attempt,
       (SELECT count(*) FROM powertools_workflow_edges e
        JOIN powertools_workflow_steps u ON u.workflow_id = e.workflow_id AND u.name = e.upstream
        WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name
          AND u.outcome IS DISTINCT FROM 'completed') AS pending
FROM powertools_workflow_steps s
LEFT JOIN oban_jobs j ON j.id = s.job_id
WHERE s.workflow_id = %(id)s::uuid AND s.outcome IN ('cancelled', 'discarded')
ORDER BY s.name

-- name: lock_retry_jobs
-- The jobs of a workflow's cancelled and discarded steps, locked (first, as the ack path
-- locks them) before retry_plan is read again.
SELECT j.id
FROM powertools_workflow_steps s
JOIN oban_jobs j ON j.id = s.job_id
WHERE s.workflow_id = %(id)s::uuid AND s.outcome IN ('cancelled', 'discarded')
ORDER BY j.id
FOR UPDATE OF j

-- name: retry_workflow
-- Retry a workflow's cancelled and discarded steps in one statement (steps and workflow
-- locked by the caller). Those steps are unfinished again; their pending, and that of
-- every unfinished step whose job still waits (a dependent that ignored a failure waits
-- for the retried step again), is recomputed from the dependencies not completed; the
-- failed steps' jobs run again (available: oban's retry, with one more attempt for an
-- exhausted job) when nothing is pending, else wait suspended; the workflow executes
-- again with its counters taken back.
WITH failed AS (
    SELECT s.workflow_id, s.name, s.job_id, s.outcome
    FROM powertools_workflow_steps s
    WHERE s.workflow_id = %(id)s::uuid AND s.outcome IN ('cancelled', 'discarded')
      AND s.job_id IS NOT NULL
), waiting AS (
    SELECT s.workflow_id, s.name, s.job_id
    FROM powertools_workflow_steps s
    JOIN oban_jobs j ON j.id = s.job_id
    WHERE s.workflow_id = %(id)s::uuid AND s.outcome IS NULL AND j.state = 'suspended'
    UNION ALL
    SELECT workflow_id, name, job_id FROM failed
), counted AS (
    SELECT w.workflow_id, w.name, w.job_id,
           (SELECT count(*) FROM powertools_workflow_edges e
            JOIN powertools_workflow_steps u
              ON u.workflow_id = e.workflow_id AND u.name = e.upstream
            WHERE e.workflow_id = w.workflow_id AND e.downstream = w.name
              AND u.outcome IS DISTINCT FROM 'completed') AS pending
    FROM waiting w
), steps_done AS (
    UPDATE powertools_workflow_steps s
    SET pending = c.pending, outcome = NULL, finished_at = NULL, cancelled_by = NULL
    FROM counted c
    WHERE s.workflow_id = c.workflow_id AND s.name = c.name
    RETURNING s.name
), jobs_done AS (
    UPDATE oban_jobs j
    SET state = (CASE WHEN c.pending = 0 THEN 'available' ELSE 'suspended' END)::oban_job_state,
        max_attempts = CASE WHEN c.pending = 0 THEN GREATEST(j.max_attempts, j.attempt + 1)
                            ELSE j.max_attempts END,
        scheduled_at = timezone('UTC', now()),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    FROM counted c JOIN failed f ON f.name = c.name
    WHERE j.id = c.job_id
    RETURNING j.id, j.state::text AS state, j.queue, j.attempt, j.max_attempts
), workflow_done AS (
    UPDATE powertools_workflows w
    SET state = 'executing', finished_at = NULL,
        steps_cancelled = w.steps_cancelled
                          - (SELECT count(*) FROM failed WHERE outcome = 'cancelled'),
        steps_discarded = w.steps_discarded
                          - (SELECT count(*) FROM failed WHERE outcome = 'discarded')
    WHERE w.id = %(id)s::uuid
    RETURNING w.state, w.steps_total, w.steps_completed, w.steps_cancelled,
              w.steps_discarded
)
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'id', id, 'state', state, 'queue', queue, 'attempt', attempt,
            'max_attempts', max_attempts) ORDER BY id), '[]'::jsonb) FROM jobs_done) AS jobs,
       (SELECT count(*) FROM steps_done) AS steps,
       (SELECT to_jsonb(workflow_done) FROM workflow_done) AS workflow
