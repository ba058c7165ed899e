-- Queue limiters: the stored limits (powertools_queue_limits), the rate windows
-- (powertools_limit_starts), the partitions' round-robin (powertools_limit_turns), and the
-- limited fetch (runtime/limiter.py), which runs fetch_lock, fetch_usage, then
-- partition_candidates (partitioned queues only) and one claim statement, in one
-- transaction.

-- name: stored_limits
-- Every queue's stored limits, for the runtime's list of limited queues and the pages.
SELECT queue, global_limit, global_partitioned, rate_allowed, rate_period, rate_partitioned,
       partition_fields, partition_keys, declared, declared_by, declared_at,
       decided_by_id, decided_by_label, reason, decided_at, version
FROM powertools_queue_limits
ORDER BY queue

-- name: lock_declaration
-- Serializes the nodes declaring one queue's limits at start.
SELECT pg_advisory_xact_lock(hashtextextended('powertools.limits:' || %(queue)s, 0))

-- name: stored_limit
-- One queue's stored limits (locked), to compare a node's declaration with.
SELECT queue, global_limit, global_partitioned, rate_allowed, rate_period, rate_partitioned,
       partition_fields, partition_keys, declared, declared_by, declared_at,
       decided_by_id, decided_by_label, reason, decided_at, version
FROM powertools_queue_limits
WHERE queue = %(queue)s
FOR UPDATE

-- name: declare_limits
-- A node's declaration of a queue's limits. The partition always follows the code; the
-- numbers too unless an operator decided them (decided_at set). Returns the transaction
-- id, after which no insert can still be keyed by the old partition (see rekey).
INSERT INTO powertools_queue_limits AS l (
    queue, global_limit, global_partitioned, rate_allowed, rate_period, rate_partitioned,
    partition_fields, partition_keys, declared, declared_by, declared_at)
VALUES (%(queue)s, %(global_limit)s, %(global_partitioned)s, %(rate_allowed)s,
        %(rate_period)s, %(rate_partitioned)s, %(partition_fields)s, %(partition_keys)s,
        %(declared)s, %(node)s, now())
ON CONFLICT (queue) DO UPDATE SET
    global_limit = CASE WHEN l.decided_at IS NULL THEN EXCLUDED.global_limit
                        ELSE l.global_limit END,
    rate_allowed = CASE WHEN l.decided_at IS NULL THEN EXCLUDED.rate_allowed
                        ELSE l.rate_allowed END,
    rate_period = CASE WHEN l.decided_at IS NULL THEN EXCLUDED.rate_period
                       ELSE l.rate_period END,
    global_partitioned = EXCLUDED.global_partitioned,
    rate_partitioned = EXCLUDED.rate_partitioned,
    partition_fields = EXCLUDED.partition_fields,
    partition_keys = EXCLUDED.partition_keys,
    declared = EXCLUDED.declared, declared_by = EXCLUDED.declared_by,
    declared_at = EXCLUDED.declared_at,
    version = l.version + 1, updated_at = now()
RETURNING txid_current() AS txid

-- name: oldest_transaction
-- The oldest transaction still running: once it is past a declaration's, every insert
-- that may have read the old partition has committed or rolled back.
SELECT txid_snapshot_xmin(txid_current_snapshot()) AS xmin

-- name: job_id_span
-- The id range to re-key a queue's jobs over, in slices.
SELECT coalesce(min(id), 0) AS low, coalesce(max(id), 0) AS high FROM oban_jobs

-- name: rekey_slice
-- Re-key the unfinished jobs of one queue within an id slice to its current partition
-- (or remove the key when the queue is no longer partitioned); jobs already right are
-- not written.
UPDATE oban_jobs j
SET meta = CASE WHEN %(fields)s::text[] IS NULL THEN j.meta - 'partition_key'
                ELSE jsonb_set(j.meta, '{partition_key}', to_jsonb(
                    powertools_partition_key(j.worker, j.args, %(fields)s::text[],
                                             %(keys)s::text[]))) END
WHERE j.id BETWEEN %(low)s AND %(high)s
  AND j.queue = %(queue)s
  AND j.state IN ('available', 'scheduled', 'retryable', 'executing', 'suspended')
  AND (j.meta ->> 'partition_key') IS DISTINCT FROM
      (CASE WHEN %(fields)s::text[] IS NULL THEN NULL
            ELSE powertools_partition_key(j.worker, j.args, %(fields)s::text[],
                                          %(keys)s::text[]) END)

-- name: fetch_lock
-- One fetch of a limited queue at a time, across all nodes: the counts that follow (a
-- new snapshot, taken after the lock) include every claim committed before.
SELECT pg_advisory_xact_lock(
    hashtextextended('powertools.fetch:' || current_schema() || ':' || %(queue)s, 0))

-- name: fetch_usage
-- A limited queue's limits and use, read under the fetch lock: jobs executing, starts in
-- the rate window (the whole queue's, partition ''), the round-robin's turn, and the
-- database's clock (epoch seconds) that the window and the claim both use. The clock is
-- the statement's, read after the lock (not the transaction's start, which may precede
-- another node's whole fetch): successive fetches see it only move forward, so a later
-- fetch never prunes a bucket that an earlier-stamped claim still had to count.
SELECT l.global_limit, l.global_partitioned, l.rate_allowed, l.rate_period,
       l.rate_partitioned, l.partition_fields IS NOT NULL AS partitioned,
       statement_timestamp() AS now_at,
       extract(epoch FROM statement_timestamp())::float8 AS now_epoch,
       (SELECT count(*) FROM oban_jobs j
         WHERE j.state = 'executing' AND j.queue = l.queue) AS running,
       (SELECT coalesce(sum(s.starts), 0) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = ''
           AND s.bucket_end > extract(epoch FROM statement_timestamp()) - l.rate_period) AS started,
       (SELECT min(s.bucket_end) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = ''
           AND s.bucket_end > extract(epoch FROM statement_timestamp()) - l.rate_period) AS oldest_bucket,
       (SELECT t.partition_key FROM powertools_limit_turns t WHERE t.queue = l.queue) AS turn
FROM powertools_queue_limits l
WHERE l.queue = %(queue)s

-- name: partition_candidates
-- The next partitions with available jobs in round-robin order (after the turn, then
-- from the start up to it), at most probe of them, each with its available jobs (up to
-- cap), jobs executing and starts in the window. Each step of the walk is one probe of
-- the partition index, so the cost follows probe, not the number of partitions or jobs.
WITH RECURSIVE after_turn(key, n) AS (
    SELECT (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND j.meta ->> 'partition_key' > coalesce(%(turn)s::text, '')
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), 1
    UNION ALL
    SELECT (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND j.meta ->> 'partition_key' > a.key
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), a.n + 1
    FROM after_turn a
    WHERE a.key IS NOT NULL AND a.n < %(probe)s
), up_to_turn(key, n) AS (
    SELECT (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND %(turn)s::text IS NOT NULL
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), 1
    UNION ALL
    SELECT (SELECT j.meta ->> 'partition_key' FROM oban_jobs j
             WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
               AND j.meta ->> 'partition_key' > u.key
             ORDER BY j.meta ->> 'partition_key' LIMIT 1), u.n + 1
    FROM up_to_turn u
    WHERE u.key IS NOT NULL AND u.key < %(turn)s::text AND u.n < %(probe)s
), walk AS (
    SELECT key, n AS ord FROM after_turn WHERE key IS NOT NULL
    UNION ALL
    SELECT key, %(probe)s + n FROM up_to_turn WHERE key IS NOT NULL AND key <= %(turn)s::text
), picked AS (
    SELECT key, ord FROM walk ORDER BY ord LIMIT %(probe)s
), running AS (
    SELECT j.meta ->> 'partition_key' AS key, count(*) AS n FROM oban_jobs j
    WHERE j.state = 'executing' AND j.queue = %(queue)s
    GROUP BY 1
)
SELECT p.key,
       (SELECT count(*) FROM (
            SELECT 1 FROM oban_jobs j
            WHERE j.state = 'available' AND j.queue = %(queue)s AND j.meta ? 'partition_key'
              AND j.meta ->> 'partition_key' = p.key
            LIMIT %(cap)s) c) AS available,
       coalesce(r.n, 0) AS running,
       (SELECT coalesce(sum(s.starts), 0) FROM powertools_limit_starts s
         WHERE s.queue = %(queue)s AND s.partition_key = p.key
           AND s.bucket_end > %(window_floor)s) AS started,
       (SELECT min(s.bucket_end) FROM powertools_limit_starts s
         WHERE s.queue = %(queue)s AND s.partition_key = p.key
           AND s.bucket_end > %(window_floor)s) AS oldest_bucket
FROM picked p
LEFT JOIN running r ON r.key = p.key
ORDER BY p.ord

-- name: claim
-- Claim a limited queue's jobs (oban's own fetch), record the starts for the rate window
-- (per partition when the rate limit is partitioned, else for the whole queue), drop
-- expired buckets and move the turn. keys NULL: the queue is not partitioned, and up to
-- demand jobs of the whole queue are claimed; else counts[i] jobs of partition keys[i]
-- (the round-robin share). Only one of the two locking scans runs: the whole-queue one
-- is off when keys is given (a one-time filter), the partition one has no keys to walk
-- when it is not.
WITH locked_queue AS (
    SELECT id FROM oban_jobs
    WHERE state = 'available' AND queue = %(queue)s AND %(keys)s::text[] IS NULL
    ORDER BY priority, scheduled_at, id
    LIMIT %(demand)s
    FOR UPDATE SKIP LOCKED
), locked_partitions AS (
    SELECT j.id FROM unnest(%(keys)s::text[], %(counts)s::int[]) AS w(key, n)
    CROSS JOIN LATERAL (
        SELECT id FROM oban_jobs
        WHERE state = 'available' AND queue = %(queue)s AND meta ? 'partition_key'
          AND meta ->> 'partition_key' = w.key
        ORDER BY priority, scheduled_at, id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) j
), claimed AS (
    UPDATE oban_jobs oj
    SET attempt = oj.attempt + 1, attempted_at = timezone('UTC', coalesce(%(now_at)s::timestamptz, now())),
        attempted_by = %(attempted_by)s, state = 'executing'
    FROM (SELECT id FROM locked_queue UNION ALL SELECT id FROM locked_partitions) AS locked
    WHERE oj.id = locked.id AND oj.attempt < oj.max_attempts
    RETURNING oj.*
), recorded AS (
    INSERT INTO powertools_limit_starts AS s (queue, partition_key, bucket_end, starts)
    SELECT %(queue)s,
           CASE WHEN %(by_partition)s THEN claimed.meta ->> 'partition_key' ELSE '' END,
           %(bucket_end)s, count(*)
    FROM claimed
    WHERE %(record)s
    GROUP BY 2
    ON CONFLICT (queue, partition_key, bucket_end) DO UPDATE SET starts = s.starts + EXCLUDED.starts
), pruned AS (
    DELETE FROM powertools_limit_starts
    WHERE queue = %(queue)s AND bucket_end <= %(expired)s
), turned AS (
    INSERT INTO powertools_limit_turns AS t (queue, partition_key)
    SELECT %(queue)s, %(turn)s::text WHERE %(turn)s::text IS NOT NULL
    ON CONFLICT (queue) DO UPDATE SET partition_key = EXCLUDED.partition_key, turned_at = now()
)
SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, errors, tags,
       attempted_by, inserted_at, attempted_at, cancelled_at, completed_at, discarded_at,
       scheduled_at
FROM claimed

-- name: limit_use
-- Each limited queue's use right now (or one queue's): jobs executing and, for a
-- partitioned global limit, the partitions at it; starts in the rate window (the whole
-- queue's) and, for a partitioned rate limit, the partitions that spent it; when the
-- oldest counted start leaves the window. Reads only executing jobs and the starts table.
SELECT l.queue,
       extract(epoch FROM now())::float8 AS now_epoch,
       (SELECT count(*) FROM oban_jobs j
         WHERE j.state = 'executing' AND j.queue = l.queue) AS running,
       (SELECT count(*) FROM (
            SELECT 1 FROM oban_jobs j
            WHERE j.state = 'executing' AND j.queue = l.queue AND l.global_partitioned
            GROUP BY j.meta ->> 'partition_key'
            HAVING count(*) >= l.global_limit) full_) AS partitions_at_global,
       (SELECT coalesce(sum(s.starts), 0) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = ''
           AND s.bucket_end > extract(epoch FROM now()) - l.rate_period) AS started,
       (SELECT min(s.bucket_end) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = ''
           AND s.bucket_end > extract(epoch FROM now()) - l.rate_period) AS oldest_bucket,
       (SELECT count(*) FROM (
            SELECT 1 FROM powertools_limit_starts s
            WHERE s.queue = l.queue AND s.partition_key <> '' AND l.rate_partitioned
              AND s.bucket_end > extract(epoch FROM now()) - l.rate_period
            GROUP BY s.partition_key
            HAVING sum(s.starts) >= l.rate_allowed) spent) AS partitions_at_rate
FROM powertools_queue_limits l
WHERE (%(queue)s::text IS NULL OR l.queue = %(queue)s::text)
ORDER BY l.queue

-- name: partition_use
-- One partition of a limited queue: the jobs executing that count against its global
-- limit (all of the queue's unless that limit is partitioned; the first ids, to show), its
-- starts in the rate window and when the oldest leaves it, and the round-robin's turn.
SELECT extract(epoch FROM now())::float8 AS now_epoch,
       (SELECT count(*) FROM oban_jobs j
         WHERE j.state = 'executing' AND j.queue = l.queue
           AND (NOT l.global_partitioned OR j.meta ->> 'partition_key' = %(key)s)) AS running,
       ARRAY(SELECT j.id FROM oban_jobs j
              WHERE j.state = 'executing' AND j.queue = l.queue
                AND (NOT l.global_partitioned OR j.meta ->> 'partition_key' = %(key)s)
              ORDER BY j.id LIMIT %(show)s) AS running_ids,
       (SELECT coalesce(sum(s.starts), 0) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = %(key)s
           AND s.bucket_end > extract(epoch FROM now()) - l.rate_period) AS started,
       (SELECT min(s.bucket_end) FROM powertools_limit_starts s
         WHERE s.queue = l.queue AND s.partition_key = %(key)s
           AND s.bucket_end > extract(epoch FROM now()) - l.rate_period) AS oldest_bucket,
       (SELECT t.partition_key FROM powertools_limit_turns t WHERE t.queue = l.queue) AS turn
FROM powertools_queue_limits l
WHERE l.queue = %(queue)s

-- name: limits_snapshot
-- What set_queue_limits snapshots of each queue that some node runs, or that has stored
-- limits or a stored decision: its stored limits (version 0 and declared '{}' while it
-- has no row yet) and how many of its jobs execute now.
SELECT q.name AS queue, l.global_limit, coalesce(l.global_partitioned, false)
           AS global_partitioned,
       l.rate_allowed, l.rate_period, coalesce(l.rate_partitioned, false) AS rate_partitioned,
       l.partition_fields, coalesce(l.partition_keys, '{}') AS partition_keys,
       coalesce(l.declared, '{}') AS declared, l.declared_by, l.decided_by_id,
       l.decided_by_label, l.reason, l.decided_at, coalesce(l.version, 0) AS version,
       (SELECT count(*) FROM oban_jobs j
         WHERE j.state = 'executing' AND j.queue = q.name) AS running
FROM unnest(%(queues)s::text[]) AS q(name)
LEFT JOIN powertools_queue_limits l ON l.queue = q.name
WHERE l.queue IS NOT NULL
   OR EXISTS (SELECT 1 FROM oban_producers p WHERE p.queue = q.name)
   OR EXISTS (SELECT 1 FROM powertools_queue_states s WHERE s.queue = q.name)

-- name: confirm_set_limits
-- A confirmed set_queue_limits in one statement (the pattern of confirm_set_paused): the
-- preview locked while it is ready, unexpired and the confirming actor's (guard); the
-- queue's row changed only at the version the preview saw, or created when the preview saw
-- none (version 0; a node declaring it meanwhile makes the insert a no-op, so it drifts);
-- the audit event written from the change, consuming the preview. revert clears the
-- decision (the numbers given are then the declaration's), so later declarations apply
-- again. guarded = 0: the preview was not ready; event_id NULL: the queue drifted.
WITH guard AS (SELECT token, before FROM powertools_lock_ready_preview(%(token)s, %(actor_id)s)),
old AS (
    SELECT l.queue, l.global_limit, l.global_partitioned, l.rate_allowed, l.rate_period,
           l.rate_partitioned, l.partition_fields, l.partition_keys, l.declared,
           l.declared_by, l.decided_by_id, l.decided_by_label, l.reason, l.decided_at,
           l.version
    FROM powertools_queue_limits l, guard
    WHERE l.queue = %(queue)s
      AND l.version = (guard.before -> %(queue)s ->> 'version')::bigint
    FOR UPDATE OF l
),
updated AS (
    UPDATE powertools_queue_limits l
    SET global_limit = %(global_limit)s::int, rate_allowed = %(rate_allowed)s::int,
        rate_period = %(rate_period)s::int,
        decided_by_id = CASE WHEN %(revert)s::boolean THEN NULL ELSE %(by_id)s::text END,
        decided_by_label = CASE WHEN %(revert)s::boolean THEN NULL
                                ELSE %(by_label)s::text END,
        reason = CASE WHEN %(revert)s::boolean THEN NULL ELSE %(reason)s::text END,
        decided_at = CASE WHEN %(revert)s::boolean THEN NULL ELSE clock_timestamp() END,
        version = l.version + 1, updated_at = clock_timestamp()
    FROM old WHERE l.queue = old.queue
    RETURNING l.queue, l.global_limit, l.global_partitioned, l.rate_allowed, l.rate_period,
              l.rate_partitioned, l.partition_fields, l.partition_keys, l.declared,
              l.declared_by, l.decided_by_id, l.decided_by_label, l.reason, l.decided_at,
              l.version
),
inserted AS (
    INSERT INTO powertools_queue_limits AS l (
        queue, global_limit, rate_allowed, rate_period, declared, decided_by_id,
        decided_by_label, reason, decided_at)
    SELECT %(queue)s, %(global_limit)s::int, %(rate_allowed)s::int, %(rate_period)s::int,
           '{}'::jsonb, %(by_id)s::text, %(by_label)s::text, %(reason)s::text,
           clock_timestamp()
    FROM guard
    WHERE (guard.before -> %(queue)s ->> 'version')::bigint = 0 AND NOT %(revert)s::boolean
    ON CONFLICT (queue) DO NOTHING
    RETURNING l.queue, l.global_limit, l.global_partitioned, l.rate_allowed, l.rate_period,
              l.rate_partitioned, l.partition_fields, l.partition_keys, l.declared,
              l.declared_by, l.decided_by_id, l.decided_by_label, l.reason, l.decided_at,
              l.version
),
changed AS (SELECT * FROM updated UNION ALL SELECT * FROM inserted),
applied AS (
    SELECT coalesce((SELECT to_jsonb(old) FROM old), guard.before -> %(queue)s) AS before,
           to_jsonb(changed) AS after
    FROM changed, guard
),
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
