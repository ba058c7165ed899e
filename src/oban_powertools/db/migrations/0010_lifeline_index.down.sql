-- powertools: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS powertools_oban_jobs_exhausted_index;
