-- Previews (powertools_previews): what an operator is about to confirm, with its
-- single-use token, before-state, effect in words and plan hash. A stored preview's
-- action, targets and actor never change; only its status does, once.

-- name: insert_preview
-- Store a preview whose targets Python snapshotted and checked; its plan hash from the
-- one definition (powertools_plan_hash, migration 0004). Returns every column but before,
-- which the caller has at hand.
INSERT INTO powertools_previews (
    token, action, resource_type, resource_id, targets, params, before, effect, plan_hash,
    actor_id, actor_type, actor_label, surface, expires_at
) VALUES (
    %(token)s, %(action)s, %(resource_type)s, %(resource_id)s, %(targets)s, %(params)s,
    %(before)s, %(effect)s, powertools_plan_hash(%(plan)s, %(drift)s), %(actor_id)s,
    %(actor_type)s, %(actor_label)s, %(surface)s, clock_timestamp() + %(ttl)s
)
RETURNING token, action, resource_type, resource_id, targets, params, effect, plan_hash,
          status, actor_id, actor_type, actor_label, surface, reason, created_at,
          expires_at, resolved_at, audit_event_id

-- name: read_preview
-- What a confirm decides on, read without a lock: the preview's action, targets and actor
-- never change once stored. A large set's before-state (over %(inline)s targets) stays in
-- the database, where the confirm's statement reads it.
SELECT token, action, resource_type, resource_id, targets, params, effect, plan_hash,
       status, actor_id, actor_type, actor_label, surface, reason, created_at, expires_at,
       resolved_at, audit_event_id,
       CASE WHEN jsonb_array_length(targets) <= %(inline)s THEN before END AS before,
       expires_at <= clock_timestamp() AS is_expired
FROM powertools_previews WHERE token = %(token)s

-- name: lock_preview
-- The transaction confirm's lock: only what can have changed since the read.
SELECT status, audit_event_id, expires_at <= clock_timestamp() AS is_expired
FROM powertools_previews WHERE token = %(token)s FOR UPDATE

-- name: get_preview
-- One preview, whole (the action page, the result page, the API).
SELECT * FROM powertools_previews WHERE token = %(token)s

-- name: preview_before
-- A preview's stored before-state, for checks that need it in Python (a large bulk
-- preview's before-state stays in the database unless an action asks for it).
SELECT before FROM powertools_previews WHERE token = %(token)s

-- name: resolve_preview
-- A preview that ends without a change (expired, drifted): its status, once.
UPDATE powertools_previews
SET status = %(status)s, reason = %(reason)s, resolved_at = clock_timestamp(),
    audit_event_id = %(audit_event_id)s
WHERE token = %(token)s AND status = 'ready'

-- name: store_job_set_preview
-- The preview of a set of up to 100k jobs in one statement: PostgreSQL snapshots every
-- target's state and attempt, counts the missing ones and those the action does not apply
-- to, and only when both are zero stores the preview, its before-state and its plan hash
-- (the drift text "id:state:attempt" per job in target order, as actions.base.drift_text
-- builds it). Up to ten problems come back as examples, with the counts.
WITH snap AS MATERIALIZED (
    SELECT t.ord, t.id, j.state::text AS state, j.attempt
    FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS t(id, ord)
    LEFT JOIN oban_jobs j ON j.id = t.id
),
verdict AS (
    SELECT count(*) FILTER (WHERE state IS NULL) AS missing,
           count(*) FILTER (WHERE NOT (state = ANY(%(applies_to)s::text[]))) AS problems
    FROM snap
),
stored AS (
    INSERT INTO powertools_previews (
        token, action, resource_type, resource_id, targets, params, before, effect,
        plan_hash, actor_id, actor_type, actor_label, surface, expires_at
    )
    SELECT %(token)s, %(action)s, 'job', %(resource_id)s, %(targets)s, %(params)s,
           (SELECT jsonb_object_agg(id::text,
                                    jsonb_build_object('state', state, 'attempt', attempt))
            FROM snap),
           %(effect)s,
           (SELECT powertools_plan_hash(
                       %(plan)s,
                       string_agg(id || ':' || state || ':' || attempt, ',' ORDER BY ord))
            FROM snap),
           %(actor_id)s, %(actor_type)s, %(actor_label)s, %(surface)s,
           clock_timestamp() + %(ttl)s
    FROM verdict WHERE missing = 0 AND problems = 0
    RETURNING token, action, resource_type, resource_id, targets, params, effect,
              plan_hash, status, actor_id, actor_type, actor_label, surface, reason,
              created_at, expires_at, resolved_at, audit_event_id
)
SELECT verdict.missing, verdict.problems,
       CASE WHEN verdict.missing > 0 THEN
           (SELECT array_agg(id::text ORDER BY ord) FROM snap WHERE state IS NULL) END
           AS missing_ids,
       CASE WHEN verdict.problems > 0 THEN
           (SELECT array_agg(ARRAY[id::text, state] ORDER BY ord) FROM (
                SELECT ord, id, state FROM snap
                WHERE NOT (state = ANY(%(applies_to)s::text[])) ORDER BY ord LIMIT 10) p) END
           AS problem_examples,
       stored.*
FROM verdict LEFT JOIN stored ON true
