-- Pieces of SQL that several statements share, as database functions, so each is written
-- once (as migration 0013 did for the audit writer): the statements in db/queries call
-- them instead of repeating them.

-- A workflow and its sub-workflows (the tree below p_root, p_root included): what every
-- workflow action reads, locks and changes. STABLE and one SELECT, so the planner can
-- inline it into the calling statement.
CREATE FUNCTION powertools_workflow_tree(p_root uuid)
    RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE
    AS $$
    WITH RECURSIVE tree(id) AS (
        SELECT w.id FROM powertools_workflows w WHERE w.id = p_root
        UNION ALL
        SELECT w.id FROM powertools_workflows w JOIN tree t ON w.parent_workflow_id = t.id
    )
    SELECT tree.id FROM tree
    $$;

-- The lifeline's rule for whether an executing job's producer is alive, in three parts
-- that lifeline.sql and oban_jobs.sql's stuck_jobs share. A job's producer is
-- attempted_by[2] (the oban_producers uuid, which oban's refresher touches every 15 s),
-- its node attempted_by[1]; a job without a producer uuid (written by an older oban) is
-- judged by a producer of its node and queue instead.

-- The producers that heartbeat within p_grace seconds, as one row: their uuids, and
-- node || chr(31) || queue of each (for the jobs that name no producer). A statement
-- reads it once and tests each job against it with powertools_producer_live.
CREATE FUNCTION powertools_live_producers(p_grace double precision)
    RETURNS TABLE (uuids text[], node_queues text[])
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(array_agg(p.uuid::text), '{}'),
           coalesce(array_agg(p.node || chr(31) || p.queue), '{}')
    FROM oban_producers p
    WHERE p.updated_at > timezone('UTC', now()) - make_interval(secs => p_grace)
    $$;

-- Whether the producer of a job (its attempted_by and queue) is among the live ones (the
-- uuids and node_queues of powertools_live_producers). One expression, so the planner
-- inlines it into the calling statement.
CREATE FUNCTION powertools_producer_live(
    p_attempted_by text[], p_queue text, p_uuids text[], p_node_queues text[])
    RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN cardinality(p_attempted_by) >= 2
                THEN p_attempted_by[2] = ANY(p_uuids)
                ELSE coalesce(p_attempted_by[1] || chr(31) || p_queue = ANY(p_node_queues),
                              false) END
    $$;

-- The last heartbeat of a job's producer (for a job that names no producer, the latest
-- of its node and queue's producers); NULL when no such row is left. One row, read in
-- FROM (LATERAL): a set-returning SQL function is inlined there as the subquery it is,
-- where a scalar one would run as a function call per job.
CREATE FUNCTION powertools_producer_heartbeat(p_attempted_by text[], p_queue text)
    RETURNS TABLE (last_heartbeat timestamp)
    LANGUAGE sql STABLE ROWS 1
    AS $$
    SELECT max(p.updated_at) FROM oban_producers p
    WHERE CASE WHEN cardinality(p_attempted_by) >= 2 THEN p.uuid::text = p_attempted_by[2]
               ELSE p.node = p_attempted_by[1] AND p.queue = p_queue END
    $$;

-- What a job action's preview expects of each of its jobs (its before-state, one entry per
-- job id): the state and attempt a confirm checks each job against, so that a job changed
-- since the preview is left as it is (oban_jobs.sql: *_jobs_checked). One SELECT and not
-- STRICT, so the planner inlines it.
CREATE FUNCTION powertools_preview_expectations(p_token text)
    RETURNS TABLE (expected_id bigint, expected_state text, expected_attempt integer)
    LANGUAGE sql STABLE
    AS $$
    SELECT b.key::bigint, b.value ->> 'state', (b.value ->> 'attempt')::int
    FROM powertools_previews p, jsonb_each(p.before) AS b
    WHERE p.token = p_token
    $$;
