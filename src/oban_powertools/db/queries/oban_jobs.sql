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
-- pipeline in the same transaction; powertools_preview_expectations, migration 0014), so
-- 100k expectations never travel to Python and back. A job changed since the preview
-- does not match and is not updated; the caller treats every target missing from
-- RETURNING as drifted. An UPDATE that waits for a row
-- lock re-checks the row's new version, so concurrent writers are handled by PostgreSQL.
UPDATE oban_jobs
SET state = 'available'::oban_job_state,
    max_attempts = GREATEST(max_attempts, attempt + 1),
    scheduled_at = timezone('UTC', now()),
    completed_at = NULL,
    cancelled_at = NULL,
    discarded_at = NULL,
    meta = jsonb_set(meta, '{uniq_bmp}', '[]'::jsonb)
FROM powertools_preview_expectations(%(token)s) AS expected
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
FROM powertools_preview_expectations(%(token)s) AS expected
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
FROM powertools_preview_expectations(%(token)s) AS expected
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
-- scans all of it for every element once it has grown, until the next ANALYZE. The jobs
-- are found by primary key alone and their state checked on the row (OFFSET 0 keeps the
-- two apart): with a state condition beside the ids, a planner whose statistics are behind
-- ANDs the key lookups with a scan of every active job's entry in oban's state index.
SELECT id FROM (SELECT id, state FROM oban_jobs WHERE id = ANY(%(ids)s) OFFSET 0) j
WHERE state IN ('available', 'scheduled', 'executing', 'retryable')

-- name: active_cron_jobs_by_entry
-- (state, queue) is the leading part of oban's main index, so this reads only the active
-- jobs of the entries' queues, not the job history.
SELECT id, meta->>'cron_name' AS name FROM oban_jobs
WHERE state IN ('available', 'scheduled', 'executing', 'retryable')
  AND queue = ANY(%(queues)s) AND meta->>'cron_name' = ANY(%(names)s)
ORDER BY id

-- name: insert_cron_jobs
-- The same columns and values as oban_jobs.INSERT_JOB, one row per job in decision order
-- (a job of a unique worker whose key another job took meanwhile is not inserted: the
-- scheduler then decides the chunk again),
-- and what oban_jobs.notify sends for each insert, once per queue (``{"queue": ...}``, as
-- json.dumps writes it): one round trip. The notifications are counted so that their CTE
-- runs (a SELECT in a CTE runs only when read).
WITH inserted AS (
    INSERT INTO oban_jobs (args, meta, queue, worker, priority, max_attempts, tags, state,
                           scheduled_at)
    SELECT j.args, j.meta, j.queue, j.worker, j.priority, j.max_attempts, j.tags, 'available',
           timezone('UTC', now())
    FROM ROWS FROM (jsonb_to_recordset(%(jobs)s) AS (args jsonb, meta jsonb, queue text,
                    worker text, priority smallint, max_attempts smallint, tags text[]))
         WITH ORDINALITY AS j(args, meta, queue, worker, priority, max_attempts, tags, n)
    ORDER BY j.n
    ON CONFLICT ((meta ->> 'unique_key')) WHERE meta ? 'unique_key' DO NOTHING
    RETURNING id, queue, meta->>'cron_name' AS name, meta->>'cron_at' AS at
), notified AS (
    SELECT count(pg_notify(%(channel)s, jsonb_build_object('queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM inserted ORDER BY queue) q
)
SELECT i.id, i.name, i.at FROM inserted i CROSS JOIN notified

-- name: queue_counts
-- Per queue and state, one statement: oban's planner estimate (reads no rows), and a capped
-- exact count through oban's (state, queue, ...) index only where the estimate is small.
SELECT p.queue, p.state, p.estimate,
       CASE WHEN p.estimate <= %(exact_below)s THEN
           (SELECT count(*) FROM (
                SELECT 1 FROM oban_jobs j
                WHERE j.state = p.state::oban_job_state AND j.queue = p.queue
                -- oban's index order, so the capped count never becomes a table scan.
                ORDER BY j.state, j.queue, j.priority, j.scheduled_at, j.id
                LIMIT %(cap)s + 1) capped)
       END AS n
FROM (SELECT q.queue, s.state, oban_count_estimate(s.state, q.queue)::bigint AS estimate
      FROM unnest(%(queues)s::text[]) AS q(queue)
      CROSS JOIN unnest(%(states)s::text[]) AS s(state)) p

-- name: list_jobs
-- One keyset page of the jobs list, newest first. An unset filter is NULL and matches
-- everything, so the text never changes; run unprepared (a custom plan per call) so the
-- planner sees which filters are set and picks the index for them.
SELECT id, state::text AS state, queue, worker, attempt, max_attempts, priority, tags, args,
       meta, errors->-1->>'error' AS last_error, inserted_at, scheduled_at, attempted_at,
       completed_at, cancelled_at, discarded_at
FROM oban_jobs
WHERE (%(state)s::text IS NULL OR state = %(state)s::text::oban_job_state)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(worker)s::text IS NULL OR worker = %(worker)s::text)
  AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])
  AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s

-- name: estimate_filtered_jobs
-- The planner's row estimate for the rows a jobs-list filter matches (EXPLAIN: nothing is
-- read). ``state = ANY(states)`` lists every state when none is chosen: it changes no
-- result, but lets a queue-only filter use oban's (state, queue, ...) index.
EXPLAIN (FORMAT JSON)
SELECT 1 FROM oban_jobs
WHERE state = ANY(%(states)s::oban_job_state[])
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(worker)s::text IS NULL OR worker = %(worker)s::text)
  AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])

-- name: count_jobs
-- The exact count of estimate_filtered_jobs's rows, capped: the same filter (keep the two
-- alike), read only when the estimate is small.
SELECT count(*)::bigint AS n FROM (
SELECT 1 FROM oban_jobs
WHERE state = ANY(%(states)s::oban_job_state[])
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(worker)s::text IS NULL OR worker = %(worker)s::text)
  AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])
 LIMIT %(cap)s) capped

-- name: job_detail
-- One job in full, with whether the producer that runs (or ran) it is still alive, and
-- its last heartbeat (NULL: its row is gone): by its uuid where oban records one
-- (attempted_by[2]), else by node and queue.
SELECT id, state::text AS state, queue, worker, attempt, max_attempts, priority, tags, args,
       meta, errors, attempted_by, inserted_at, scheduled_at, attempted_at, completed_at,
       cancelled_at, discarded_at,
       timezone('UTC', now()) AS db_now,
       EXISTS (SELECT 1 FROM oban_producers p
               WHERE p.updated_at > timezone('UTC', now())
                                    - make_interval(secs => %(live)s)
                 AND CASE WHEN cardinality(attempted_by) >= 2
                          THEN p.uuid::text = attempted_by[2]
                          ELSE p.node = attempted_by[1] AND p.queue = oban_jobs.queue END
       ) AS producer_live,
       (SELECT max(p.updated_at) FROM oban_producers p
        WHERE CASE WHEN cardinality(attempted_by) >= 2
                   THEN p.uuid::text = attempted_by[2]
                   ELSE p.node = attempted_by[1] AND p.queue = oban_jobs.queue END
       ) AS last_heartbeat
FROM oban_jobs WHERE id = %(id)s

-- name: failing_workers
-- Failures worth an operator's look, by worker: the latest retryable jobs (they are
-- failing now) and jobs discarded within the window, each side read newest first through
-- its own index (Powertools' (state, attempted_at) index of migration 0002; oban's
-- discarded_at index) and capped, so the cost does not depend on how many have piled up.
WITH recent AS (
    (SELECT id, worker, queue, state::text AS state, attempted_at, discarded_at
     FROM oban_jobs WHERE state = 'retryable'
     ORDER BY attempted_at DESC NULLS LAST LIMIT %(sample)s)
    UNION ALL
    (SELECT id, worker, queue, state::text AS state, attempted_at, discarded_at
     FROM oban_jobs
     WHERE state = 'discarded'
       AND discarded_at > timezone('UTC', now()) - make_interval(secs => %(window)s)
     ORDER BY discarded_at DESC LIMIT %(sample)s)
)
SELECT worker,
       count(*)::int AS failures,
       count(*) FILTER (WHERE state = 'retryable')::int AS retryable,
       count(*) FILTER (WHERE state = 'discarded')::int AS discarded,
       max(coalesce(discarded_at, attempted_at)) AS last_failed_at,
       (array_agg(id ORDER BY coalesce(discarded_at, attempted_at) DESC NULLS LAST, id DESC))[1]
           AS last_job_id,
       (array_agg(DISTINCT queue))[1:5] AS queues
FROM recent
GROUP BY worker
ORDER BY last_failed_at DESC NULLS LAST
LIMIT %(limit)s

-- name: last_errors
-- The last error (and the args and meta whose secrets mask it) of each failing worker's
-- latest job.
SELECT id, args, meta, errors->-1->>'error' AS last_error FROM oban_jobs WHERE id = ANY(%(ids)s)

-- name: stuck_jobs
-- The oldest executing jobs (Powertools' (state, attempted_at) index) that run too long
-- or whose producer is gone, each checked against the live producers, which are read
-- once (a handful of rows) rather than once per job. At most ``scan`` executing jobs are
-- looked at.
SELECT * FROM (
    SELECT j.id, j.queue, j.worker, j.attempt, j.max_attempts, j.attempted_at, j.attempted_by,
           extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint
               AS running_seconds,
           powertools_producer_live(j.attempted_by, j.queue, live.uuids, live.node_queues)
               AS producer_live
    FROM oban_jobs j, powertools_live_producers(%(live)s) AS live
    WHERE j.state = 'executing'
    ORDER BY j.attempted_at ASC NULLS FIRST
    LIMIT %(scan)s
) executing
WHERE running_seconds > %(stuck_after)s OR NOT producer_live
   OR running_seconds IS NULL
-- The scan's own order (oldest attempt first is longest running first), so the planner
-- stops at the first ``limit`` matches instead of reading the whole scan.
ORDER BY attempted_at ASC NULLS FIRST
LIMIT %(limit)s

-- name: recent_discarded
-- The latest discarded jobs, newest first through oban's discarded_at index (read
-- backwards, which is the order of ``DESC``; ``NULLS LAST`` would force a sort of every
-- discarded job).
SELECT id, queue, worker, attempt, max_attempts, discarded_at, args, meta,
       errors->-1->>'error' AS last_error
FROM oban_jobs WHERE state = 'discarded' AND discarded_at IS NOT NULL
ORDER BY discarded_at DESC LIMIT %(limit)s

-- name: same_unique_key
-- The newest jobs sharing a unique key (meta.unique.key), with whether each holds it now.
SELECT id, state::text AS state, meta ? 'unique_key' AS holds, inserted_at
FROM oban_jobs
WHERE meta ? 'unique' AND meta -> 'unique' ->> 'key' = %(key)s
ORDER BY meta -> 'unique' ->> 'key' DESC, id DESC
LIMIT %(limit)s
