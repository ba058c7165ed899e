-- oban-py's producers (oban_producers): one row per node and queue, refreshed by oban
-- every 15 s; the library only reads them.

-- name: queue_producers
-- The producers (one per node and queue) of the given queues, with the age of their last
-- refresh (oban keeps UTC wall time without a zone).
SELECT uuid::text AS uuid, node, queue, name, meta, started_at, updated_at,
       extract(epoch FROM timezone('UTC', now()) - updated_at)::int AS age_seconds
FROM oban_producers
WHERE queue = ANY(%(queues)s)
ORDER BY queue, node, started_at
