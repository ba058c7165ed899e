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

-- name: entry_snapshots
-- What an action snapshots of an entry (and compares, shows and audits).
SELECT name, source, worker, queue, expression, timezone, overlap_policy, catch_up_policy,
       max_catch_up, paused, paused_at, paused_by_id, paused_by_label, paused_reason,
       pause_expires_at, last_slot_at, last_job_id, version
FROM powertools_cron_entries WHERE name = ANY(%(names)s)

-- name: entry_snapshots_for_update
-- entry_snapshots, with the rows locked for the caller's transaction.
SELECT name, source, worker, queue, expression, timezone, overlap_policy, catch_up_policy,
       max_catch_up, paused, paused_at, paused_by_id, paused_by_label, paused_reason,
       pause_expires_at, last_slot_at, last_job_id, version
FROM powertools_cron_entries WHERE name = ANY(%(names)s)
FOR UPDATE

-- name: set_paused
-- Pause (pause = true: by, reason and expiry given) or resume (pause = false: all NULL) an
-- entry that is not already so, outside the action pipeline (the system's resume of an
-- expired pause). version moves, so a preview made before cannot be confirmed after.
-- Returns the entry's snapshot before and after, as JSON; no row when nothing changed.
WITH old AS (
    SELECT name, source, worker, queue, expression, timezone, overlap_policy,
           catch_up_policy, max_catch_up, paused, paused_at, paused_by_id, paused_by_label,
           paused_reason, pause_expires_at, last_slot_at, last_job_id, version
    FROM powertools_cron_entries
    WHERE name = %(name)s AND paused <> %(pause)s::boolean
    FOR UPDATE
),
changed AS (
    UPDATE powertools_cron_entries e
    SET paused = %(pause)s::boolean,
        paused_at = CASE WHEN %(pause)s::boolean THEN clock_timestamp() END,
        paused_by_id = %(by_id)s, paused_by_label = %(by_label)s, paused_reason = %(reason)s,
        pause_expires_at = %(expires_at)s, version = e.version + 1,
        updated_at = clock_timestamp()
    FROM old WHERE e.name = old.name
    RETURNING e.name, e.source, e.worker, e.queue, e.expression, e.timezone,
              e.overlap_policy, e.catch_up_policy, e.max_catch_up, e.paused, e.paused_at,
              e.paused_by_id, e.paused_by_label, e.paused_reason, e.pause_expires_at,
              e.last_slot_at, e.last_job_id, e.version
)
SELECT to_jsonb(old) AS before, to_jsonb(changed) AS after FROM old, changed

-- name: confirm_set_paused
-- A confirmed pause or resume (see set_paused) in one statement, so a confirm needs no
-- BEGIN or COMMIT round trip. The preview is locked while it is ready, unexpired and the
-- confirming actor's (guard); the entry is locked and changed only while it is at the
-- version the preview saw; the audit event is written from the before- and after-state
-- of that change, and consumes the preview. So the change, its event and the consumption
-- commit together or not at all. guarded = 0: the preview was not ready any more;
-- event_id NULL: the entry drifted and nothing changed. Parameters named audit_* are the
-- pipeline's (see audit.writer.event_params).
WITH guard AS (SELECT token, before FROM powertools_lock_ready_preview(%(token)s, %(actor_id)s)),
old AS (
    SELECT e.name, e.source, e.worker, e.queue, e.expression, e.timezone, e.overlap_policy,
           e.catch_up_policy, e.max_catch_up, e.paused, e.paused_at, e.paused_by_id,
           e.paused_by_label, e.paused_reason, e.pause_expires_at, e.last_slot_at,
           e.last_job_id, e.version
    FROM powertools_cron_entries e, guard
    WHERE e.name = %(name)s AND e.paused <> %(pause)s::boolean
      AND e.version = (guard.before -> %(name)s ->> 'version')::bigint
    FOR UPDATE OF e
),
changed AS (
    UPDATE powertools_cron_entries e
    SET paused = %(pause)s::boolean,
        paused_at = CASE WHEN %(pause)s::boolean THEN clock_timestamp() END,
        paused_by_id = %(by_id)s, paused_by_label = %(by_label)s, paused_reason = %(reason)s,
        pause_expires_at = %(expires_at)s, version = e.version + 1,
        updated_at = clock_timestamp()
    FROM old WHERE e.name = old.name
    RETURNING e.name, e.source, e.worker, e.queue, e.expression, e.timezone,
              e.overlap_policy, e.catch_up_policy, e.max_catch_up, e.paused, e.paused_at,
              e.paused_by_id, e.paused_by_label, e.paused_reason, e.pause_expires_at,
              e.last_slot_at, e.last_job_id, e.version
),
applied AS (SELECT to_jsonb(old) AS before, to_jsonb(changed) AS after FROM old, changed),
event AS (
    SELECT w.id
    FROM applied, guard,
         powertools_write_audit_event(%(audit_event)s, 'succeeded', guard.token,
                                      applied.before, applied.after, true) AS w
)
SELECT (SELECT count(*) FROM guard) AS guarded, event.id AS event_id,
       applied.before, applied.after
FROM (SELECT) AS one
LEFT JOIN event ON true
LEFT JOIN applied ON true

-- name: store_pause_preview
-- A pause's preview in one statement (its effect does not depend on the entry, so Python
-- need not see the snapshot first): the entry is read, and the preview stored only when it
-- is not paused, its before-state the row as JSON and its plan hash from
-- powertools_plan_hash over the plan (from Python) and the entry's version. found = 0: no
-- such entry; found = 1 and no token: it is paused already.
WITH snap AS (
    SELECT name, source, worker, queue, expression, timezone, overlap_policy,
           catch_up_policy, max_catch_up, paused, paused_at, paused_by_id, paused_by_label,
           paused_reason, pause_expires_at, last_slot_at, last_job_id, version
    FROM powertools_cron_entries WHERE name = %(name)s
),
stored AS (
    INSERT INTO powertools_previews (
        token, action, resource_type, resource_id, targets, params, before, effect,
        plan_hash, actor_id, actor_type, actor_label, surface, expires_at
    )
    SELECT %(token)s, %(action)s, 'cron_entry', %(name)s, %(targets)s, %(params)s,
           jsonb_build_object(snap.name, to_jsonb(snap)), %(effect)s,
           powertools_plan_hash(%(plan)s, snap.name || ':' || snap.version),
           %(actor_id)s, %(actor_type)s, %(actor_label)s, %(surface)s,
           clock_timestamp() + %(ttl)s
    FROM snap WHERE NOT snap.paused
    RETURNING before, token, action, resource_type, resource_id, targets, params, effect,
              plan_hash, status, actor_id, actor_type, actor_label, surface, reason,
              created_at, expires_at, resolved_at, audit_event_id
)
SELECT (SELECT count(*) FROM snap) AS found, stored.*
FROM (SELECT) AS one LEFT JOIN stored ON true

-- name: upsert_entry
-- Create or redefine an entry. A definition that did not change writes nothing (so its
-- version, which previews drift on, stays); pause state and history are kept.
INSERT INTO powertools_cron_entries (
    name, source, worker, queue, args, job_options, expression, timezone, overlap_policy,
    catch_up_policy, max_catch_up, metadata
) VALUES (
    %(name)s, %(source)s, %(worker)s, %(queue)s, %(args)s, %(job_options)s, %(expression)s,
    %(timezone)s, %(overlap_policy)s, %(catch_up_policy)s, %(max_catch_up)s, %(metadata)s
)
ON CONFLICT (name) DO UPDATE SET
    source = EXCLUDED.source, worker = EXCLUDED.worker, queue = EXCLUDED.queue,
    args = EXCLUDED.args, job_options = EXCLUDED.job_options,
    expression = EXCLUDED.expression, timezone = EXCLUDED.timezone,
    overlap_policy = EXCLUDED.overlap_policy, catch_up_policy = EXCLUDED.catch_up_policy,
    max_catch_up = EXCLUDED.max_catch_up, metadata = EXCLUDED.metadata,
    version = powertools_cron_entries.version + 1, updated_at = clock_timestamp()
WHERE (powertools_cron_entries.source, powertools_cron_entries.worker,
       powertools_cron_entries.queue, powertools_cron_entries.args,
       powertools_cron_entries.job_options, powertools_cron_entries.expression,
       powertools_cron_entries.timezone, powertools_cron_entries.overlap_policy,
       powertools_cron_entries.catch_up_policy, powertools_cron_entries.max_catch_up,
       powertools_cron_entries.metadata)
      IS DISTINCT FROM
      (EXCLUDED.source, EXCLUDED.worker, EXCLUDED.queue, EXCLUDED.args,
       EXCLUDED.job_options, EXCLUDED.expression, EXCLUDED.timezone,
       EXCLUDED.overlap_policy, EXCLUDED.catch_up_policy, EXCLUDED.max_catch_up,
       EXCLUDED.metadata)

-- name: entry_job_template
-- What an entry's jobs are made of.
SELECT worker, queue, args, job_options, expression FROM powertools_cron_entries
WHERE name = %(name)s

-- name: record_last_job
-- The entry's newest job, for the pages and forensics.
UPDATE powertools_cron_entries SET last_job_id = %(job_id)s WHERE name = %(name)s

-- name: restart_evaluation
-- A changed expression or time zone makes the entry's old evaluated_through meaningless:
-- minutes the scheduler skipped as "not due" under the old definition could look like
-- missed slots under the new one and be caught up. Starting over from now avoids that.
UPDATE powertools_cron_entries SET evaluated_through = NULL
WHERE name = ANY(%(names)s) AND evaluated_through IS NOT NULL

-- name: crontab
-- What Oban Web's cron view is told about each stored entry (oban's cronitor broadcast),
-- paused ones included and marked.
SELECT name, expression, worker, timezone, paused FROM powertools_cron_entries ORDER BY name

-- name: clock_now
-- The transaction's wall clock now (not its start): when an operator's manual run is due.
SELECT clock_timestamp() AS now

-- name: list_entries
-- The cron page's entries (or one, by name), each with its latest run and that run's job
-- state.
SELECT e.name, e.source, e.worker, e.queue, e.args, e.job_options, e.expression, e.timezone,
       e.overlap_policy, e.catch_up_policy, e.max_catch_up, e.paused, e.paused_at,
       e.paused_by_id, e.paused_by_label, e.paused_reason, e.pause_expires_at,
       e.evaluated_through, e.last_slot_at, e.last_job_id, e.follow_up_slot_at, e.version,
       e.created_at, e.updated_at,
       s.slot_at AS last_run_at, s.kind AS last_run_kind, s.outcome AS last_run_outcome,
       coalesce(s.job_id, e.last_job_id) AS last_run_job_id,
       j.state::text AS last_job_state
FROM powertools_cron_entries e
LEFT JOIN LATERAL (
    SELECT slot_at, kind, outcome, job_id FROM powertools_cron_slots
    WHERE entry_name = e.name ORDER BY slot_at DESC LIMIT 1
) s ON true
LEFT JOIN oban_jobs j ON j.id = coalesce(s.job_id, e.last_job_id)
WHERE (%(name)s::text IS NULL OR e.name = %(name)s::text)
ORDER BY e.name
LIMIT %(limit)s

-- name: paused_entries
-- The overview's paused cron entries, most recently paused first.
SELECT name, paused_at, paused_by_id, paused_by_label, paused_reason, pause_expires_at
FROM powertools_cron_entries WHERE paused
ORDER BY paused_at DESC LIMIT %(limit)s
