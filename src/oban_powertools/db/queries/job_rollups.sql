-- Job rollups (powertools_job_rollups, powertools_job_rollup_progress): written by the
-- leader's rollup loop (runtime/rollup.py), read by the charts (read_models/rollups.py).

-- name: lock_progress
-- The rollup's progress, locked for this pass: a second leader's pass waits here and then
-- sees the minutes already written. (Migration 0011 creates the row; record_progress puts
-- it back should it be deleted.)
SELECT written_through FROM powertools_job_rollup_progress WHERE singleton FOR UPDATE

-- name: record_progress
-- The end of the last minute aggregated (never moved backwards).
INSERT INTO powertools_job_rollup_progress (singleton, written_through, written_by, written_at)
VALUES (true, %(through)s, %(node)s, now())
ON CONFLICT (singleton) DO UPDATE
SET written_through = greatest(powertools_job_rollup_progress.written_through,
                               EXCLUDED.written_through),  -- greatest() skips a NULL
    written_by = EXCLUDED.written_by, written_at = EXCLUDED.written_at

-- name: progress
-- How far the rollup is written, and by whom: the charts say so.
SELECT written_through, written_by, written_at FROM powertools_job_rollup_progress
WHERE singleton AND written_through IS NOT NULL

-- name: clear_minutes
-- A pass recomputes its minutes and overwrites them: the old rows go first, so a queue
-- that had rows and now has none is not left counted.
DELETE FROM powertools_job_rollups WHERE minute >= %(from)s AND minute < %(to)s

-- name: aggregate_minutes
-- Every closed minute in [from, to) per queue, from oban_jobs through indexes only:
-- the jobs that ended in the span (oban's completed_at, discarded_at and cancelled_at
-- partial indexes, up to ``upper``), and the ones executing or waiting to retry whose
-- attempt started in it or up to ``lookback`` seconds before (Powertools'
-- (state, attempted_at) index). From those: completions, discards and cancels by their
-- end time; queue waits by attempted_at; retried failures by the time of each error
-- entry, leaving out the error of a final attempt that discarded or cancelled the job
-- (that one counts as discarded or cancelled).
WITH jobs AS (
    SELECT queue, state, attempt, attempted_at, scheduled_at, errors, completed_at AS ended_at
    FROM oban_jobs
    WHERE state = 'completed' AND completed_at >= %(from)s AND completed_at < %(upper)s
    UNION ALL
    SELECT queue, state, attempt, attempted_at, scheduled_at, errors, discarded_at
    FROM oban_jobs
    WHERE state = 'discarded' AND discarded_at >= %(from)s AND discarded_at < %(upper)s
    UNION ALL
    SELECT queue, state, attempt, attempted_at, scheduled_at, errors, cancelled_at
    FROM oban_jobs
    WHERE state = 'cancelled' AND cancelled_at >= %(from)s AND cancelled_at < %(upper)s
    UNION ALL
    SELECT queue, state, attempt, attempted_at, scheduled_at, errors, NULL
    FROM oban_jobs
    WHERE state IN ('executing', 'retryable')
      AND attempted_at >= %(from)s::timestamp - make_interval(secs => %(lookback)s)
      AND attempted_at < %(upper)s
), events AS (
    SELECT date_trunc('minute', ended_at) AS minute, queue, state::text AS kind,
           NULL::bigint AS wait_ms
    FROM jobs
    WHERE ended_at >= %(from)s AND ended_at < %(to)s
    UNION ALL
    SELECT date_trunc('minute', attempted_at), queue, 'attempted',
           greatest(0, floor(extract(epoch FROM attempted_at - scheduled_at) * 1000))::bigint
    FROM jobs
    WHERE attempted_at >= %(from)s AND attempted_at < %(to)s
    UNION ALL
    SELECT date_trunc('minute', e.at), j.queue, 'retried', NULL
    FROM jobs j
    CROSS JOIN LATERAL (
        SELECT (x ->> 'at')::timestamptz AT TIME ZONE 'UTC' AS at,
               (x ->> 'attempt')::int AS attempt
        FROM jsonb_array_elements(j.errors) AS x
        WHERE jsonb_typeof(x) = 'object'
          AND x ->> 'at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$'
          AND (x ->> 'attempt') ~ '^\d{1,9}$'
    ) e
    WHERE j.errors <> '[]'::jsonb
      AND e.at >= %(from)s AND e.at < %(to)s
      AND NOT (j.state IN ('discarded', 'cancelled') AND e.attempt = j.attempt
               AND e.at >= j.ended_at - interval '1 minute')
)
INSERT INTO powertools_job_rollups
    (minute, queue, completed, discarded, retried, cancelled, wait_count, wait_ms_sum,
     wait_ms_max)
SELECT minute, queue,
       count(*) FILTER (WHERE kind = 'completed'),
       count(*) FILTER (WHERE kind = 'discarded'),
       count(*) FILTER (WHERE kind = 'retried'),
       count(*) FILTER (WHERE kind = 'cancelled'),
       count(*) FILTER (WHERE kind = 'attempted'),
       coalesce(sum(wait_ms), 0),
       coalesce(max(wait_ms), 0)
FROM events
GROUP BY minute, queue
ON CONFLICT (minute, queue) DO UPDATE
SET completed = EXCLUDED.completed, discarded = EXCLUDED.discarded,
    retried = EXCLUDED.retried, cancelled = EXCLUDED.cancelled,
    wait_count = EXCLUDED.wait_count, wait_ms_sum = EXCLUDED.wait_ms_sum,
    wait_ms_max = EXCLUDED.wait_ms_max
RETURNING minute

-- name: prune_rollups
-- Rows older than the retention go; the primary key's leading minute column finds them.
DELETE FROM powertools_job_rollups
WHERE minute < timezone('UTC', now()) - make_interval(secs => %(retention)s)

-- name: minutes
-- The charts' last hour: the closed minutes since ``since``, summed over every queue or
-- one (``queue`` NULL: all). Minutes without a row had nothing and are filled by the
-- read model.
SELECT minute, sum(completed)::bigint AS completed, sum(discarded)::bigint AS discarded,
       sum(retried)::bigint AS retried, sum(cancelled)::bigint AS cancelled,
       sum(wait_count)::bigint AS wait_count, sum(wait_ms_sum)::bigint AS wait_ms_sum,
       max(wait_ms_max)::bigint AS wait_ms_max
FROM powertools_job_rollups
WHERE minute >= %(since)s AND (%(queue)s::text IS NULL OR queue = %(queue)s)
GROUP BY minute
ORDER BY minute

-- name: hours
-- The charts' last day: the minute rows since ``since`` summed per hour.
SELECT date_trunc('hour', minute) AS minute, sum(completed)::bigint AS completed,
       sum(discarded)::bigint AS discarded, sum(retried)::bigint AS retried,
       sum(cancelled)::bigint AS cancelled, sum(wait_count)::bigint AS wait_count,
       sum(wait_ms_sum)::bigint AS wait_ms_sum, max(wait_ms_max)::bigint AS wait_ms_max
FROM powertools_job_rollups
WHERE minute >= %(since)s AND (%(queue)s::text IS NULL OR queue = %(queue)s)
GROUP BY 1
ORDER BY 1
