-- Job rollups (runtime/rollup.py): per minute and queue, what finished and how long jobs
-- waited, written by oban's leader soon after each minute closes. The overview's and the
-- queue pages' charts read only these rows, never oban_jobs. Times are UTC without a zone,
-- as oban's own columns are.
CREATE TABLE powertools_job_rollups (
    minute timestamp NOT NULL,
    queue text NOT NULL,
    completed integer NOT NULL DEFAULT 0,      -- jobs completed in the minute
    discarded integer NOT NULL DEFAULT 0,      -- jobs discarded in the minute
    retried integer NOT NULL DEFAULT 0,        -- attempts that errored in it and were retried
    cancelled integer NOT NULL DEFAULT 0,      -- jobs cancelled in the minute
    wait_count integer NOT NULL DEFAULT 0,     -- attempts started in the minute
    wait_ms_sum bigint NOT NULL DEFAULT 0,     -- their summed queue wait (attempted - scheduled)
    wait_ms_max bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
);

-- A queue's page reads its own rows over the last day.
CREATE INDEX powertools_job_rollups_queue ON powertools_job_rollups (queue, minute);

-- How far the rollup is written: the end (exclusive) of the last minute aggregated, NULL
-- before the first pass. One row, there from the start: every pass locks it, so two
-- leaders (or a re-run) serialize instead of both writing.
CREATE TABLE powertools_job_rollup_progress (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    written_through timestamp,
    written_by text,
    written_at timestamptz
);
INSERT INTO powertools_job_rollup_progress (singleton) VALUES (true);
