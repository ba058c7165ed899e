-- Runtime presence (powertools_runtime_nodes): which oban nodes run the Powertools runtime,
-- compared with the nodes oban itself has rows for (oban_producers, oban_leaders).

-- name: record_node
-- A node records (or renews) that it runs the runtime, with the release it runs.
INSERT INTO powertools_runtime_nodes (name, node, version)
VALUES (%(name)s, %(node)s, %(version)s)
ON CONFLICT (name, node) DO UPDATE SET seen_at = now(), version = EXCLUDED.version

-- name: prune_nodes
-- Nodes come and go (oban's default node name includes the process id): rows not renewed
-- for a week are dropped when a node records itself.
DELETE FROM powertools_runtime_nodes WHERE seen_at < now() - interval '7 days'

-- name: oban_nodes
-- Every node oban has rows for, with the age of its latest heartbeat (oban's tables keep
-- UTC wall time without a zone) and whether it, or its instance name, runs the runtime.
WITH producers AS (
    SELECT name, node, array_agg(DISTINCT queue ORDER BY queue) AS queues,
           max(updated_at) AS refreshed_at
    FROM oban_producers GROUP BY name, node
), nodes AS (
    SELECT coalesce(p.name, l.name) AS name, coalesce(p.node, l.node) AS node, p.queues,
           p.refreshed_at, l.expires_at
    FROM producers p FULL JOIN oban_leaders l ON l.name = p.name AND l.node = p.node
)
SELECT n.name, n.node, n.queues,
       extract(epoch FROM timezone('UTC', now()) - n.refreshed_at)::int AS refresh_age,
       extract(epoch FROM timezone('UTC', now()) - n.expires_at)::int AS lease_age,
       EXISTS (SELECT 1 FROM powertools_runtime_nodes r
               WHERE r.name = n.name AND r.node = n.node
                 AND r.seen_at > now() - make_interval(secs => %(fresh)s)) AS runtime,
       EXISTS (SELECT 1 FROM powertools_runtime_nodes r WHERE r.name = n.name)
           AS name_uses_runtime
FROM nodes n
ORDER BY n.name, n.node
LIMIT %(limit)s
