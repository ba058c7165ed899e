-- The library's statements over oban-py's oban_jobs table. They keep oban's semantics
-- (a contract test runs both on the same rows and compares) and notify oban's channels
-- the way oban does.

-- name: job_snapshot
-- What an action snapshots of a job: enough to detect drift and to say what changed.
-- Kept small on purpose: a bulk action snapshots up to 100k of these.
SELECT id, state::text AS state, queue, worker, attempt, max_attempts
FROM oban_jobs WHERE id = ANY(%(ids)s)
ORDER BY id

-- name: job_snapshot_for_update
-- job_snapshot, with the rows locked for the caller's transaction.
SELECT id, state::text AS state, queue, worker, attempt, max_attempts
FROM oban_jobs WHERE id = ANY(%(ids)s)
ORDER BY id
FOR UPDATE

-- name: job_drift_keys
-- A bulk preview keeps only what drift is checked on (and the state, for the effect and
-- the audit summary): 100k full snapshots would be most of a bulk action's cost.
SELECT id, state::text AS state, attempt FROM oban_jobs WHERE id = ANY(%(ids)s) ORDER BY id

-- name: insert_job
-- One available job, as oban's insert_job.sql writes it.
INSERT INTO oban_jobs (args, meta, queue, worker, priority, max_attempts, tags, state,
                       scheduled_at)
VALUES (%(args)s, %(meta)s, %(queue)s, %(worker)s, %(priority)s, %(max_attempts)s,
        %(tags)s, 'available', timezone('UTC', now()))
RETURNING id

-- name: state_counts
-- The overview's and the lists' job counts, every asked state in one statement: the
-- planner's estimate (oban's per-queue one when a queue is given), and a count capped at
-- cap + 1 only where the estimate is at most exact_below or missing. The estimate is the
-- table's current size (as the planner scales it: pages on disk times the density ANALYZE
-- saw) times the state's frequency in the column statistics; NULL per state when the
-- table was never analyzed or the state is too rare to be among the most common values.
-- Run unprepared: a generic plan could not know whether a queue is given.
WITH estimated AS (
    SELECT s.state,
           CASE WHEN %(queue)s::text IS NULL THEN m.estimate
                ELSE oban_count_estimate(s.state, %(queue)s::text)::bigint END AS estimate
    FROM unnest(%(states)s::text[]) AS s(state)
    LEFT JOIN (
        SELECT v.state, round(t.rows * v.freq)::bigint AS estimate
        FROM (SELECT c.reltuples / greatest(c.relpages, 1)
                     * (pg_relation_size(c.oid) / current_setting('block_size')::bigint) AS rows
              FROM pg_class c WHERE c.oid = to_regclass('oban_jobs') AND c.reltuples >= 0) t
        CROSS JOIN pg_stats s
        CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
            AS v(state, freq)
        WHERE s.schemaname = current_schema() AND s.tablename = 'oban_jobs'
          AND s.attname = 'state'
    ) m ON m.state = s.state
)
SELECT e.state, e.estimate,
       CASE WHEN e.estimate IS NULL OR e.estimate <= %(exact_below)s THEN
           (SELECT count(*) FROM (
                SELECT 1 FROM oban_jobs j
                WHERE j.state = e.state::oban_job_state
                  AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
                -- oban's index order: planned once for any state, a LIMIT without it can
                -- pick a sequential scan that reads the whole table for a rare state.
                ORDER BY j.state, j.queue, j.priority, j.scheduled_at, j.id
                LIMIT %(cap)s + 1) capped)
       END AS n
FROM estimated e

-- name: cancel_jobs
-- Same as oban's cancel_many_jobs.sql: executing jobs keep their state and are told to
-- stop through the producer's pkill signal.
UPDATE oban_jobs
SET state = CASE WHEN state = 'executing' THEN state ELSE 'cancelled'::oban_job_state END,
    cancelled_at = CASE WHEN state = 'executing' THEN cancelled_at
                        ELSE timezone('UTC', now()) END,
    meta = CASE WHEN state = 'executing' THEN meta
                ELSE meta || jsonb_build_object('cancel_attempted_at', timezone('UTC', now()))
           END
WHERE id = ANY(%(ids)s)
  AND state IN ('executing', 'available', 'scheduled', 'retryable', 'suspended')
RETURNING id, state::text AS state, queue, worker, attempt, max_attempts

-- name: retry_jobs_checked
-- oban's retry_many_jobs.sql over the jobs of a preview that are still as previewed. The
-- expected state and attempt of each job come from the preview row (locked by the
-- pipeline in the same transaction), so 100k expectations never travel to Python and
-- back. A job changed since the preview does not match and is not updated; the caller
-- treats every target missing from RETURNING as drifted. An UPDATE that waits for a row
-- lock re-checks the row's new version, so concurrent writers are handled by PostgreSQL.
UPDATE oban_jobs
SET state = 'available'::oban_job_state,
    max_attempts = GREATEST(max_attempts, attempt + 1),
    scheduled_at = timezone('UTC', now()),
    completed_at = NULL,
    cancelled_at = NULL,
    discarded_at = NULL,
    meta = jsonb_set(meta, '{uniq_bmp}', '[]'::jsonb)
FROM (SELECT b.key::bigint AS expected_id, b.value->>'state' AS expected_state,
             (b.value->>'attempt')::int AS expected_attempt
      FROM powertools_previews p, jsonb_each(p.before) AS b
      WHERE p.token = %(token)s) expected
WHERE id = expected.expected_id AND state = expected.expected_state::oban_job_state
  AND attempt = expected.expected_attempt
  AND state NOT IN ('available', 'executing')
RETURNING id, expected_state, expected_attempt, state::text AS state, queue, worker,
          attempt, max_attempts

-- name: cancel_jobs_checked
-- cancel_jobs over the jobs of a preview that are still as previewed (see
-- retry_jobs_checked).
UPDATE oban_jobs
SET state = CASE WHEN state = 'executing' THEN state ELSE 'cancelled'::oban_job_state END,
    cancelled_at = CASE WHEN state = 'executing' THEN cancelled_at
                        ELSE timezone('UTC', now()) END,
    meta = CASE WHEN state = 'executing' THEN meta
                ELSE meta || jsonb_build_object('cancel_attempted_at', timezone('UTC', now()))
           END
FROM (SELECT b.key::bigint AS expected_id, b.value->>'state' AS expected_state,
             (b.value->>'attempt')::int AS expected_attempt
      FROM powertools_previews p, jsonb_each(p.before) AS b
      WHERE p.token = %(token)s) expected
WHERE id = expected.expected_id AND state = expected.expected_state::oban_job_state
  AND attempt = expected.expected_attempt
  AND state IN ('executing', 'available', 'scheduled', 'retryable', 'suspended')
RETURNING id, expected_state, expected_attempt, state::text AS state, queue, worker,
          attempt, max_attempts

-- name: discard_jobs_checked
-- Discard: stop retrying a job that has not finished, keeping it for forensics; over the
-- jobs of a preview that are still as previewed (see retry_jobs_checked).
UPDATE oban_jobs
SET state = 'discarded'::oban_job_state,
    discarded_at = timezone('UTC', now()),
    meta = meta || jsonb_build_object('discarded_by_operator', true)
FROM (SELECT b.key::bigint AS expected_id, b.value->>'state' AS expected_state,
             (b.value->>'attempt')::int AS expected_attempt
      FROM powertools_previews p, jsonb_each(p.before) AS b
      WHERE p.token = %(token)s) expected
WHERE id = expected.expected_id AND state = expected.expected_state::oban_job_state
  AND attempt = expected.expected_attempt
  AND state IN ('available', 'scheduled', 'retryable', 'suspended')
RETURNING id, expected_state, expected_attempt, state::text AS state, queue, worker,
          attempt, max_attempts

-- name: notify
-- One notification on one of oban's channels (delivered when the transaction commits).
SELECT pg_notify(%(channel)s, %(payload)s)

-- name: large_set_work_mem
-- More memory for the rest of a transaction that reads a large preview's expectations
-- (see oban_jobs.LARGE_SET).
SET LOCAL work_mem = '64MB'

-- name: active_cron_jobs_by_id
-- Statements that look rows up in oban_jobs or the slot history by an array are planned
-- at each execution (``prepare=False``): a generic plan cached while the table was small
-- scans all of it for every element once it has grown, until the next ANALYZE.
SELECT id FROM oban_jobs
WHERE id = ANY(%(ids)s) AND state IN ('available', 'scheduled', 'executing', 'retryable')

-- name: active_cron_jobs_by_entry
-- (state, queue) is the leading part of oban's main index, so this reads only the active
-- jobs of the entries' queues, not the job history.
SELECT id, meta->>'cron_name' AS name FROM oban_jobs
WHERE state IN ('available', 'scheduled', 'executing', 'retryable')
  AND queue = ANY(%(queues)s) AND meta->>'cron_name' = ANY(%(names)s)
ORDER BY id

-- name: insert_cron_jobs
-- The same columns and values as oban_jobs.INSERT_JOB, one row per job in decision order.
INSERT INTO oban_jobs (args, meta, queue, worker, priority, max_attempts, tags, state,
                       scheduled_at)
SELECT j.args, j.meta, j.queue, j.worker, j.priority, j.max_attempts, j.tags, 'available',
       timezone('UTC', now())
FROM ROWS FROM (jsonb_to_recordset(%(jobs)s) AS (args jsonb, meta jsonb, queue text,
                worker text, priority smallint, max_attempts smallint, tags text[]))
     WITH ORDINALITY AS j(args, meta, queue, worker, priority, max_attempts, tags, n)
ORDER BY j.n
RETURNING id, meta->>'cron_name' AS name, meta->>'cron_at' AS at

-- name: notify_each
-- oban_jobs.notify's statement, once per queue in one round trip.
SELECT pg_notify(%(channel)s, payload) FROM unnest(%(payloads)s::text[]) AS payload
