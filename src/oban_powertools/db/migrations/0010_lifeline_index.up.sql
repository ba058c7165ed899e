-- powertools: no-transaction
-- The lifeline's pass (every lifeline interval, on the leader) also discards available
-- jobs with no attempt left, as oban's own rescue does (their fetch would skip them
-- forever). Without this index that reads every available job's row; with it, only
-- those few. Partial and nearly always empty: fetches and acks already change the
-- indexed state column, so the index costs no HOT updates.
CREATE INDEX CONCURRENTLY IF NOT EXISTS powertools_oban_jobs_exhausted_index
    ON oban_jobs (id)
    WHERE state = 'available' AND attempt >= max_attempts;
