-- Scheduler coverage (powertools_scheduler_coverage): the spans of minutes each leader
-- evaluated, for forensics' gaps and for a new leader's grace window.

-- name: last_covered
-- The last minute any leader evaluated, where a new leader's grace window starts.
SELECT max(last_minute) AS last_minute FROM powertools_scheduler_coverage

-- name: record_coverage
-- Extend this node's latest span when the new minutes touch or overlap it, else start a
-- new span. One statement, so a crash cannot leave half a decision.
WITH latest AS (
    SELECT id, first_minute, last_minute FROM powertools_scheduler_coverage
    WHERE node = %(node)s
    ORDER BY last_minute DESC, id DESC
    LIMIT 1
), joined AS (
    SELECT id, last_minute FROM latest
    WHERE first_minute <= %(last)s AND last_minute >= %(first)s::timestamptz - interval '1 minute'
), extended AS (
    UPDATE powertools_scheduler_coverage c SET last_minute = %(last)s
    FROM joined WHERE c.id = joined.id AND joined.last_minute < %(last)s
    RETURNING c.id
)
INSERT INTO powertools_scheduler_coverage (node, first_minute, last_minute)
SELECT %(node)s, %(first)s, %(last)s
WHERE NOT EXISTS (SELECT 1 FROM joined)

-- name: window_coverage
-- The evaluated spans that overlap a forensics window, oldest first.
SELECT first_minute, last_minute FROM powertools_scheduler_coverage
WHERE last_minute >= %(since)s AND first_minute <= %(until)s
ORDER BY first_minute
LIMIT %(limit)s
