-- powertools: no-transaction
-- The partitioned fetch walks a queue's partitions in key order and takes each one's
-- next jobs (runtime/limiter.py); this index makes each step one probe, so a fetch costs
-- the same over 100 partitions or 10,000 and never reads completed jobs. Partial: only
-- available jobs of partitioned queues (the ones with a key) are in it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS powertools_oban_jobs_partition_index
    ON oban_jobs (queue, (meta ->> 'partition_key'), priority, scheduled_at, id)
    WHERE state = 'available' AND meta ? 'partition_key';
