-- powertools: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS powertools_oban_jobs_unique_key_index;
DROP INDEX CONCURRENTLY IF EXISTS powertools_oban_jobs_unique_index;
