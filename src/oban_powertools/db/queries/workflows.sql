-- Workflows (workflows/, runtime/workflow_insert.py, runtime/workflow_release.py,
-- runtime/workflow_repair.py). These statements run on oban's pool and on the host's
-- connection (its transaction, its search_path): they name every table in ``{schema}``,
-- composed as an identifier (db.queries.InSchema). No other braces may appear in them.

-- name: insert_jobs
-- Insert a batch of jobs (workflow steps, chain links, batch jobs, and plain jobs enqueued
-- with them; runtime/chain_batch_insert.py uses it too) in one statement, ids drawn first
-- so each input row is matched to its job; the same defaults as oban's own insert, plus
-- cancelled_at for a job inserted cancelled (so pruning sees it). Available jobs wake
-- their queue's producers.
WITH input AS (
    SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) AS id, t.*
    FROM unnest(%(args)s::jsonb[], %(meta)s::jsonb[], %(inserted_at)s::timestamp[],
                %(max_attempts)s::smallint[], %(priority)s::smallint[], %(queue)s::text[],
                %(scheduled_at)s::timestamp[], %(state)s::text[], %(tags)s::jsonb[],
                %(worker)s::text[])
         WITH ORDINALITY AS t(args, meta, inserted_at, max_attempts, priority, queue,
                              scheduled_at, state, tags, worker, ord)
), inserted AS (
    INSERT INTO {schema}.oban_jobs AS j (id, args, inserted_at, max_attempts, meta, priority,
                                         queue, scheduled_at, state, tags, worker,
                                         cancelled_at)
    OVERRIDING SYSTEM VALUE
    SELECT id, args, coalesce(inserted_at, timezone('UTC', now())), max_attempts, meta,
           priority, queue, coalesce(scheduled_at, timezone('UTC', now())),
           (CASE WHEN state = 'available' AND scheduled_at IS NOT NULL
                      AND scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                 ELSE state END)::{schema}.oban_job_state,
           ARRAY(SELECT jsonb_array_elements_text(tags)), worker,
           CASE WHEN state = 'cancelled' THEN timezone('UTC', now()) END
    FROM input
    ORDER BY ord
    RETURNING j.id, j.inserted_at, j.queue, j.scheduled_at, j.state
), woken AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
)
SELECT input.ord, inserted.id, inserted.inserted_at, inserted.queue, inserted.scheduled_at,
       inserted.state::text AS state, (SELECT n FROM woken) AS woken
FROM input
JOIN inserted ON inserted.id = input.id
ORDER BY input.ord

-- name: insert_workflows
-- The workflow rows of an enqueue (the root and its sub-workflows), in one statement.
INSERT INTO {schema}.powertools_workflows
    (id, name, parent_workflow_id, parent_step, state, steps_total, on_dep_cancelled,
     on_dep_discarded, started_at)
SELECT w.id, w.name, w.parent_id, w.parent_step, w.state, w.steps_total, w.on_cancelled,
       w.on_discarded, CASE WHEN w.state = 'executing' THEN now() END
FROM unnest(%(ids)s::uuid[], %(names)s::text[], %(parent_ids)s::uuid[],
            %(parent_steps)s::text[], %(states)s::text[], %(steps_total)s::int[],
            %(on_cancelled)s::text[], %(on_discarded)s::text[])
     AS w(id, name, parent_id, parent_step, state, steps_total, on_cancelled, on_discarded)

-- name: insert_steps
-- The step rows of an enqueue, in one statement (a step cancelled at insert, appended
-- after a dependency that takes it down, is inserted finished).
INSERT INTO {schema}.powertools_workflow_steps
    (workflow_id, name, job_id, sub_workflow_id, deps, pending, on_dep_cancelled,
     on_dep_discarded, outcome, cancelled_by, finished_at)
SELECT s.workflow_id, s.name, s.job_id, s.sub_workflow_id,
       ARRAY(SELECT jsonb_array_elements_text(s.deps)), s.pending, s.on_cancelled,
       s.on_discarded, s.outcome, s.cancelled_by, CASE WHEN s.outcome IS NOT NULL THEN now() END
FROM unnest(%(workflow_ids)s::uuid[], %(names)s::text[], %(job_ids)s::bigint[],
            %(sub_workflow_ids)s::uuid[], %(deps)s::jsonb[], %(pending)s::int[],
            %(on_cancelled)s::text[], %(on_discarded)s::text[], %(outcomes)s::text[],
            %(cancelled_by)s::text[])
     AS s(workflow_id, name, job_id, sub_workflow_id, deps, pending, on_cancelled,
          on_discarded, outcome, cancelled_by)

-- name: insert_edges
-- The dependencies of an enqueue, in one statement.
INSERT INTO {schema}.powertools_workflow_edges (workflow_id, upstream, downstream)
SELECT e.workflow_id, e.upstream, e.downstream
FROM unnest(%(workflow_ids)s::uuid[], %(upstreams)s::text[], %(downstreams)s::text[])
     AS e(workflow_id, upstream, downstream)

-- name: lock_workflow
-- The workflow steps are appended to, locked: a step finishing meanwhile (its ack locks
-- the row too, in finish_steps) waits, sees the grown steps_total, and reads the new
-- edges again (runtime/workflow_release.py).
SELECT id, name, state FROM {schema}.powertools_workflows WHERE id = %(id)s FOR NO KEY UPDATE

-- name: existing_steps
-- What appended steps need to know of the steps already in their workflow: which names
-- are taken, and how the ones they depend on finished (outcome NULL: not yet).
SELECT name, outcome FROM {schema}.powertools_workflow_steps
WHERE workflow_id = %(id)s AND name = ANY(%(names)s::text[])

-- name: grow_workflow
-- Count appended steps into their workflow (and the ones cancelled at insert as done).
-- An append always grows steps_total: finish_steps tells by it that its snapshot may
-- lack the appended edges.
UPDATE {schema}.powertools_workflows
SET steps_total = steps_total + %(added)s,
    steps_cancelled = steps_cancelled + %(cancelled)s
WHERE id = %(id)s

-- name: finish_steps
-- Ack jobs (the flush of a producer's composite jobs: oban's ack, as ``ack_job.sql``
-- writes it), record how steps finished, once (the steps those acks finished, and the
-- steps given), count them into their workflows, and satisfy their dependents, in one
-- statement: a chain's step costs its ack this one statement, as a plain job's ack costs
-- oban's. Callers that ack nothing (the propagation's later rounds, the repair, an
-- append) pass empty ack arrays.
-- The ack has oban's semantics: only a job still executing the very attempt that was
-- acked (its attempted_at) is written, so a rescued-and-rerun job's stale ack changes
-- nothing (and finishes no step). A job acked completed / cancelled / discarded whose
-- meta names a workflow (a well-formed id) and a step finishes that step; any other
-- meta finishes none (the caller logs the malformed ones).
-- A step already finished (a re-ack, an operator's retry of a finished step) is left
-- out, so nothing after this runs twice for it. Step rows, then workflow rows, then the
-- dependents' step rows are locked in key order, and tested as locked (a lock returns
-- the row's latest version): the step rows a write touches are found by primary key
-- alone, so the plan does not hang on statistics a new table lacks (a test of
-- ``outcome IS NULL`` beside the key let the planner, guessing, walk a partial index of
-- every unfinished step instead); a workflow's new counts are computed from its row as
-- locked (never from the statement's snapshot, which a concurrent ack may have
-- outdated), and one whose steps have all finished takes the worst outcome among them
-- as its state.
-- The dependents are read in the statement's snapshot, taken before the workflow row
-- was locked: steps appended meanwhile (an append holds that lock while it reads how
-- the dependencies stand, and grows steps_total before it commits) are not in it. So a
-- workflow is ``fresh`` when its row as locked still counts the steps_total of the
-- snapshot; only then are its finished steps' dependents satisfied here (as
-- ``satisfy_dependents`` does: decremented, released, or named a ``fatal_dep``), the
-- caller running ``satisfy_dependents`` in a new statement for the others.
-- Returns the jobs acked (kind 'acked', with the state the ack wrote; kind 'malformed'
-- for those among them whose meta.workflow_id is no workflow id), the steps
-- finished (kind 'step'), the workflows counted (kind 'workflow': whether it finished
-- now, the parent step it stands for, whether it was fresh) and the dependents
-- satisfied (kind 'dependent', the columns of ``satisfy_dependents``).
WITH acked AS (
    UPDATE {schema}.oban_jobs AS j
    SET state = a.state::{schema}.oban_job_state,
        cancelled_at = CASE WHEN a.state = 'cancelled' THEN timezone('UTC', now())
                            ELSE j.cancelled_at END,
        completed_at = CASE WHEN a.state = 'completed' THEN timezone('UTC', now())
                            ELSE j.completed_at END,
        discarded_at = CASE WHEN a.state = 'discarded' THEN timezone('UTC', now())
                            ELSE j.discarded_at END,
        scheduled_at = CASE WHEN a.schedule_in IS NULL THEN j.scheduled_at
                            ELSE timezone('UTC', now()) + make_interval(secs => a.schedule_in)
                       END,
        attempt = coalesce(a.attempt_change + j.attempt, j.attempt),
        errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || a.error END,
        meta = CASE WHEN a.meta IS NULL THEN j.meta ELSE j.meta || a.meta END
    FROM unnest(%(ids)s::bigint[], %(attempted_at)s::timestamp[], %(states)s::text[],
                %(attempt_change)s::int[], %(schedule_in)s::int[], %(errors)s::jsonb[],
                %(meta)s::jsonb[])
         AS a(id, attempted_at, state, attempt_change, schedule_in, error, meta)
    -- Found by key alone: the id list names the rows to read, and the state is compared
    -- as text so that no index on state qualifies. A prepared plan otherwise read every
    -- entry of the executing-jobs index, the dead ones too (a bitmap scan does not skip
    -- them), one more for every job acked since the table's last vacuum.
    WHERE j.id = a.id
      AND j.id = ANY(%(ids)s::bigint[])
      AND j.state::text = 'executing'
      AND j.attempted_at = a.attempted_at
    RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts,
              j.meta
), acked_steps AS (
    -- The jobs acked finished that name a workflow. The CASE guards the cast: a
    -- malformed id (workflow_id NULL here) finishes no step, fails no ack, and is
    -- returned for the caller to log. (The doubled braces are the {schema}
    -- composition's escape for one brace.)
    SELECT id,
           CASE WHEN meta ->> 'workflow_id'
                     ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'
                THEN (meta ->> 'workflow_id')::uuid END AS workflow_id,
           CASE WHEN jsonb_typeof(meta -> 'workflow_step') = 'string'
                THEN meta ->> 'workflow_step' END AS name,
           state AS outcome
    FROM acked
    WHERE state IN ('completed', 'cancelled', 'discarded') AND meta ? 'workflow_id'
), f AS (
    SELECT DISTINCT ON (workflow_id, name) workflow_id, name, outcome, cancelled_by
    FROM (SELECT * FROM unnest(%(workflow_ids)s::uuid[], %(names)s::text[],
                               %(outcomes)s::text[], %(cancelled_by)s::text[])
                        AS given(workflow_id, name, outcome, cancelled_by)
          UNION ALL
          SELECT workflow_id, name, outcome, NULL FROM acked_steps
          WHERE workflow_id IS NOT NULL AND name IS NOT NULL) AS f
    ORDER BY workflow_id, name
), locked AS (
    -- Locked first, then tested: the row a lock returns is the latest version, so
    -- ``was`` is the step's outcome as it stands, whoever finished it meanwhile. One
    -- lookup by key per step, in f's (key) order: a join here is planned, for a
    -- prepared statement, as if f held ten steps, and a hash join over every step of
    -- every workflow looks cheaper than ten lookups while the table is small.
    SELECT s.workflow_id, s.name, s.was, f.outcome, f.cancelled_by
    FROM f
    CROSS JOIN LATERAL (
        SELECT s.workflow_id, s.name, s.outcome AS was
        FROM {schema}.powertools_workflow_steps s
        WHERE s.workflow_id = f.workflow_id AND s.name = f.name
        FOR NO KEY UPDATE
    ) AS s
), finished AS (
    UPDATE {schema}.powertools_workflow_steps s
    SET outcome = locked.outcome, cancelled_by = locked.cancelled_by, finished_at = now()
    FROM locked
    WHERE s.workflow_id = locked.workflow_id AND s.name = locked.name AND locked.was IS NULL
    RETURNING s.workflow_id, s.name, s.outcome, s.job_id, s.sub_workflow_id, s.cancelled_by
), c AS (
    SELECT workflow_id,
           count(*) FILTER (WHERE outcome = 'completed') AS completed,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE outcome = 'discarded') AS discarded
    FROM finished
    GROUP BY workflow_id
), workflows_locked AS (
    SELECT w.id, w.steps_total FROM {schema}.powertools_workflows w JOIN c ON c.workflow_id = w.id
    ORDER BY w.id
    FOR NO KEY UPDATE OF w
), fresh AS (
    SELECT l.id
    FROM workflows_locked l
    JOIN {schema}.powertools_workflows snap ON snap.id = l.id
    WHERE snap.steps_total = l.steps_total
), counted AS (
    UPDATE {schema}.powertools_workflows w
    SET steps_completed = w.steps_completed + c.completed,
        steps_cancelled = w.steps_cancelled + c.cancelled,
        steps_discarded = w.steps_discarded + c.discarded,
        state = CASE WHEN w.state IN ('pending', 'executing')
                          AND w.steps_completed + c.completed + w.steps_cancelled + c.cancelled
                              + w.steps_discarded + c.discarded = w.steps_total
                     THEN CASE WHEN w.steps_discarded + c.discarded > 0 THEN 'discarded'
                               WHEN w.steps_cancelled + c.cancelled > 0 THEN 'cancelled'
                               ELSE 'completed' END
                     ELSE w.state END,
        finished_at = CASE WHEN w.state IN ('pending', 'executing')
                                AND w.steps_completed + c.completed + w.steps_cancelled
                                    + c.cancelled + w.steps_discarded + c.discarded
                                    = w.steps_total
                           THEN now() ELSE w.finished_at END
    FROM c, workflows_locked
    WHERE w.id = c.workflow_id AND workflows_locked.id = w.id
    RETURNING w.id, w.state, w.finished_at = now() AS finished, w.parent_workflow_id,
              w.parent_step
), hits AS (
    SELECT e.workflow_id, e.downstream AS name,
           count(*) FILTER (WHERE u.outcome = 'completed'
                               OR (u.outcome = 'cancelled' AND d.on_dep_cancelled = 'ignore')
                               OR (u.outcome = 'discarded' AND d.on_dep_discarded = 'ignore'))
               AS satisfied,
           min(u.name || ' ' || u.outcome)
               FILTER (WHERE (u.outcome = 'cancelled' AND d.on_dep_cancelled = 'cancel')
                          OR (u.outcome = 'discarded' AND d.on_dep_discarded = 'cancel'))
               AS fatal_dep
    FROM finished u
    JOIN fresh ON fresh.id = u.workflow_id
    JOIN {schema}.powertools_workflow_edges e
      ON e.workflow_id = u.workflow_id AND e.upstream = u.name
    JOIN {schema}.powertools_workflow_steps d
      ON d.workflow_id = e.workflow_id AND d.name = e.downstream AND d.outcome IS NULL
    -- A dependent finishing in this very batch (it ran early: an operator's doing) is
    -- done already.
    WHERE NOT EXISTS (SELECT 1 FROM f AS g
                      WHERE g.workflow_id = e.workflow_id AND g.name = e.downstream)
    GROUP BY e.workflow_id, e.downstream
), dependents_locked AS (
    SELECT d.workflow_id, d.name, d.outcome AS was
    FROM {schema}.powertools_workflow_steps d
    JOIN hits h ON h.workflow_id = d.workflow_id AND h.name = d.name
    ORDER BY d.workflow_id, d.name
    FOR NO KEY UPDATE OF d
), decremented AS (
    UPDATE {schema}.powertools_workflow_steps d
    SET pending = greatest(d.pending - h.satisfied, 0)
    FROM hits h, dependents_locked l
    WHERE d.workflow_id = h.workflow_id AND d.name = h.name AND l.was IS NULL
      AND l.workflow_id = d.workflow_id AND l.name = d.name
    RETURNING d.workflow_id, d.name, d.job_id, d.sub_workflow_id, d.pending, h.fatal_dep
), released AS (
    UPDATE {schema}.oban_jobs j
    SET state = (CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                      ELSE 'available' END)::{schema}.oban_job_state,
        scheduled_at = greatest(j.scheduled_at, timezone('UTC', now()))
    FROM decremented
    -- By key alone, as the ack's rows (state compared as text).
    WHERE j.id = decremented.job_id AND decremented.pending = 0
      AND decremented.fatal_dep IS NULL AND j.state::text = 'suspended'
    RETURNING j.id, j.queue, j.state::text AS state
)
SELECT 'acked' AS kind, NULL::uuid AS workflow_id, NULL::text AS name,
       NULL::text AS outcome, id AS job_id, NULL::uuid AS sub_workflow_id,
       NULL::text AS cancelled_by, NULL::boolean AS finished,
       NULL::uuid AS parent_workflow_id, NULL::text AS parent_step, NULL::boolean AS fresh,
       NULL::int AS pending, NULL::text AS fatal_dep, NULL::bigint AS released_id,
       NULL::text AS released_queue, NULL::text AS released_state, state, queue, worker,
       attempt, max_attempts, meta
FROM acked
UNION ALL
SELECT 'malformed', NULL, NULL, NULL, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM acked_steps
WHERE workflow_id IS NULL
UNION ALL
SELECT 'step', workflow_id, name, outcome, job_id, sub_workflow_id, cancelled_by, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM finished
UNION ALL
SELECT 'workflow', id, NULL, state, NULL, NULL, NULL, finished, parent_workflow_id,
       parent_step, EXISTS (SELECT 1 FROM fresh WHERE fresh.id = counted.id), NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM counted
UNION ALL
SELECT 'dependent', decremented.workflow_id, decremented.name, NULL, decremented.job_id,
       decremented.sub_workflow_id, NULL, NULL, NULL, NULL, NULL, decremented.pending,
       decremented.fatal_dep, released.id, released.queue, released.state, NULL, NULL,
       NULL, NULL, NULL, NULL
FROM decremented
LEFT JOIN released ON released.id = decremented.job_id

-- name: lock_workflows
-- Lock workflows in id order (the repair, before it reads what it repairs).
SELECT id FROM {schema}.powertools_workflows
WHERE id = ANY(%(ids)s::uuid[])
ORDER BY id
FOR NO KEY UPDATE

-- name: satisfy_dependents
-- The dependents of steps that just finished, satisfied in a statement of their own: for
-- the steps of a workflow ``finish_steps`` found appended to between its snapshot and its
-- lock (not ``fresh``). The workflows are locked by then, so this statement's snapshot
-- sees every edge appended before. Their dependents not finished yet: the dependencies
-- this satisfies (completed, or cancelled / discarded where the dependent ignores that)
-- are taken off ``pending``; ``fatal_dep`` names a dependency that takes the dependent
-- down instead (the caller cancels it). A job step left with nothing pending is released
-- in the same statement (due now, or at its own later scheduled_at); the caller decides
-- which queues to wake. Step rows locked in key order, and tested as locked (as in
-- ``finish_steps``).
WITH f AS (
    SELECT * FROM unnest(%(workflow_ids)s::uuid[], %(names)s::text[], %(outcomes)s::text[])
        AS f(workflow_id, name, outcome)
), hits AS (
    SELECT e.workflow_id, e.downstream AS name,
           count(*) FILTER (WHERE f.outcome = 'completed'
                               OR (f.outcome = 'cancelled' AND d.on_dep_cancelled = 'ignore')
                               OR (f.outcome = 'discarded' AND d.on_dep_discarded = 'ignore'))
               AS satisfied,
           min(f.name || ' ' || f.outcome)
               FILTER (WHERE (f.outcome = 'cancelled' AND d.on_dep_cancelled = 'cancel')
                          OR (f.outcome = 'discarded' AND d.on_dep_discarded = 'cancel'))
               AS fatal_dep
    FROM f
    JOIN {schema}.powertools_workflow_edges e
      ON e.workflow_id = f.workflow_id AND e.upstream = f.name
    JOIN {schema}.powertools_workflow_steps d
      ON d.workflow_id = e.workflow_id AND d.name = e.downstream AND d.outcome IS NULL
    -- A dependent finishing in this very batch (it ran early: an operator's doing) is
    -- done already.
    WHERE NOT EXISTS (SELECT 1 FROM f AS g
                      WHERE g.workflow_id = e.workflow_id AND g.name = e.downstream)
    GROUP BY e.workflow_id, e.downstream
), locked AS (
    SELECT d.workflow_id, d.name, d.outcome AS was
    FROM {schema}.powertools_workflow_steps d
    JOIN hits h ON h.workflow_id = d.workflow_id AND h.name = d.name
    ORDER BY d.workflow_id, d.name
    FOR NO KEY UPDATE OF d
), decremented AS (
    UPDATE {schema}.powertools_workflow_steps d
    SET pending = greatest(d.pending - h.satisfied, 0)
    FROM hits h, locked
    WHERE d.workflow_id = h.workflow_id AND d.name = h.name AND locked.was IS NULL
      AND locked.workflow_id = d.workflow_id AND locked.name = d.name
    RETURNING d.workflow_id, d.name, d.job_id, d.sub_workflow_id, d.pending, h.fatal_dep
), released AS (
    UPDATE {schema}.oban_jobs j
    SET state = (CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                      ELSE 'available' END)::{schema}.oban_job_state,
        scheduled_at = greatest(j.scheduled_at, timezone('UTC', now()))
    FROM decremented
    WHERE j.id = decremented.job_id AND decremented.pending = 0
      AND decremented.fatal_dep IS NULL AND j.state::text = 'suspended'
    RETURNING j.id, j.queue, j.state::text AS state
)
SELECT decremented.workflow_id, decremented.name, decremented.job_id,
       decremented.sub_workflow_id, decremented.pending, decremented.fatal_dep,
       released.id AS released_id, released.queue AS released_queue,
       released.state AS released_state
FROM decremented
LEFT JOIN released ON released.id = decremented.job_id

-- name: release_jobs
-- Steps whose dependencies are all satisfied: their jobs leave 'suspended' (due now, or
-- at their own later scheduled_at). Returns the jobs released, for the wake-up.
UPDATE {schema}.oban_jobs
SET state = (CASE WHEN scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                  ELSE 'available' END)::{schema}.oban_job_state,
    scheduled_at = greatest(scheduled_at, timezone('UTC', now()))
-- By key alone (state compared as text, as in finish_steps).
WHERE id = ANY(%(ids)s::bigint[]) AND state::text = 'suspended'
RETURNING id, queue, state::text AS state

-- name: cancel_jobs
-- Steps taken down by a dependency: their jobs are cancelled without running, the
-- reason in meta.workflow_cancelled and in errors (as oban records a cancel). A job
-- already executing (an operator ran it) finishes on its own.
UPDATE {schema}.oban_jobs j
SET state = 'cancelled'::{schema}.oban_job_state,
    cancelled_at = timezone('UTC', now()),
    meta = j.meta || jsonb_build_object('workflow_cancelled', c.reason),
    errors = j.errors || jsonb_build_object('attempt', j.attempt,
                                            'at', to_char(now() AT TIME ZONE 'UTC',
                                                          'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                                            'error', c.reason)
FROM unnest(%(ids)s::bigint[], %(reasons)s::text[]) AS c(id, reason)
WHERE j.id = c.id
  AND j.state IN ('suspended', 'available', 'scheduled', 'retryable')
RETURNING j.id

-- name: start_workflows
-- Sub-workflows whose parent step was released start: returns their steps that have no
-- dependency left (to release, or to start in turn when they are sub-workflows).
WITH started AS (
    UPDATE {schema}.powertools_workflows
    SET state = 'executing', started_at = now()
    WHERE id = ANY(%(ids)s::uuid[]) AND state = 'pending'
    RETURNING id
)
SELECT s.workflow_id, s.name, s.job_id, s.sub_workflow_id
FROM started
JOIN {schema}.powertools_workflow_steps s ON s.workflow_id = started.id
WHERE s.pending = 0 AND s.outcome IS NULL

-- name: unfinished_steps
-- The steps of these (sub-)workflows not finished yet: cancelled with their parent step.
SELECT workflow_id, name FROM {schema}.powertools_workflow_steps
WHERE workflow_id = ANY(%(ids)s::uuid[]) AND outcome IS NULL

-- name: repair_finished
-- Steps whose job finished (or is gone) without the step being recorded: an operator's
-- cancel, plain SQL, the lifeline discarding a job, a path around the ack hook.
SELECT s.workflow_id, s.name,
       coalesce(CASE WHEN j.state IN ('completed', 'cancelled', 'discarded')
                     THEN j.state::text END, 'cancelled') AS outcome,
       j.id IS NULL AS job_missing
FROM {schema}.powertools_workflow_steps s
LEFT JOIN {schema}.oban_jobs j ON j.id = s.job_id
WHERE s.outcome IS NULL
  AND s.job_id IS NOT NULL
  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded'))
  AND (%(ids)s::uuid[] IS NULL OR s.workflow_id = ANY(%(ids)s::uuid[]))
LIMIT %(limit)s

-- name: repair_waiting
-- Steps still waiting (their job suspended, or their sub-workflow pending) in a running
-- workflow although every dependency has finished: a release was missed. Each comes
-- with the pending count its dependencies give (satisfied ones off) and a dependency
-- that should have taken it down, if any.
SELECT s.workflow_id, s.name, s.job_id, s.sub_workflow_id, s.pending,
       (SELECT count(*) FROM {schema}.powertools_workflow_edges e
        JOIN {schema}.powertools_workflow_steps u
          ON u.workflow_id = e.workflow_id AND u.name = e.upstream
        WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name
          AND NOT (u.outcome = 'completed'
                   OR (u.outcome = 'cancelled' AND s.on_dep_cancelled = 'ignore')
                   OR (u.outcome = 'discarded' AND s.on_dep_discarded = 'ignore'))
       ) AS unsatisfied,
       (SELECT min(u.name || ' ' || u.outcome) FROM {schema}.powertools_workflow_edges e
        JOIN {schema}.powertools_workflow_steps u
          ON u.workflow_id = e.workflow_id AND u.name = e.upstream
        WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name
          AND ((u.outcome = 'cancelled' AND s.on_dep_cancelled = 'cancel')
               OR (u.outcome = 'discarded' AND s.on_dep_discarded = 'cancel'))
       ) AS fatal_dep
FROM {schema}.powertools_workflow_steps s
JOIN {schema}.powertools_workflows w ON w.id = s.workflow_id AND w.state = 'executing'
LEFT JOIN {schema}.oban_jobs j ON j.id = s.job_id
LEFT JOIN {schema}.powertools_workflows sub ON sub.id = s.sub_workflow_id
WHERE s.outcome IS NULL
  AND (j.state = 'suspended' OR sub.state = 'pending')
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.powertools_workflow_edges e
      JOIN {schema}.powertools_workflow_steps u
        ON u.workflow_id = e.workflow_id AND u.name = e.upstream
      WHERE e.workflow_id = s.workflow_id AND e.downstream = s.name AND u.outcome IS NULL)
  AND (%(ids)s::uuid[] IS NULL OR s.workflow_id = ANY(%(ids)s::uuid[]))
LIMIT %(limit)s

-- name: set_pending
-- The repair's correction of a step's pending count (from its dependencies' outcomes).
UPDATE {schema}.powertools_workflow_steps s
SET pending = p.pending
FROM unnest(%(workflow_ids)s::uuid[], %(names)s::text[], %(pending)s::int[])
     AS p(workflow_id, name, pending)
WHERE s.workflow_id = p.workflow_id AND s.name = p.name AND s.outcome IS NULL

-- name: step_deps
-- A step's dependencies (context passing).
SELECT deps FROM {schema}.powertools_workflow_steps
WHERE workflow_id = %(workflow_id)s::uuid AND name = %(name)s

-- name: step_results
-- The jobs of a step's dependencies, with what they recorded (context passing).
SELECT s.name, s.job_id, s.outcome, j.meta
FROM {schema}.powertools_workflow_steps s
LEFT JOIN {schema}.oban_jobs j ON j.id = s.job_id
WHERE s.workflow_id = %(workflow_id)s::uuid AND s.name = ANY(%(names)s::text[])
