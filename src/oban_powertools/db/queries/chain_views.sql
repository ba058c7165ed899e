-- What the control plane reads and changes of chains and batches (read_models/chains.py,
-- read_models/batches.py, actions/chains.py), on Powertools' own connections, whose
-- search_path is the configured schema: tables are named unqualified.

-- name: lock_chain
-- Lock a chain before the resume_chain snapshot and confirm read its links: an insert
-- or an ack on the chain waits for the operator's transaction, and is seen by it.
SELECT key FROM powertools_chains WHERE key = ANY(%(keys)s::text[]) ORDER BY key FOR UPDATE

-- name: chain_snapshot
-- A chain as resume_chain previews it: its state, the link it holds at (the failed
-- one), and the next unfinished link, which a resume releases.
SELECT c.key, c.state, c.head_seq, c.links_completed, c.links_failed,
       h.job_id AS head_job_id, h.outcome AS head_outcome, hj.state::text AS head_job_state,
       n.seq AS next_seq, n.job_id AS next_job_id, nj.state::text AS next_job_state,
       nj.queue AS next_queue, nj.worker AS next_worker
FROM powertools_chains c
LEFT JOIN powertools_chain_links h ON h.chain_key = c.key AND h.seq = c.head_seq
LEFT JOIN oban_jobs hj ON hj.id = h.job_id
LEFT JOIN LATERAL (
    SELECT l.seq, l.job_id FROM powertools_chain_links l
    WHERE l.chain_key = c.key AND l.outcome IS NULL AND l.seq > coalesce(c.head_seq, 0)
    ORDER BY l.seq
    LIMIT 1
) n ON true
LEFT JOIN oban_jobs nj ON nj.id = n.job_id
WHERE c.key = ANY(%(keys)s::text[])

-- name: resume_chain
-- Resume a held chain past its failed link (locked first by lock_chain): the next
-- unfinished link is released (suspended -> available, or scheduled when inserted for
-- later) and becomes the head, or the chain goes idle when none waits. The failed
-- link's job is left as it finished. Wakes the released job's queue.
WITH nxt AS (
    SELECT l.seq, l.job_id
    FROM powertools_chains c
    JOIN powertools_chain_links l ON l.chain_key = c.key
    WHERE c.key = %(key)s AND c.state = 'held' AND l.outcome IS NULL AND l.seq > c.head_seq
    ORDER BY l.seq
    LIMIT 1
), released AS (
    UPDATE oban_jobs AS j
    SET state = (CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                      ELSE 'available' END)::oban_job_state
    FROM nxt
    WHERE j.id = nxt.job_id AND j.state = 'suspended'
    RETURNING j.id, j.queue, j.state::text AS state
), moved AS (
    UPDATE powertools_chains AS c
    SET state = CASE WHEN (SELECT seq FROM nxt) IS NULL THEN 'idle' ELSE 'running' END,
        head_seq = (SELECT seq FROM nxt),
        updated_at = now()
    WHERE c.key = %(key)s AND c.state = 'held'
    RETURNING c.key, c.state, c.head_seq
), woken AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('queue', r.queue)::text)) AS n
    FROM released r
    WHERE r.state = 'available'
)
SELECT m.key, m.state, m.head_seq, (SELECT id FROM released) AS released_job_id,
       (SELECT state FROM released) AS released_state, (SELECT n FROM woken) AS woken
FROM moved m

-- name: chain_links
-- One chain's links in order, each with its job, a page at a time (after seq).
SELECT l.seq, l.job_id, l.on_failure, l.outcome, l.inserted_at, l.finished_at,
       j.state::text AS job_state, j.worker, j.queue, j.attempt, j.max_attempts
FROM powertools_chain_links l
LEFT JOIN oban_jobs j ON j.id = l.job_id
WHERE l.chain_key = %(key)s AND l.seq > %(after)s
ORDER BY l.seq
LIMIT %(limit)s

-- name: chain_of_job
-- The chain link a job is (for its page, the explainer and its forensics bundle), with
-- its chain's state and head, and the head's job.
SELECT l.chain_key, l.seq, l.on_failure, l.outcome, c.state AS chain_state, c.head_seq,
       h.job_id AS head_job_id, hj.state::text AS head_job_state, h.outcome AS head_outcome
FROM powertools_chain_links l
JOIN powertools_chains c ON c.key = l.chain_key
LEFT JOIN powertools_chain_links h ON h.chain_key = c.key AND h.seq = c.head_seq
LEFT JOIN oban_jobs hj ON hj.id = h.job_id
WHERE l.job_id = %(job_id)s

-- name: chains_page
-- Chains, most recently moved first, a page at a time; optionally one state only.
SELECT key, state, head_seq, next_seq, links_completed, links_failed, updated_at
FROM powertools_chains
WHERE (%(state)s::text IS NULL OR state = %(state)s)
ORDER BY updated_at DESC, key
LIMIT %(limit)s

-- name: batches_page
-- Batches, newest first, a page at a time (keyset on inserted_at, id).
SELECT id, name, jobs_total, jobs_completed, jobs_cancelled, jobs_discarded, inserted_at,
       finished_at
FROM powertools_batches
WHERE (%(before_at)s::timestamptz IS NULL OR (inserted_at, id) < (%(before_at)s, %(before_id)s::uuid))
ORDER BY inserted_at DESC, id DESC
LIMIT %(limit)s

-- name: batch
-- One batch with its counters and its callback specs.
SELECT id, name, callbacks, jobs_total, jobs_completed, jobs_cancelled, jobs_discarded,
       inserted_at, finished_at
FROM powertools_batches
WHERE id = %(id)s

-- name: batch_callbacks
-- The callbacks a batch enqueued (its outbox rows), each with its job's state.
SELECT c.kind, c.job_id, c.inserted_at, j.state::text AS job_state, j.worker, j.queue
FROM powertools_batch_callbacks c
LEFT JOIN oban_jobs j ON j.id = c.job_id
WHERE c.batch_id = %(id)s
ORDER BY c.inserted_at, c.kind

-- name: batch_of_job
-- The batch a job belongs to (for its page and its forensics bundle), or the batch a
-- callback job was enqueued for.
SELECT b.id, b.name, b.jobs_total, b.jobs_completed, b.jobs_cancelled, b.jobs_discarded,
       b.finished_at, m.outcome, NULL::text AS callback_kind
FROM powertools_batch_jobs m
JOIN powertools_batches b ON b.id = m.batch_id
WHERE m.job_id = %(job_id)s
UNION ALL
SELECT b.id, b.name, b.jobs_total, b.jobs_completed, b.jobs_cancelled, b.jobs_discarded,
       b.finished_at, NULL, c.kind
FROM powertools_batch_callbacks c
JOIN powertools_batches b ON b.id = c.batch_id
WHERE c.job_id = %(job_id)s

-- name: batch_jobs_sample
-- A few of a batch's jobs per outcome (the unfinished ones first), for its page.
SELECT m.job_id, m.outcome, j.state::text AS job_state, j.worker
FROM powertools_batch_jobs m
LEFT JOIN oban_jobs j ON j.id = m.job_id
WHERE m.batch_id = %(id)s
ORDER BY m.outcome NULLS FIRST, m.job_id
LIMIT %(limit)s
