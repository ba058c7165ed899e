-- The ack of jobs that belong to a composite (workflow, chain, batch), in the
-- transaction that also runs the composites' follow-ups (runtime/acks.py). The
-- statements run on oban's pool, whose search_path is the host's: they name the tables
-- in ``{schema}``, composed as an identifier (db.queries.InSchema).

-- name: ack_jobs
-- oban's ack (oban/queries/ack_job.sql) for a whole batch in one statement, with the
-- same semantics: only a job still executing the very attempt that was acked (its
-- attempted_at) is written, so a rescued-and-rerun job's stale ack changes nothing.
-- Returns the rows really acked, for the follow-ups.
UPDATE {schema}.oban_jobs AS j
SET state = a.state::{schema}.oban_job_state,
    cancelled_at = CASE WHEN a.state = 'cancelled' THEN timezone('UTC', now())
                        ELSE j.cancelled_at END,
    completed_at = CASE WHEN a.state = 'completed' THEN timezone('UTC', now())
                        ELSE j.completed_at END,
    discarded_at = CASE WHEN a.state = 'discarded' THEN timezone('UTC', now())
                        ELSE j.discarded_at END,
    scheduled_at = CASE WHEN a.schedule_in IS NULL THEN j.scheduled_at
                        ELSE timezone('UTC', now()) + make_interval(secs => a.schedule_in) END,
    attempt = coalesce(a.attempt_change + j.attempt, j.attempt),
    errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || a.error END,
    meta = CASE WHEN a.meta IS NULL THEN j.meta ELSE j.meta || a.meta END
FROM unnest(%(ids)s::bigint[], %(attempted_at)s::timestamp[], %(states)s::text[],
            %(attempt_change)s::int[], %(schedule_in)s::int[], %(errors)s::jsonb[],
            %(meta)s::jsonb[])
     AS a(id, attempted_at, state, attempt_change, schedule_in, error, meta)
WHERE j.id = a.id
  AND j.state = 'executing'
  AND j.attempted_at = a.attempted_at
RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts, j.meta

-- name: wake_queues
-- Wake the producers of these queues (oban's insert notification, which its stager
-- relays to the local producer) for the jobs the follow-ups made available.
SELECT count(pg_notify(%(channel)s, json_build_object('queue', q.queue)::text)) AS woken
FROM unnest(%(queues)s::text[]) AS q(queue)
