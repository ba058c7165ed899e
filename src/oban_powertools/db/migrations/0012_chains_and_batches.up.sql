-- Chains and batches (chains/, batches/, runtime/chain_batch_insert.py,
-- runtime/chain_release.py, runtime/batch_release.py).
--
-- A link's or batch job's oban row carries only immutable marks in its meta (chain,
-- chain_seq; batch_id), so the ack path knows without a lookup; what changes lives here
-- and is updated in the transaction that acks the job.

-- One chain: its jobs run one after another in insertion order (seq). Every insert and
-- every ack of a link locks this row first, so a link inserted while the head finishes
-- is either released by that ack or inserted available, never both, never neither.
-- state: idle (no unfinished link), running (head_seq is the one link that may run),
-- held (link head_seq failed and its on_failure is 'hold': the next waits for an
-- operator's resume_chain).
CREATE TABLE powertools_chains (
    key text PRIMARY KEY CHECK (key <> ''),
    state text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'running', 'held')),
    head_seq bigint,
    next_seq bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
    links_completed bigint NOT NULL DEFAULT 0 CHECK (links_completed >= 0),
    links_failed bigint NOT NULL DEFAULT 0 CHECK (links_failed >= 0),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'idle') = (head_seq IS NULL))
);
-- The leader's repair reads only the chains that run.
CREATE INDEX powertools_chains_running ON powertools_chains (key) WHERE state = 'running';
CREATE INDEX powertools_chains_updated ON powertools_chains (updated_at DESC, key);

-- One link: the job at position seq of its chain. outcome is set once, when the job
-- finishes (or is skipped by an operator): the guard that keeps a re-run from
-- releasing the next link twice.
CREATE TABLE powertools_chain_links (
    chain_key text NOT NULL REFERENCES powertools_chains (key) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq > 0),
    job_id bigint NOT NULL,
    on_failure text NOT NULL DEFAULT 'hold' CHECK (on_failure IN ('hold', 'skip')),
    outcome text CHECK (outcome IN ('completed', 'cancelled', 'discarded', 'skipped')),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (chain_key, seq),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
CREATE UNIQUE INDEX powertools_chain_links_job ON powertools_chain_links (job_id);
-- The ack finds the next link among the unfinished ones.
CREATE INDEX powertools_chain_links_unfinished ON powertools_chain_links (chain_key, seq)
    INCLUDE (job_id) WHERE outcome IS NULL;

-- One batch: a set of jobs whose callbacks are enqueued once all of them finished. The
-- counters are kept by the ack path (one row update per ack flush, never a count over
-- the batch's jobs). callbacks: kind -> the callback job to insert (worker, queue, args,
-- meta, max_attempts, priority, tags), resolved when the batch was built.
CREATE TABLE powertools_batches (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    callbacks jsonb NOT NULL DEFAULT '{}',
    jobs_total integer NOT NULL CHECK (jobs_total > 0),
    jobs_completed integer NOT NULL DEFAULT 0 CHECK (jobs_completed >= 0),
    jobs_cancelled integer NOT NULL DEFAULT 0 CHECK (jobs_cancelled >= 0),
    jobs_discarded integer NOT NULL DEFAULT 0 CHECK (jobs_discarded >= 0),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK (jobs_completed + jobs_cancelled + jobs_discarded <= jobs_total),
    CHECK ((finished_at IS NOT NULL) = (jobs_completed + jobs_cancelled + jobs_discarded = jobs_total))
);
CREATE INDEX powertools_batches_inserted ON powertools_batches (inserted_at DESC, id);

-- One job of a batch. outcome is set by the job's first finish only: an operator's
-- retry of a finished job never counts it twice.
CREATE TABLE powertools_batch_jobs (
    job_id bigint PRIMARY KEY,
    batch_id uuid NOT NULL REFERENCES powertools_batches (id) ON DELETE CASCADE,
    outcome text CHECK (outcome IN ('completed', 'cancelled', 'discarded'))
);
CREATE INDEX powertools_batch_jobs_batch ON powertools_batch_jobs (batch_id, job_id);

-- The outbox: one row per callback enqueued. Its primary key is what makes a callback
-- fire exactly once: the ack that finishes the batch writes it together with the
-- callback job, and a second writer (a racing ack, a repair) conflicts and inserts
-- nothing.
CREATE TABLE powertools_batch_callbacks (
    batch_id uuid NOT NULL REFERENCES powertools_batches (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('on_completed', 'on_exhausted', 'on_cancelled')),
    job_id bigint NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, kind)
);
