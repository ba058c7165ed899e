-- The operator's stored queue decisions (powertools_queue_states) and what oban's
-- producers say about the same queues.

-- name: queue_snapshot
-- What an action snapshots of each queue: the stored decision and how many nodes run it.
SELECT q.name AS queue,
       coalesce(s.paused, false) AS paused,
       s.limit_override,
       coalesce(s.version, 0) AS version,
       s.changed_by_label,
       s.reason,
       (SELECT count(*) FROM oban_producers p WHERE p.queue = q.name) AS producers,
       (SELECT max((p.meta->>'local_limit')::int) FROM oban_producers p
         WHERE p.queue = q.name) AS configured_limit
FROM unnest(%(queues)s::text[]) AS q(name)
LEFT JOIN powertools_queue_states s ON s.queue = q.name

-- name: lock_queue_key
-- Serializes decisions on one queue for the confirming transaction: its row may not
-- exist yet, so the lock is on the key 'powertools.queue:<name>'.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))

-- name: known_queues
-- The queues some node runs or that have a stored decision.
SELECT DISTINCT queue FROM (
    SELECT queue FROM oban_producers
    UNION ALL SELECT queue FROM powertools_queue_states
) known WHERE queue = ANY(%(queues)s)

-- name: set_paused
-- Store a pause or resume decision; a new version, which every node applies.
INSERT INTO powertools_queue_states (queue, paused, changed_by_id, changed_by_label, reason)
VALUES (%(queue)s, %(paused)s, %(by_id)s, %(by_label)s, %(reason)s)
ON CONFLICT (queue) DO UPDATE SET
    paused = EXCLUDED.paused, changed_by_id = EXCLUDED.changed_by_id,
    changed_by_label = EXCLUDED.changed_by_label, reason = EXCLUDED.reason,
    version = powertools_queue_states.version + 1, updated_at = clock_timestamp()

-- name: set_limit
-- Store a scale decision; a new version, which every node applies.
INSERT INTO powertools_queue_states (queue, limit_override, changed_by_id, changed_by_label,
                                     reason)
VALUES (%(queue)s, %(limit)s, %(by_id)s, %(by_label)s, %(reason)s)
ON CONFLICT (queue) DO UPDATE SET
    limit_override = EXCLUDED.limit_override, changed_by_id = EXCLUDED.changed_by_id,
    changed_by_label = EXCLUDED.changed_by_label, reason = EXCLUDED.reason,
    version = powertools_queue_states.version + 1, updated_at = clock_timestamp()

-- name: desired_states
-- Every stored decision, for the applier on each node.
SELECT queue, paused, limit_override, version FROM powertools_queue_states

-- name: queue_names
-- Every queue known to oban's producers or to a stored decision (or one, by name), with
-- its decision.
SELECT n.queue, s.paused, s.limit_override, s.changed_by_id, s.changed_by_label, s.reason,
       s.updated_at AS decided_at, s.version
FROM (SELECT queue FROM oban_producers UNION SELECT queue FROM powertools_queue_states) n
LEFT JOIN powertools_queue_states s ON s.queue = n.queue
WHERE (%(queue)s::text IS NULL OR n.queue = %(queue)s::text)
ORDER BY n.queue
LIMIT %(limit)s

-- name: paused_queues
-- The overview's paused queues: paused by a stored decision, or paused on some node with no
-- decision stored (undecided), most recently decided first.
SELECT queue, changed_by_id, changed_by_label, reason, updated_at, false AS undecided
FROM powertools_queue_states WHERE paused
UNION ALL
SELECT DISTINCT p.queue, NULL, NULL, NULL, NULL::timestamptz, true
FROM oban_producers p
WHERE (p.meta->>'paused')::boolean
  AND NOT EXISTS (SELECT 1 FROM powertools_queue_states s WHERE s.queue = p.queue)
ORDER BY updated_at DESC NULLS LAST
LIMIT %(limit)s
