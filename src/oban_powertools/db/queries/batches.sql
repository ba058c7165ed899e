-- Batches (batches/, runtime/chain_batch_insert.py, runtime/batch_release.py). These
-- statements run on oban's pool and on the host's connection (its transaction, its
-- search_path): they name every table in ``{schema}``, composed as an identifier
-- (db.queries.InSchema). No other braces may appear in them.

-- name: insert_batches
-- The batch rows of an insert, in one statement.
INSERT INTO {schema}.powertools_batches (id, name, callbacks, jobs_total)
SELECT b.id, b.name, b.callbacks, b.total
FROM unnest(%(ids)s::uuid[], %(names)s::text[], %(callbacks)s::jsonb[], %(totals)s::int[])
     AS b(id, name, callbacks, total)

-- name: insert_batch_jobs
-- The batch membership of an insert's jobs, in one statement.
INSERT INTO {schema}.powertools_batch_jobs (job_id, batch_id)
SELECT m.job_id, m.batch_id
FROM unnest(%(job_ids)s::bigint[], %(batch_ids)s::uuid[]) AS m(job_id, batch_id)

-- name: lock_batches
-- Lock the batches an ack counts jobs of, in id order: two acks of jobs of the same
-- batches never deadlock, and each adds to the counters the other left.
SELECT id FROM {schema}.powertools_batches
WHERE id = ANY(%(ids)s::uuid[])
ORDER BY id
FOR UPDATE

-- name: count_finished
-- Count these jobs' first finish into their batches' counters (a job already counted
-- is not counted again). Returns each batch touched with its new counters, and whether
-- this statement finished it (its last jobs counted here): only that ack enqueues the
-- callbacks.
WITH counted AS (
    UPDATE {schema}.powertools_batch_jobs AS b
    SET outcome = a.state
    FROM unnest(%(ids)s::bigint[], %(states)s::text[]) AS a(job_id, state)
    WHERE b.job_id = a.job_id AND b.outcome IS NULL
    RETURNING b.batch_id, b.outcome
), sums AS (
    SELECT batch_id,
           count(*) FILTER (WHERE outcome = 'completed') AS completed,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE outcome = 'discarded') AS discarded
    FROM counted
    GROUP BY batch_id
)
UPDATE {schema}.powertools_batches AS t
SET jobs_completed = t.jobs_completed + s.completed,
    jobs_cancelled = t.jobs_cancelled + s.cancelled,
    jobs_discarded = t.jobs_discarded + s.discarded,
    finished_at = CASE WHEN t.jobs_completed + t.jobs_cancelled + t.jobs_discarded
                            + s.completed + s.cancelled + s.discarded = t.jobs_total
                       THEN now() END
FROM sums s
WHERE t.id = s.batch_id
RETURNING t.id, t.name, t.jobs_total, t.jobs_completed, t.jobs_cancelled, t.jobs_discarded,
          t.callbacks, t.finished_at IS NOT NULL AS finished

-- name: enqueue_callbacks
-- Claim each due callback's outbox row (batch, kind) and insert its job, in one
-- statement: a callback whose row exists already (another writer claimed it) inserts
-- nothing, so each fires exactly once. Ids are drawn first so the outbox row names its
-- job. Available callbacks wake their queue's producers.
WITH due AS (
    SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) AS job_id, d.*
    FROM unnest(%(batch_ids)s::uuid[], %(kinds)s::text[], %(workers)s::text[],
                %(queues)s::text[], %(args)s::jsonb[], %(meta)s::jsonb[],
                %(max_attempts)s::smallint[], %(priority)s::smallint[], %(tags)s::jsonb[])
         AS d(batch_id, kind, worker, queue, args, meta, max_attempts, priority, tags)
), claimed AS (
    INSERT INTO {schema}.powertools_batch_callbacks (batch_id, kind, job_id)
    SELECT batch_id, kind, job_id FROM due
    ON CONFLICT (batch_id, kind) DO NOTHING
    RETURNING batch_id, kind, job_id
), inserted AS (
    INSERT INTO {schema}.oban_jobs AS j (id, args, meta, max_attempts, priority, queue,
                                         state, tags, worker)
    OVERRIDING SYSTEM VALUE
    SELECT d.job_id, d.args, d.meta, d.max_attempts, d.priority, d.queue, 'available',
           ARRAY(SELECT jsonb_array_elements_text(d.tags)), d.worker
    FROM claimed c
    JOIN due d ON d.job_id = c.job_id
    RETURNING j.id, j.queue, j.worker
)
SELECT c.batch_id, c.kind, i.id AS job_id, i.queue, i.worker
FROM claimed c
JOIN inserted i ON i.id = c.job_id
ORDER BY c.batch_id, c.kind
