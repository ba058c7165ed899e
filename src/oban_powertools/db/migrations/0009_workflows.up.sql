-- Workflows: DAGs of jobs, released as their dependencies finish (workflows/,
-- runtime/acks.py, runtime/workflow_release.py).
--
-- A step's job carries only immutable ids in its meta (workflow_id, workflow_step), so the
-- ack path knows it is a step without a lookup; everything that changes lives here and is
-- updated in the transaction that acks the step's job.

-- One workflow (or sub-workflow: parent_workflow_id and parent_step name the step of its
-- parent that stands for it). The counters are kept incrementally by the ack path, so a
-- workflow's progress is one row read, never a count over its steps.
CREATE TABLE powertools_workflows (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    parent_workflow_id uuid REFERENCES powertools_workflows (id) ON DELETE CASCADE,
    parent_step text,
    -- pending: a sub-workflow whose parent step still waits for its own dependencies;
    -- executing: its steps run as their dependencies finish; then how it finished (the
    -- worst outcome of its steps).
    state text NOT NULL DEFAULT 'executing'
        CHECK (state IN ('pending', 'executing', 'completed', 'cancelled', 'discarded')),
    steps_total integer NOT NULL CHECK (steps_total > 0),
    steps_completed integer NOT NULL DEFAULT 0 CHECK (steps_completed >= 0),
    steps_cancelled integer NOT NULL DEFAULT 0 CHECK (steps_cancelled >= 0),
    steps_discarded integer NOT NULL DEFAULT 0 CHECK (steps_discarded >= 0),
    -- What a step does, by default, when a dependency is cancelled / discarded: be
    -- cancelled too (transitively), or count the dependency as satisfied.
    on_dep_cancelled text NOT NULL DEFAULT 'cancel' CHECK (on_dep_cancelled IN ('cancel', 'ignore')),
    on_dep_discarded text NOT NULL DEFAULT 'cancel' CHECK (on_dep_discarded IN ('cancel', 'ignore')),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    CHECK ((parent_workflow_id IS NULL) = (parent_step IS NULL)),
    CHECK (steps_completed + steps_cancelled + steps_discarded <= steps_total),
    CHECK ((finished_at IS NOT NULL) = (state IN ('completed', 'cancelled', 'discarded')))
);
CREATE INDEX powertools_workflows_parent ON powertools_workflows (parent_workflow_id)
    WHERE parent_workflow_id IS NOT NULL;
-- The workflows page lists the newest first, per state.
CREATE INDEX powertools_workflows_state ON powertools_workflows (state, inserted_at DESC, id);

-- One step: a job (job_id) or a sub-workflow (sub_workflow_id). pending counts the
-- dependencies not yet satisfied; the step's job leaves 'suspended' when it reaches 0.
-- outcome is set once, when the step finishes: the guard that keeps a re-ack (or an
-- operator's retry of a finished step) from releasing its dependents twice.
CREATE TABLE powertools_workflow_steps (
    workflow_id uuid NOT NULL REFERENCES powertools_workflows (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (name <> ''),
    job_id bigint,
    sub_workflow_id uuid REFERENCES powertools_workflows (id) ON DELETE SET NULL,
    deps text[] NOT NULL DEFAULT '{}',
    pending integer NOT NULL CHECK (pending >= 0),
    on_dep_cancelled text NOT NULL DEFAULT 'cancel' CHECK (on_dep_cancelled IN ('cancel', 'ignore')),
    on_dep_discarded text NOT NULL DEFAULT 'cancel' CHECK (on_dep_discarded IN ('cancel', 'ignore')),
    outcome text CHECK (outcome IN ('completed', 'cancelled', 'discarded')),
    -- Why a step was cancelled without running (the dependency that took it down).
    cancelled_by text,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (workflow_id, name),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
-- The ack path finds a job's step through its id.
CREATE UNIQUE INDEX powertools_workflow_steps_job ON powertools_workflow_steps (job_id)
    WHERE job_id IS NOT NULL;
CREATE UNIQUE INDEX powertools_workflow_steps_sub_workflow
    ON powertools_workflow_steps (sub_workflow_id) WHERE sub_workflow_id IS NOT NULL;
-- The repair reads only the steps not finished yet. (pending is left out of it: the
-- decrements of a release then stay heap-only updates.)
CREATE INDEX powertools_workflow_steps_unfinished ON powertools_workflow_steps (workflow_id)
    INCLUDE (job_id) WHERE outcome IS NULL;

-- One dependency: downstream waits for upstream. The ack path walks them from the
-- finished step (the primary key); the DAG page and the repair walk them backwards.
CREATE TABLE powertools_workflow_edges (
    workflow_id uuid NOT NULL,
    upstream text NOT NULL,
    downstream text NOT NULL,
    PRIMARY KEY (workflow_id, upstream, downstream),
    FOREIGN KEY (workflow_id, upstream)
        REFERENCES powertools_workflow_steps (workflow_id, name) ON DELETE CASCADE,
    FOREIGN KEY (workflow_id, downstream)
        REFERENCES powertools_workflow_steps (workflow_id, name) ON DELETE CASCADE,
    CHECK (upstream <> downstream)
);
CREATE INDEX powertools_workflow_edges_downstream
    ON powertools_workflow_edges (workflow_id, downstream);
