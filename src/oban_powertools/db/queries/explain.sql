-- "Why isn't this job running?" (read_models/explain.py): the job, the queue's decision,
-- what runs on each producer, the jobs and partitions ahead of it. Every statement reads
-- a bounded number of rows (one job, one queue's executing jobs, capped walks), never a
-- count over the whole table.

-- name: job
-- The job as the explainer needs it (no args or errors), with the database's clock.
SELECT id, state::text AS state, queue, worker, attempt, max_attempts, priority, meta,
       attempted_by, inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at,
       discarded_at, timezone('UTC', now()) AS db_now
FROM oban_jobs WHERE id = %(id)s

-- name: queue_decision
-- The operator's stored decision on one queue, if any.
SELECT paused, limit_override, changed_by_id, changed_by_label, reason, updated_at
FROM powertools_queue_states WHERE queue = %(queue)s

-- name: executing_by_producer
-- A queue's executing jobs per producer (oban records [node, producer uuid] in
-- attempted_by), for each node's local limit.
SELECT attempted_by[1] AS node, attempted_by[2] AS uuid, count(*) AS running
FROM oban_jobs
WHERE state = 'executing' AND queue = %(queue)s
GROUP BY 1, 2

-- name: jobs_ahead
-- Available jobs of the queue that oban's fetch takes before this one (priority, then
-- scheduled time, then id), counted up to cap along oban's own index.
SELECT count(*) AS n FROM (
    SELECT 1 FROM oban_jobs j
    WHERE j.state = 'available' AND j.queue = %(queue)s
      AND (j.priority, j.scheduled_at, j.id)
          < (%(priority)s::int, %(scheduled_at)s::timestamp, %(id)s::bigint)
    LIMIT %(cap)s
) ahead

-- name: partition_jobs_ahead
-- The same within one partition of a partitioned queue, along the partition index.
SELECT count(*) AS n FROM (
    SELECT 1 FROM oban_jobs j
    WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
      AND j.meta ->> 'partition_key' = %(key)s::text
      AND (j.priority, j.scheduled_at, j.id)
          < (%(priority)s::int, %(scheduled_at)s::timestamp, %(id)s::bigint)
    LIMIT %(cap)s
) ahead

-- name: partitions_ahead
-- The partitions with available jobs that the round-robin serves before the job's own:
-- those after the turn (the partition served last) up to the job's, wrapping round to the
-- start when the job's comes before the turn. Each step is one probe of the partition
-- index, at most cap steps per range, so the cost does not follow the partitions' number.
WITH RECURSIVE ranges(r, low, high) AS (
    SELECT 1, coalesce(%(turn)s::text, ''),
           CASE WHEN %(turn)s::text IS NULL OR %(key)s::text > %(turn)s::text
                THEN %(key)s::text END
    UNION ALL
    SELECT 2, '', %(key)s::text
    WHERE %(turn)s::text IS NOT NULL AND %(key)s::text <= %(turn)s::text
), walk(r, key, n) AS (
    SELECT g.r,
           (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND j.meta ->> 'partition_key' > g.low
               AND (g.high IS NULL OR j.meta ->> 'partition_key' < g.high)
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), 1
    FROM ranges g
    UNION ALL
    SELECT w.r,
           (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND j.meta ->> 'partition_key' > w.key
               AND (g.high IS NULL OR j.meta ->> 'partition_key' < g.high)
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), w.n + 1
    FROM walk w JOIN ranges g ON g.r = w.r
    WHERE w.key IS NOT NULL AND w.n < %(cap)s
)
SELECT count(*) AS n FROM walk WHERE key IS NOT NULL
