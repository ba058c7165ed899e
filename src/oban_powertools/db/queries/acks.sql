-- The ack of jobs that belong to a composite (workflow, chain, batch), in the
-- transaction that also runs the composites' follow-ups (runtime/acks.py); the ack
-- itself is workflows.finish_steps (it releases workflow steps in the same statement).
-- The statements run on oban's pool, whose search_path is the host's: they name the
-- tables in ``{schema}``, composed as an identifier (db.queries.InSchema).

-- name: wake_queues
-- Wake the producers of these queues (oban's insert notification, which its stager
-- relays to the local producer) for the jobs the follow-ups made available.
SELECT count(pg_notify(%(channel)s, json_build_object('queue', q.queue)::text)) AS woken
FROM unnest(%(queues)s::text[]) AS q(queue)
