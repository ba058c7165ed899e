-- Cron entries (powertools_cron_entries): what the scheduler reads and advances, and the
-- declarations synced from code.

-- name: definitions
-- The stored definitions of declared entries, locked, to compare with the code's.
SELECT name, source, worker, queue, args, job_options, expression, timezone,
       overlap_policy, catch_up_policy, max_catch_up, metadata
FROM powertools_cron_entries WHERE name = ANY(%(names)s)
ORDER BY name
FOR UPDATE

-- name: candidates
-- The unlocked pass: everything needed to tell whether an entry has work, nothing more.
SELECT name, expression, timezone, evaluated_through, follow_up_slot_at
FROM powertools_cron_entries WHERE NOT paused

-- name: lock_entries
-- With the job template (worker, queue, args, job_options, expression): the locked row is
-- what the entry's jobs are made of, so claiming needs no second read per slot.
SELECT name, worker, queue, args, job_options, expression, timezone, overlap_policy,
       catch_up_policy, max_catch_up, paused, evaluated_through, last_slot_at, last_job_id,
       follow_up_slot_at, updated_at
FROM powertools_cron_entries WHERE name = ANY(%(names)s)
ORDER BY name
FOR UPDATE

-- name: advance_entries
-- Scheduler bookkeeping does not bump version or updated_at: firing is not a change an
-- operator's preview should drift on, and updated_at marks definition and pause changes.
-- One JSON row per entry (see INSERT_JOBS); last_job is null where nothing was enqueued or
-- the job already recorded itself. ``e.name = ANY(...)`` lets the planner find the rows by
-- primary key: joined only to the JSON rows, it hashes a scan of every entry.
UPDATE powertools_cron_entries e
SET evaluated_through = u.through,
    last_slot_at = GREATEST(e.last_slot_at, u.last_slot_at),
    last_job_id = COALESCE(u.last_job, e.last_job_id),
    follow_up_slot_at = u.follow_up
FROM jsonb_to_recordset(%(entries)s) AS u(name text, through timestamptz,
                                          last_slot_at timestamptz, last_job bigint,
                                          follow_up timestamptz)
WHERE e.name = u.name AND e.name = ANY(%(names)s::text[])

-- name: expired_pauses
-- Paused entries whose pause has run out, a batch at a time; an entry another node is
-- resuming is skipped rather than waited for.
SELECT name, pause_expires_at FROM powertools_cron_entries
WHERE paused AND pause_expires_at <= %(now)s
ORDER BY name
LIMIT 100
FOR UPDATE SKIP LOCKED
