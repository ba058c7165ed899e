-- Prometheus metrics (read_models/metrics.py): each a fixed number of index entries or a
-- time-bounded range, so a scrape costs the same at 10M jobs as at 10.

-- name: cron_state
-- Entries active and paused, the last minute any leader evaluated, and the database clock.
SELECT count(*) FILTER (WHERE NOT paused) AS active,
       count(*) FILTER (WHERE paused) AS paused,
       (SELECT max(last_minute) FROM powertools_scheduler_coverage) AS last_covered,
       now() AS now
FROM powertools_cron_entries

-- name: cron_recent_slots
-- The slots of the last window by outcome, read per entry through the (entry, slot_at)
-- index, at most per_entry each, over the first entries by name; and how late the latest
-- live decisions came (claimed_at - slot_at of scheduled slots).
SELECT s.outcome, count(*) AS n,
       max(extract(epoch FROM s.claimed_at - s.slot_at))
           FILTER (WHERE s.kind = 'scheduled') AS max_lag
FROM (SELECT name FROM powertools_cron_entries ORDER BY name LIMIT %(entries)s) e
CROSS JOIN LATERAL (
    SELECT c.outcome, c.kind, c.claimed_at, c.slot_at
    FROM powertools_cron_slots c
    WHERE c.entry_name = e.name
      AND c.slot_at > now() - make_interval(secs => %(window)s)
    ORDER BY c.slot_at DESC
    LIMIT %(per_entry)s) s
GROUP BY s.outcome
ORDER BY s.outcome

-- name: recent_actions
-- Audit events of the last window by action name and outcome, a range of the occurred_at
-- index.
SELECT command AS action, outcome, count(*) AS n
FROM powertools_audit_events
WHERE occurred_at > now() - make_interval(secs => %(window)s)
GROUP BY command, outcome
ORDER BY command, outcome
LIMIT %(limit)s
