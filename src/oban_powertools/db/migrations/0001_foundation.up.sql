-- The library's own tables. Tables are named unqualified: the runner sets search_path to
-- the configured schema (prefix), where oban-py's tables live too.

-- Audit: append-only evidence of every operator and system mutation, and of denials.
CREATE TABLE powertools_audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL,            -- event name: cron.paused, job.retried, security.denied
    command text NOT NULL,           -- action name: pause_cron_entry, retry_job
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    principal_id text NOT NULL,
    principal_type text NOT NULL,
    principal_label text NOT NULL,
    reason text,
    preview_token text,
    before jsonb,
    after jsonb,
    surface text NOT NULL CHECK (surface IN ('web', 'api', 'cli', 'system')),
    outcome text NOT NULL CHECK (outcome IN ('succeeded', 'denied', 'failed')),
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX powertools_audit_events_resource_index
    ON powertools_audit_events (resource_type, resource_id, id DESC);
CREATE INDEX powertools_audit_events_action_index
    ON powertools_audit_events (action, id DESC);
CREATE INDEX powertools_audit_events_principal_index
    ON powertools_audit_events (principal_id, id DESC);
CREATE INDEX powertools_audit_events_occurred_at_index
    ON powertools_audit_events (occurred_at DESC, id DESC);

CREATE FUNCTION powertools_audit_events_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'powertools_audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER powertools_audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON powertools_audit_events
    FOR EACH ROW EXECUTE FUNCTION powertools_audit_events_immutable();

CREATE TRIGGER powertools_audit_events_no_truncate
    BEFORE TRUNCATE ON powertools_audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION powertools_audit_events_immutable();

-- Previews: the first half of every mutation. A token is single-use; status moves from
-- ready to exactly one of consumed, expired or drifted.
CREATE TABLE powertools_previews (
    token text PRIMARY KEY,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    targets jsonb NOT NULL DEFAULT '[]'::jsonb,   -- explicit target set of a bulk action
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    before jsonb NOT NULL,
    effect text NOT NULL,
    plan_hash text NOT NULL,
    status text NOT NULL DEFAULT 'ready'
        CHECK (status IN ('ready', 'consumed', 'expired', 'drifted')),
    actor_id text NOT NULL,
    actor_type text NOT NULL,
    actor_label text NOT NULL,
    surface text NOT NULL CHECK (surface IN ('web', 'api', 'cli', 'system')),
    reason text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    resolved_at timestamptz,
    audit_event_id bigint
);

CREATE INDEX powertools_previews_ready_expiry_index
    ON powertools_previews (expires_at) WHERE status = 'ready';
CREATE INDEX powertools_previews_resource_index
    ON powertools_previews (resource_type, resource_id, created_at DESC);

-- Cron entries: declared in code (imported from oban's @worker(cron=...)) or at runtime.
CREATE TABLE powertools_cron_entries (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,120}$'),
    source text NOT NULL CHECK (source IN ('code', 'runtime')),
    worker text NOT NULL CHECK (length(worker) BETWEEN 1 AND 255),
    queue text NOT NULL DEFAULT 'default' CHECK (length(queue) BETWEEN 1 AND 255),
    args jsonb NOT NULL DEFAULT '{}'::jsonb,
    job_options jsonb NOT NULL DEFAULT '{}'::jsonb,   -- priority, max_attempts, tags, meta
    expression text NOT NULL CHECK (length(expression) BETWEEN 1 AND 256),
    timezone text NOT NULL DEFAULT 'Etc/UTC',
    overlap_policy text NOT NULL DEFAULT 'allow'
        CHECK (overlap_policy IN ('allow', 'skip', 'queue_one', 'cancel_previous')),
    catch_up_policy text NOT NULL DEFAULT 'none'
        CHECK (catch_up_policy IN ('none', 'latest', 'all')),
    max_catch_up integer NOT NULL DEFAULT 10 CHECK (max_catch_up BETWEEN 1 AND 1000),
    paused boolean NOT NULL DEFAULT false,
    paused_at timestamptz,
    paused_by_id text,
    paused_by_label text,
    paused_reason text,
    pause_expires_at timestamptz,
    evaluated_through timestamptz,       -- the scheduler decided every minute up to here
    last_slot_at timestamptz,
    last_job_id bigint,
    follow_up_slot_at timestamptz,       -- queue_one: a slot waiting for the active run to end
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    version bigint NOT NULL DEFAULT 1,   -- bumped by every change; drift detection compares it
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT paused OR paused_at IS NOT NULL)
);

CREATE INDEX powertools_cron_entries_pause_expiry_index
    ON powertools_cron_entries (pause_expires_at) WHERE paused;

-- Cron slots: one row per (entry, due minute) claimed by the leader. The unique key is
-- what makes a slot fire exactly once across nodes and leader changes. Manual runs are
-- rows too, outside that key.
CREATE TABLE powertools_cron_slots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_name text NOT NULL REFERENCES powertools_cron_entries (name) ON DELETE CASCADE,
    slot_at timestamptz NOT NULL,
    kind text NOT NULL CHECK (kind IN ('scheduled', 'catch_up', 'manual')),
    outcome text NOT NULL
        CHECK (outcome IN ('enqueued', 'skipped_overlap', 'deferred', 'replaced_previous',
                           'skipped_catch_up', 'failed')),
    job_id bigint,
    claimed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_by text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE UNIQUE INDEX powertools_cron_slots_once_index
    ON powertools_cron_slots (entry_name, slot_at) WHERE kind <> 'manual';
CREATE INDEX powertools_cron_slots_entry_index
    ON powertools_cron_slots (entry_name, slot_at DESC);
CREATE INDEX powertools_cron_slots_job_index
    ON powertools_cron_slots (job_id) WHERE job_id IS NOT NULL;

-- Scheduler coverage: contiguous spans of minutes a leader evaluated. A due minute with no
-- slot inside a span was decided (paused, skipped); outside every span nobody looked.
CREATE TABLE powertools_scheduler_coverage (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node text NOT NULL,
    first_minute timestamptz NOT NULL,
    last_minute timestamptz NOT NULL,
    CHECK (last_minute >= first_minute)
);

CREATE INDEX powertools_scheduler_coverage_span_index
    ON powertools_scheduler_coverage (last_minute DESC);

-- Queue decisions: the operator's desired state, applied to every node and re-applied
-- after restarts, so a redeploy does not silently undo a pause.
CREATE TABLE powertools_queue_states (
    queue text PRIMARY KEY CHECK (length(queue) BETWEEN 1 AND 255),
    paused boolean NOT NULL DEFAULT false,
    limit_override integer CHECK (limit_override BETWEEN 1 AND 10000),
    changed_by_id text,
    changed_by_label text,
    reason text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
