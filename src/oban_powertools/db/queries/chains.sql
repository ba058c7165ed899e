-- Chains (chains/, runtime/chain_batch_insert.py, runtime/chain_release.py). These
-- statements run on oban's pool and on the host's connection (its transaction, its
-- search_path): they name every table in ``{schema}``, composed as an identifier
-- (db.queries.InSchema). No other braces may appear in them.

-- name: reserve_links
-- Lock (creating them if new) the chains of an insert, in key order, and reserve
-- counts[i] positions at the end of chain keys[i]. An idle chain starts running at its
-- first new position (that link is inserted runnable, the others suspended); a running
-- or held chain keeps its head. Returns each chain's last position and head.
INSERT INTO {schema}.powertools_chains AS c (key, state, head_seq, next_seq)
SELECT k.key, 'running', 1, k.n
FROM unnest(%(keys)s::text[], %(counts)s::bigint[]) AS k(key, n)
ORDER BY k.key
ON CONFLICT (key) DO UPDATE
SET next_seq = c.next_seq + EXCLUDED.next_seq,
    state = CASE WHEN c.state = 'idle' THEN 'running' ELSE c.state END,
    head_seq = CASE WHEN c.state = 'idle' THEN c.next_seq + 1 ELSE c.head_seq END,
    updated_at = now()
RETURNING c.key, c.state, c.head_seq, c.next_seq AS last_seq

-- name: insert_links
-- The link rows of an insert, in one statement.
INSERT INTO {schema}.powertools_chain_links (chain_key, seq, job_id, on_failure)
SELECT l.chain_key, l.seq, l.job_id, l.on_failure
FROM unnest(%(keys)s::text[], %(seqs)s::bigint[], %(job_ids)s::bigint[],
            %(on_failure)s::text[]) AS l(chain_key, seq, job_id, on_failure)

-- name: lock_chains
-- Lock the chains whose links an ack (or a repair, or an operator) finishes, in key
-- order, before reading their links: an insert into one of them either committed
-- before (its links are seen) or waits (and then sees the chain moved on).
SELECT key FROM {schema}.powertools_chains
WHERE key = ANY(%(keys)s::text[])
ORDER BY key
FOR UPDATE

-- name: finish_links
-- Record how these links' jobs finished (a link finishes once) and move their chains
-- on: after a completed link, or a failed one whose on_failure is 'skip', the next
-- unfinished link is released (suspended -> available, or scheduled when it was
-- inserted for later) and becomes the head, or the chain goes idle; a failed link
-- whose on_failure is 'hold' holds its chain there. The chains are locked
-- (lock_chains) by the caller. Returns one row per chain moved.
WITH acked AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(states)s::text[]) AS a(job_id, state)
), finished AS (
    UPDATE {schema}.powertools_chain_links AS l
    SET outcome = a.state, finished_at = now()
    FROM acked a
    WHERE l.job_id = a.job_id AND l.outcome IS NULL
    RETURNING l.chain_key, l.seq, l.outcome, l.on_failure, l.job_id
), per_chain AS (
    SELECT DISTINCT ON (f.chain_key) f.chain_key, f.seq, f.outcome, f.job_id,
           (f.outcome IN ('completed', 'skipped') OR f.on_failure = 'skip') AS moves_on,
           count(*) FILTER (WHERE f.outcome = 'completed') OVER w AS completed,
           count(*) FILTER (WHERE f.outcome IN ('cancelled', 'discarded')) OVER w AS failed
    FROM finished f
    WINDOW w AS (PARTITION BY f.chain_key)
    ORDER BY f.chain_key, f.seq DESC
), nexts AS (
    SELECT p.chain_key, n.seq, n.job_id
    FROM per_chain p
    CROSS JOIN LATERAL (
        SELECT l.seq, l.job_id FROM {schema}.powertools_chain_links l
        WHERE l.chain_key = p.chain_key AND l.outcome IS NULL AND l.seq > p.seq
        ORDER BY l.seq
        LIMIT 1
    ) n
    WHERE p.moves_on
), released AS (
    UPDATE {schema}.oban_jobs AS j
    SET state = (CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                      ELSE 'available' END)::{schema}.oban_job_state
    FROM nexts n
    WHERE j.id = n.job_id AND j.state = 'suspended'
    RETURNING j.id, j.queue, j.state::text AS state
), moved AS (
    UPDATE {schema}.powertools_chains AS c
    SET state = CASE WHEN NOT p.moves_on THEN 'held'
                     WHEN n.seq IS NULL THEN 'idle'
                     ELSE 'running' END,
        head_seq = CASE WHEN NOT p.moves_on THEN p.seq ELSE n.seq END,
        links_completed = c.links_completed + p.completed,
        links_failed = c.links_failed + p.failed,
        updated_at = now()
    FROM per_chain p
    LEFT JOIN nexts n ON n.chain_key = p.chain_key
    WHERE c.key = p.chain_key
    RETURNING c.key, c.state, c.head_seq
)
SELECT m.key, m.state, m.head_seq, p.seq AS finished_seq, p.outcome AS finished_outcome,
       p.job_id AS finished_job_id, n.job_id AS next_job_id, r.queue AS released_queue,
       r.state AS released_state
FROM moved m
JOIN per_chain p ON p.chain_key = m.key
LEFT JOIN nexts n ON n.chain_key = m.key
LEFT JOIN released r ON r.id = n.job_id
ORDER BY m.key

-- name: stuck_heads
-- Running chains whose head link's job finished (or vanished) without its ack reaching
-- the chain: an operator's cancel or delete through oban's own paths, which bypass the
-- ack hook. The repair finishes them as their job finished (a vanished job counts as
-- cancelled). Cheap: the running chains only, through their partial index.
SELECT l.chain_key, l.job_id, coalesce(j.state::text, 'cancelled') AS state
FROM {schema}.powertools_chains c
JOIN {schema}.powertools_chain_links l ON l.chain_key = c.key AND l.seq = c.head_seq
LEFT JOIN {schema}.oban_jobs j ON j.id = l.job_id
WHERE c.state = 'running'
  AND l.outcome IS NULL
  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded'))
ORDER BY l.chain_key
LIMIT %(limit)s
