-- powertools: no-transaction
-- Indexes the control plane needs at millions of jobs, built with CREATE INDEX
-- CONCURRENTLY so that oban keeps inserting, fetching and acking jobs meanwhile. The runner
-- runs this file statement by statement outside a transaction (see db/migrate.py) and
-- rebuilds an index a failed earlier run left INVALID.

-- A job's (or any subject's) audit trail includes the bulk actions that named it in
-- detail.targets; without this, finding them reads every bulk event's target list.
CREATE INDEX CONCURRENTLY IF NOT EXISTS powertools_audit_events_targets_index
    ON powertools_audit_events USING gin ((detail -> 'targets'))
    WHERE resource_id LIKE 'bulk:%';

-- The overview's stuck-job check reads the oldest executing jobs, and its failing-worker
-- check the newest retryable ones. oban's own indexes order neither by attempted_at, so
-- both read every executing (or retryable and scheduled) job first. Partial: only rows in
-- these two states are indexed, one entry per attempt, so oban's write path barely notices.
CREATE INDEX CONCURRENTLY IF NOT EXISTS powertools_oban_jobs_attempted_index
    ON oban_jobs (state, attempted_at NULLS FIRST)
    WHERE state IN ('executing', 'retryable');
