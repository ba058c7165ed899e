DROP TRIGGER IF EXISTS powertools_partition_key_available ON oban_jobs;
DROP TRIGGER IF EXISTS powertools_partition_key_insert ON oban_jobs;
DROP FUNCTION IF EXISTS powertools_key_partition();
DROP FUNCTION IF EXISTS powertools_partition_key(text, jsonb, text[], text[]);
DROP TABLE IF EXISTS powertools_limit_turns;
DROP TABLE IF EXISTS powertools_limit_starts;
DROP TABLE IF EXISTS powertools_queue_limits;
