-- Queue limiters (limits/, runtime/limiter.py).

-- A queue's limiters as the fetch enforces them: the numbers an operator decided
-- (set_queue_limits) or else the ones its code declares (declared, written by each node
-- at start), and the partition its jobs are keyed by, which always comes from code.
CREATE TABLE powertools_queue_limits (
    queue text PRIMARY KEY,
    global_limit integer CHECK (global_limit > 0),
    global_partitioned boolean NOT NULL DEFAULT false,
    rate_allowed integer CHECK (rate_allowed > 0),
    rate_period integer CHECK (rate_period > 0),
    rate_partitioned boolean NOT NULL DEFAULT false,
    partition_fields text[],                 -- 'worker' and/or 'args', NULL: not partitioned
    partition_keys text[] NOT NULL DEFAULT '{}',
    declared jsonb NOT NULL DEFAULT '{}',    -- the options as the code declares them
    declared_by text,                        -- the node that last wrote them
    declared_at timestamptz,
    decided_by_id text,                      -- set while an operator's numbers apply
    decided_by_label text,
    reason text,
    decided_at timestamptz,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate_allowed IS NULL) = (rate_period IS NULL))
);

-- Job starts of rate-limited queues, counted per bucket of seconds (limits/window.py).
-- Written in the transaction that claims the jobs, so it cannot disagree with them;
-- buckets older than the window are deleted. partition_key '' is the whole queue.
CREATE TABLE powertools_limit_starts (
    queue text NOT NULL,
    partition_key text NOT NULL,
    bucket_end bigint NOT NULL,              -- epoch seconds, exclusive
    starts integer NOT NULL CHECK (starts > 0),
    PRIMARY KEY (queue, partition_key, bucket_end)
);
CREATE INDEX powertools_limit_starts_age ON powertools_limit_starts (queue, bucket_end);

-- Where each partitioned queue's round-robin stands: the partition served last.
CREATE TABLE powertools_limit_turns (
    queue text PRIMARY KEY,
    partition_key text NOT NULL,
    turned_at timestamptz NOT NULL DEFAULT now()
);

-- A job's partition key: the JSON array of its worker and/or the named args values,
-- e.g. ["app.Export", 42]. One definition, used by the trigger and the re-keying.
CREATE FUNCTION powertools_partition_key(worker text, args jsonb, fields text[], keys text[])
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ((CASE WHEN 'worker' = ANY(fields) THEN jsonb_build_array(worker)
                  ELSE '[]'::jsonb END)
            || (CASE WHEN 'args' = ANY(fields) THEN
                    coalesce((SELECT jsonb_agg(coalesce(args -> k, 'null'::jsonb) ORDER BY n)
                              FROM unnest(keys) WITH ORDINALITY AS u(k, n)), '[]'::jsonb)
                     ELSE '[]'::jsonb END))::text
    $$;

-- The database keys every job of a partitioned queue when it is inserted (and a job
-- without a key when it becomes available), whoever inserts it: this process, another
-- service, oban's own cron, plain SQL. The function runs with the schema it was created
-- in, whatever the inserting session's search_path.
CREATE FUNCTION powertools_key_partition() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT
    AS $$
    DECLARE
        spec record;
    BEGIN
        SELECT partition_fields, partition_keys INTO spec
        FROM powertools_queue_limits
        WHERE queue = NEW.queue AND partition_fields IS NOT NULL;
        IF FOUND THEN
            NEW.meta := jsonb_set(coalesce(NEW.meta, '{}'::jsonb), '{partition_key}',
                to_jsonb(powertools_partition_key(NEW.worker, NEW.args,
                                                  spec.partition_fields, spec.partition_keys)));
        END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER powertools_partition_key_insert BEFORE INSERT ON oban_jobs
    FOR EACH ROW EXECUTE FUNCTION powertools_key_partition();
CREATE TRIGGER powertools_partition_key_available BEFORE UPDATE OF state ON oban_jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND NOT (NEW.meta ? 'partition_key'))
    EXECUTE FUNCTION powertools_key_partition();
