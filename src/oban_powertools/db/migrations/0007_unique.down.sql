DROP TRIGGER IF EXISTS powertools_unique_release ON oban_jobs;
DROP FUNCTION IF EXISTS powertools_release_unique();
