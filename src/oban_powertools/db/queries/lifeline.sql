-- The accurate lifeline: executing jobs whose producer stopped heartbeating (orphaned),
-- and executing jobs on a live producer that run too long (stuck). A job's producer is
-- attempted_by[2] (the oban_producers uuid, which oban's refresher touches every 15 s),
-- its node attempted_by[1]. A job without a producer uuid (written by an older oban) is
-- judged by a live producer of its node and queue instead: that rule is migration 0014's
-- powertools_live_producers, powertools_producer_live and powertools_producer_heartbeat.
-- Every read of executing jobs goes through Powertools' (state, attempted_at) index:
-- executing jobs are few however large the table is.

-- name: rescue_orphans
-- One lifeline pass: every orphaned executing job (no heartbeat of its producer within
-- ``grace`` seconds) goes back to available with its attempt kept, or to discarded when
-- it has no attempt left, each with an error entry naming the node, the producer and its
-- last heartbeat. The candidates are locked (SKIP LOCKED: an overlapping pass of another
-- leader takes the others) and the UPDATE re-checks state and attempted_at on the row it
-- changes, so a job is rescued once even when two leaders overlap or the job finished in
-- between. At most ``limit`` jobs per pass, oldest first.
WITH orphans AS (
    SELECT j.id, j.attempted_at, j.attempted_by[1] AS node, j.attempted_by[2] AS producer,
           hb.last_heartbeat
    FROM oban_jobs j, powertools_live_producers(%(grace)s) AS live,
         powertools_producer_heartbeat(j.attempted_by, j.queue) AS hb
    WHERE j.state = 'executing'
      AND NOT powertools_producer_live(j.attempted_by, j.queue, live.uuids, live.node_queues)
    ORDER BY j.attempted_at ASC NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE oban_jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded'::oban_job_state
                 ELSE 'available'::oban_job_state END,
    discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN timezone('UTC', now())
                        ELSE j.discarded_at END,
    meta = CASE WHEN j.attempt >= j.max_attempts THEN j.meta
                ELSE j.meta || jsonb_build_object(
                    'rescued', coalesce((j.meta->>'rescued')::int, 0) + 1) END,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempt,
        'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'error', format(
            'orphaned: executing on node %%s whose producer %%s %%s; %%s by the lifeline '
            '(no heartbeat within %%s s)',
            coalesce(o.node, 'unknown'), coalesce(o.producer, 'unknown'),
            CASE WHEN o.last_heartbeat IS NULL THEN 'has no oban_producers row'
                 ELSE 'stopped heartbeating at '
                      || to_char(o.last_heartbeat, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
            CASE WHEN j.attempt >= j.max_attempts THEN 'discarded (no attempt left)'
                 ELSE 'rescued' END,
            %(grace)s::float)))
FROM orphans o
WHERE j.id = o.id
  AND j.state = 'executing'
  AND j.attempted_at IS NOT DISTINCT FROM o.attempted_at
RETURNING j.id, j.state::text AS state, j.queue, o.node, o.producer, o.last_heartbeat

-- name: discard_exhausted
-- What oban's own rescue also does, kept since Powertools replaces it: an available job
-- with no attempt left (its fetch would skip it forever) is discarded. Read through the
-- partial index of migration 0010 (only such jobs are in it).
UPDATE oban_jobs
SET state = 'discarded'::oban_job_state, discarded_at = timezone('UTC', now())
WHERE state = 'available' AND attempt >= max_attempts
RETURNING id, state::text AS state, queue

-- name: executing_sample
-- The evidence a page writes out, after executing_counts counted: for each (queue, kind)
-- it found (``queues``, ``orphaned``: true for orphaned, false for stuck), the ``take``
-- oldest such jobs among the same ``scan`` oldest executing jobs, each with its evidence.
-- Orphaned and stuck jobs are the long-running ones, so each lateral read stops after a
-- few rows of the oldest-first window (at most ``scan``); a page gets a few rows per queue
-- however many jobs are orphaned. The live producers are read once (MATERIALIZED).
WITH live AS MATERIALIZED (
    SELECT * FROM powertools_live_producers(%(grace)s)
), wanted AS (
    SELECT * FROM unnest(%(queues)s::text[], %(orphaned)s::bool[], %(take)s::int[])
        AS w(queue, orphaned, take)
)
SELECT s.*, NOT w.orphaned AS producer_live
FROM wanted w
CROSS JOIN LATERAL (
    SELECT j.id, j.queue, j.worker, j.attempt, j.max_attempts, j.attempted_at,
           j.attempted_by[1] AS node, j.attempted_by[2] AS producer,
           extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint
               AS running_seconds,
           hb.last_heartbeat
    FROM (SELECT * FROM oban_jobs
          WHERE state = 'executing'
          ORDER BY attempted_at ASC NULLS FIRST
          LIMIT %(scan)s) j, live,
         powertools_producer_heartbeat(j.attempted_by, j.queue) AS hb
    WHERE j.queue = w.queue
      AND powertools_producer_live(j.attempted_by, j.queue, live.uuids, live.node_queues)
          = NOT w.orphaned
      AND (w.orphaned OR j.attempted_at IS NULL
           OR j.attempted_at < timezone('UTC', now()) - make_interval(secs => %(stuck_after)s))
    LIMIT w.take
) s
ORDER BY s.queue, producer_live, s.attempted_at ASC NULLS FIRST, s.id

-- name: executing_counts
-- The lifeline's classification counted, for the pages and exporters: the ``scan`` oldest
-- executing jobs, orphaned and stuck ones counted per (queue, node, producer): per queue
-- and attempted_by[1:2], the job's node and producer. Liveness is decided once per group,
-- not per job, and no heartbeat is looked up: a scrape stays cheap when thousands of jobs
-- are executing.
WITH live AS (
    SELECT * FROM powertools_live_producers(%(grace)s)
), executing AS (
    SELECT j.queue, j.attempted_by[1:2] AS attempted_by,
           extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint
               AS running_seconds
    FROM oban_jobs j
    WHERE j.state = 'executing'
    ORDER BY j.attempted_at ASC NULLS FIRST
    LIMIT %(scan)s
), groups AS (
    SELECT queue, attempted_by, count(*) AS scanned,
           count(*) FILTER (WHERE running_seconds > %(stuck_after)s
                              OR running_seconds IS NULL) AS long_running
    FROM executing
    GROUP BY queue, attempted_by
)
SELECT g.queue, g.attempted_by[1] AS node, g.attempted_by[2] AS producer, g.scanned,
       CASE WHEN l.producer_live THEN 0 ELSE g.scanned END AS orphaned,
       CASE WHEN l.producer_live THEN g.long_running ELSE 0 END AS stuck
FROM groups g, live,
LATERAL (SELECT powertools_producer_live(g.attempted_by, g.queue, live.uuids,
                                         live.node_queues) AS producer_live) l

-- name: job_evidence
-- The lifeline's view of the given jobs, whatever their state: where each runs, since
-- when, and its producer's last heartbeat and that heartbeat's age in seconds (NULL when
-- the producer's row is gone).
SELECT j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts,
       j.attempted_at, j.attempted_by[1] AS node, j.attempted_by[2] AS producer,
       extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint AS running_seconds,
       hb.last_heartbeat,
       extract(epoch FROM timezone('UTC', now()) - hb.last_heartbeat)::float AS heartbeat_age
FROM oban_jobs j, powertools_producer_heartbeat(j.attempted_by, j.queue) AS hb
WHERE j.id = ANY(%(ids)s)

-- name: job_evidence_for_update
-- job_evidence with the jobs locked, for a confirm that changes them.
SELECT j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts,
       j.attempted_at, j.attempted_by[1] AS node, j.attempted_by[2] AS producer,
       extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint AS running_seconds,
       hb.last_heartbeat,
       extract(epoch FROM timezone('UTC', now()) - hb.last_heartbeat)::float AS heartbeat_age
FROM oban_jobs j, powertools_producer_heartbeat(j.attempted_by, j.queue) AS hb
WHERE j.id = ANY(%(ids)s)
ORDER BY j.id
FOR UPDATE OF j

-- name: queue_known
-- Whether any node runs the queue or any of its jobs executes (an operator naming a
-- queue to rescue must name one of these).
SELECT EXISTS (SELECT 1 FROM oban_producers WHERE queue = %(queue)s)
    OR EXISTS (SELECT 1 FROM oban_jobs WHERE state = 'executing' AND queue = %(queue)s)
    AS known

-- name: queue_repair_set
-- A queue's repair set, as its preview fixes it: the orphaned (``kind`` 'orphaned': no
-- heartbeat of the producer within ``grace``) or stuck (``kind`` 'stuck': running longer
-- than ``stuck_after`` on a live producer) executing jobs of ``queue``, oldest first, at
-- most ``limit``; every row carries how many there are in all. Read through oban's
-- (state, queue, ...) index: the queue's executing jobs only; the live producers are read
-- once (MATERIALIZED).
WITH live AS MATERIALIZED (
    SELECT * FROM powertools_live_producers(%(grace)s)
), executing AS (
    SELECT j.id, j.attempted_at,
           extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint
               AS running_seconds,
           powertools_producer_live(j.attempted_by, j.queue, live.uuids, live.node_queues)
               AS producer_live
    FROM oban_jobs j, live
    WHERE j.state = 'executing' AND j.queue = %(queue)s::text
), matching AS (
    SELECT id, attempted_at FROM executing
    WHERE CASE WHEN %(kind)s::text = 'orphaned' THEN NOT producer_live
               ELSE producer_live AND running_seconds > %(stuck_after)s END
)
SELECT id, count(*) OVER () AS total
FROM matching
ORDER BY attempted_at ASC NULLS FIRST, id
LIMIT %(limit)s

-- name: operator_rescue
-- An operator's rescue of the given executing jobs (checked and locked by the pipeline):
-- back to available with the attempt kept, or discarded when no attempt is left, each
-- with an error entry saying who rescued it and why.
UPDATE oban_jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded'::oban_job_state
                 ELSE 'available'::oban_job_state END,
    discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN timezone('UTC', now())
                        ELSE j.discarded_at END,
    meta = CASE WHEN j.attempt >= j.max_attempts THEN j.meta
                ELSE j.meta || jsonb_build_object(
                    'rescued', coalesce((j.meta->>'rescued')::int, 0) + 1) END,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempt,
        'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'error', format('orphaned: executing on node %%s whose producer %%s stopped '
                        'heartbeating; %%s by %%s', coalesce(j.attempted_by[1], 'unknown'),
                        coalesce(j.attempted_by[2], 'unknown'),
                        CASE WHEN j.attempt >= j.max_attempts
                             THEN 'discarded (no attempt left)' ELSE 'rescued' END,
                        %(by)s::text)))
WHERE j.id = ANY(%(ids)s) AND j.state = 'executing'
RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts

-- name: operator_discard
-- An operator's discard of the given executing jobs (stuck or orphaned; checked and
-- locked by the pipeline), with an error entry saying who discarded it. A run still
-- going on a live node is told to stop by the caller (oban's pkill signal); its ack is
-- dropped by oban's attempted_at guard.
UPDATE oban_jobs j
SET state = 'discarded'::oban_job_state,
    discarded_at = timezone('UTC', now()),
    meta = j.meta || jsonb_build_object('discarded_by_operator', true),
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempt,
        'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'error', format('stuck: executing on node %%s for %%s s; discarded by %%s',
                        coalesce(j.attempted_by[1], 'unknown'),
                        extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint,
                        %(by)s::text)))
WHERE j.id = ANY(%(ids)s) AND j.state = 'executing'
RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.attempt, j.max_attempts
