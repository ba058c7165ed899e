-- Unique (idempotent) enqueue (runtime/inserter.py). These statements also run on the
-- host's own connection, inside its transaction (``enqueue(..., conn=...)``), whose
-- search_path is the host's: they name oban's tables in ``{schema}``, an identifier the
-- inserter composes with psycopg's ``sql.Identifier`` (quoted), never as text. No other
-- braces may appear in them.

-- name: insert_jobs
-- Insert a batch in one statement, ids drawn first so each input row is matched to its
-- job; a unique job whose key another job holds (in the table, or earlier in this batch)
-- is not inserted (its row comes back without an id). Same defaults as oban's own insert;
-- available jobs wake their queue's producers.
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
                                         queue, scheduled_at, state, tags, worker)
    OVERRIDING SYSTEM VALUE
    SELECT id, args, coalesce(inserted_at, timezone('UTC', now())), max_attempts, meta,
           priority, queue, coalesce(scheduled_at, timezone('UTC', now())),
           (CASE WHEN state = 'available' AND scheduled_at IS NOT NULL THEN 'scheduled'
                 ELSE state END)::{schema}.oban_job_state,
           ARRAY(SELECT jsonb_array_elements_text(tags)), worker
    FROM input
    ORDER BY ord
    ON CONFLICT ((meta ->> 'unique_key')) WHERE meta ? 'unique_key' DO NOTHING
    RETURNING j.id, j.inserted_at, j.queue, j.scheduled_at, j.state, j.meta
), woken AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
)
SELECT input.ord, inserted.id, inserted.inserted_at, inserted.queue, inserted.scheduled_at,
       inserted.state::text AS state, inserted.meta, (SELECT n FROM woken) AS woken
FROM input
LEFT JOIN inserted ON inserted.id = input.id
ORDER BY input.ord

-- name: holders
-- The jobs holding these unique keys, which a conflicting insert returns instead, each
-- with whether its period is over (inserted before now - period; NULL period: never).
SELECT j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts,
       j.priority, j.args, j.meta, j.errors, j.tags, j.attempted_by, j.inserted_at,
       j.attempted_at, j.cancelled_at, j.completed_at, j.discarded_at, j.scheduled_at,
       coalesce(j.inserted_at < timezone('UTC', now()) - make_interval(secs => u.period),
                false) AS expired
FROM unnest(%(keys)s::text[], %(periods)s::float8[]) AS u(key, period)
JOIN {schema}.oban_jobs j ON j.meta ? 'unique_key' AND j.meta ->> 'unique_key' = u.key

-- name: expire_holders
-- Release the keys of holders whose period is over, so the insert after this goes
-- through. A holder that moved on meanwhile (key already gone) is left alone.
UPDATE {schema}.oban_jobs
SET meta = meta - 'unique_key'
WHERE id = ANY(%(ids)s::bigint[]) AND meta ? 'unique_key'

-- name: replace_holders
-- A conflicting insert with ``replace``: update the chosen fields of the job holding the
-- key, if it is in a state the option names. A new scheduled_at in the future makes an
-- available job scheduled (and one in the past makes a scheduled job due).
UPDATE {schema}.oban_jobs j
SET args = CASE WHEN r.fields ? 'args' THEN r.args ELSE j.args END,
    meta = CASE WHEN r.fields ? 'meta' THEN j.meta || r.meta ELSE j.meta END,
    max_attempts = CASE WHEN r.fields ? 'max_attempts' THEN r.max_attempts
                        ELSE j.max_attempts END,
    priority = CASE WHEN r.fields ? 'priority' THEN r.priority ELSE j.priority END,
    tags = CASE WHEN r.fields ? 'tags' THEN ARRAY(SELECT jsonb_array_elements_text(r.tags))
                ELSE j.tags END,
    scheduled_at = CASE WHEN r.fields ? 'scheduled_at'
                        THEN coalesce(r.scheduled_at, j.scheduled_at)
                        ELSE j.scheduled_at END,
    state = CASE WHEN r.fields ? 'scheduled_at' AND r.scheduled_at IS NOT NULL
                      AND j.state IN ('available', 'scheduled')
                 THEN (CASE WHEN r.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                            ELSE 'available' END)::{schema}.oban_job_state
                 ELSE j.state END
FROM unnest(%(ids)s::bigint[], %(states)s::jsonb[], %(fields)s::jsonb[], %(args)s::jsonb[],
            %(meta)s::jsonb[], %(max_attempts)s::smallint[], %(priority)s::smallint[],
            %(tags)s::jsonb[], %(scheduled_at)s::timestamp[])
     AS r(id, states, fields, args, meta, max_attempts, priority, tags, scheduled_at)
WHERE j.id = r.id AND r.states ? j.state::text
RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts,
          j.priority, j.args, j.meta, j.errors, j.tags, j.attempted_by, j.inserted_at,
          j.attempted_at, j.cancelled_at, j.completed_at, j.discarded_at, j.scheduled_at
