-- powertools: no-transaction
-- What makes a unique insert race-safe: two inserts of the same key conflict in the
-- database (INSERT ... ON CONFLICT DO NOTHING), never a check-then-insert. Partial: only
-- jobs holding a key are in it.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS powertools_oban_jobs_unique_index
    ON oban_jobs ((meta ->> 'unique_key'))
    WHERE meta ? 'unique_key';

-- A unique job's page lists the other jobs of its key (the one it blocked, the ones
-- after its period): meta.unique.key stays when the job lets go of unique_key.
CREATE INDEX CONCURRENTLY IF NOT EXISTS powertools_oban_jobs_unique_key_index
    ON oban_jobs ((meta -> 'unique' ->> 'key'), id)
    WHERE meta ? 'unique';
