-- powertools: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS powertools_oban_jobs_attempted_index;
DROP INDEX CONCURRENTLY IF EXISTS powertools_audit_events_targets_index;
