-- Cron slots (powertools_cron_slots): one row per claimed minute of an entry, unique on
-- (entry, minute), which is what makes a slot exactly-once.

-- name: claimed_slots
-- Which of the planned (entry, minute) slots have a row already. Read with the entries
-- locked, so no evaluation can claim one of them until the chunk commits.
SELECT s.entry_name, s.slot_at FROM powertools_cron_slots s
JOIN unnest(%(names)s::text[], %(slot_ats)s::timestamptz[]) AS c(name, slot_at)
  ON s.entry_name = c.name AND s.slot_at = c.slot_at AND s.kind <> 'manual'

-- name: write_chunk
-- The rest of a chunk in one round trip: every slot row, the jobs of released follow-ups
-- written onto their deferred rows, and the entries' bookkeeping (see advance_entries,
-- whose SET this is). A slot row that conflicts was claimed without the entry's lock
-- (which no writer does): the insert fails on powertools_cron_slots_once_index and the
-- caller decides the chunk again. A plain insert, not ON CONFLICT DO NOTHING: the
-- speculative insertion that needs costs more, for a conflict that rolls the chunk back
-- either way.
WITH claimed AS (
    INSERT INTO powertools_cron_slots (entry_name, slot_at, kind, outcome, job_id,
                                       claimed_by, detail)
    SELECT s.name, s.slot_at, s.kind, s.outcome, s.job_id, %(claimed_by)s, s.detail
    FROM ROWS FROM (jsonb_to_recordset(%(slots)s) AS (name text, slot_at timestamptz,
                    kind text, outcome text, job_id bigint, detail jsonb))
         WITH ORDINALITY AS s(name, slot_at, kind, outcome, job_id, detail, n)
    ORDER BY s.n
    RETURNING 1
), released AS (
    UPDATE powertools_cron_slots s SET job_id = u.job_id
    FROM unnest(%(released_ids)s::bigint[], %(released_jobs)s::bigint[]) AS u(id, job_id)
    WHERE s.id = u.id
    RETURNING 1
), advanced AS (
    UPDATE powertools_cron_entries e
    SET evaluated_through = u.through,
        last_slot_at = GREATEST(e.last_slot_at, u.last_slot_at),
        last_job_id = COALESCE(u.last_job, e.last_job_id),
        follow_up_slot_at = u.follow_up
    FROM jsonb_to_recordset(%(entries)s) AS u(name text, through timestamptz,
                                              last_slot_at timestamptz, last_job bigint,
                                              follow_up timestamptz)
    WHERE e.name = u.name AND e.name = ANY(%(names)s::text[])
    RETURNING 1
)
SELECT count(*) AS claimed FROM claimed

-- name: release_follow_ups
-- The deferred slots (follow-ups) to release, for several entries at once.
UPDATE powertools_cron_slots s
SET outcome = 'enqueued', detail = s.detail || %(detail)s
FROM unnest(%(names)s::text[], %(slot_ats)s::timestamptz[]) AS u(name, slot_at)
WHERE s.entry_name = u.name AND s.slot_at = u.slot_at AND s.kind <> 'manual'
  AND s.outcome = 'deferred'
RETURNING s.id, s.entry_name, s.kind

-- name: insert_slot
-- Claim one slot (a failed minute, or an operator's manual run); no row when the minute
-- was claimed before. Manual runs are not unique per minute.
INSERT INTO powertools_cron_slots (entry_name, slot_at, kind, outcome, job_id, claimed_by, detail)
VALUES (%(name)s, %(slot_at)s, %(kind)s, %(outcome)s, %(job_id)s, %(claimed_by)s, %(detail)s)
ON CONFLICT (entry_name, slot_at) WHERE kind <> 'manual' DO NOTHING
RETURNING id

-- name: recent_slots
-- An entry's latest slots, newest first, with each job's state.
SELECT s.id, s.slot_at, s.kind, s.outcome, s.job_id, s.claimed_at, s.claimed_by, s.detail,
       j.state::text AS job_state
FROM powertools_cron_slots s
LEFT JOIN oban_jobs j ON j.id = s.job_id
WHERE s.entry_name = %(name)s
ORDER BY s.slot_at DESC, s.id DESC
LIMIT %(limit)s

-- name: entry_window_slots
-- The latest slots of one entry since the start of a forensics window, each with its job
-- (whether the row is still there, its state, its last error).
SELECT s.id, s.slot_at, s.kind, s.outcome, s.job_id, s.claimed_at, s.claimed_by,
       j.id IS NOT NULL AS job_present, j.state::text AS job_state,
       j.errors->-1->>'error' AS last_error
FROM powertools_cron_slots s
LEFT JOIN oban_jobs j ON j.id = s.job_id
WHERE s.entry_name = %(name)s AND s.slot_at >= %(since)s
ORDER BY s.slot_at DESC, s.id DESC
LIMIT %(limit)s

-- name: job_slots
-- The cron slots that enqueued one job (forensics: "enqueued by cron entry ...").
SELECT entry_name, slot_at, kind, outcome, claimed_at, claimed_by
FROM powertools_cron_slots WHERE job_id = %(id)s ORDER BY claimed_at LIMIT 5
